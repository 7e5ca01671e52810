"""Percentile ranges from the calibration residuals (DESIGN §4 "Uncertainty").

The fit (calibration/fit.py) predicts every fitted run by a fit without that run's source family and
stores the 10th, 80th and 90th percentiles of those residuals ``log(reported / predicted time)``
(split-conformal: the band is computed from runs it was not fitted to, and its coverage is measured on the
frozen held-out families, which neither the constants nor the band saw). A prediction ``x`` then has the
P10 ``x·e^{p10}``, P80 ``x·e^{p80}`` and P90 ``x·e^{p90}``. Two cases widen it:

* hardware with no calibration runs of its family: the percentiles recorded for that case (the residuals
  plus, in quadrature, the spread of the fitted family factors);
* extrapolation: a job with more devices or more parameters than any fitted run. Each doubling beyond the
  largest fitted run adds ``EXTRAPOLATION_LOG_SIGMA_PER_DOUBLING`` to the log-normal spread, added to the
  percentile at its normal quantile. This is a stated assumption, not a fit: no run measures it.
"""

from __future__ import annotations

import numpy as np

# Standard normal quantiles of the stored percentiles (for the extrapolation widening).
Z_OF_LEVEL = {"p10": -1.2816, "p80": 0.8416, "p90": 1.2816}
# log-normal sigma added per doubling of devices or parameters beyond the largest fitted run: 5% per doubling
# (an assumption; the held-out families stay within the fitted range, so nothing measures it).
EXTRAPOLATION_LOG_SIGMA_PER_DOUBLING = 0.05
LEVELS = ("p10", "p80", "p90")


def extrapolation_doublings(devices, params_count, params) -> np.ndarray:
    """How many doublings a row lies beyond the fitted runs, in devices plus in parameters (0 inside)."""
    dev = np.log2(np.maximum(np.asarray(devices, dtype=float) / params.calibrated_max_devices, 1.0))
    size = np.log2(np.maximum(np.asarray(params_count, dtype=float) / params.calibrated_max_params, 1.0))
    return dev + size


def range_factors(calibrated: np.ndarray, params, doublings=0.0) -> dict[str, np.ndarray]:
    """{"p10", "p80", "p90": factor per row}: what turns a prediction of time into that percentile."""
    calibrated = np.asarray(calibrated) > 0.5
    sigma = EXTRAPOLATION_LOG_SIGMA_PER_DOUBLING * np.asarray(doublings, dtype=float)
    out = {}
    for level in LEVELS:
        log_q = np.where(
            calibrated, getattr(params, f"log_ratio_{level}"), getattr(params, f"log_ratio_{level}_uncalibrated")
        )
        out[level] = np.exp(log_q + Z_OF_LEVEL[level] * sigma)
    return out


def percentile(value: np.ndarray, factors: dict[str, np.ndarray], level: str) -> np.ndarray:
    """``value`` at ``level`` ("p10", "p80", "p90")."""
    return value * factors[level]


def log_ratio(params, level: str, calibrated: bool = True) -> float:
    """The stored log ratio of one percentile (for a row that needs no arrays)."""
    return getattr(params, f"log_ratio_{level}" + ("" if calibrated else "_uncalibrated"))
