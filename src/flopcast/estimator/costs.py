"""Money, energy and CO2 of a run.

Cost = device-hours × price per device-hour of the chosen tier (or the user's own price).
Energy = device-hours × power × average power fraction × PUE. CO2 = energy × grid carbon intensity.
Defaults follow Touvron et al. 2023 ("LLaMA", Sec. 6.2): they multiply GPU-hours by the GPU's
power (400 W for A100-80GB, i.e. the full TDP) and a PUE of 1.1, and use the US national average of
0.385 kg CO2eq/kWh. With those numbers their 65B model's 1,022,362 GPU-hours give 449 MWh and
173 t CO2eq, as their Table 15 states.
"""

from __future__ import annotations

import numpy as np

POWER_FRACTION_OF_TDP = 1.0  # LLaMA Sec. 6.2 counts the full 400 W TDP per A100
PUE_DEFAULT = 1.1  # LLaMA Sec. 6.2
GRID_KG_CO2_PER_KWH_DEFAULT = 0.385  # LLaMA Sec. 6.2 (US national average)
WATT_HOURS_PER_KWH = 1000.0


def cost_usd(device_hours: np.ndarray, price_usd_per_device_hour: np.ndarray) -> np.ndarray:
    return device_hours * price_usd_per_device_hour


def energy_kwh(
    device_hours: np.ndarray,
    power_watts: np.ndarray,
    power_fraction: float = POWER_FRACTION_OF_TDP,
    pue: float = PUE_DEFAULT,
) -> np.ndarray:
    return device_hours * power_watts * power_fraction * pue / WATT_HOURS_PER_KWH


def co2_kg(kwh: np.ndarray, grid_kg_per_kwh: float = GRID_KG_CO2_PER_KWH_DEFAULT) -> np.ndarray:
    return kwh * grid_kg_per_kwh
