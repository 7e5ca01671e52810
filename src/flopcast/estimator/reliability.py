"""Interruptions and other lost time: how much longer a whole run takes than steps × step time.

Rate: Llama 3 (Dubey et al. 2024, Sec. 3.3.4, Table 5) saw 466 job interruptions in a 54-day snapshot of
pre-training on 16,384 H100 GPUs: 466 / (54 · 16,384) ≈ 5.3e-4 interruptions per device-day. A job's
interruption rate grows with its device count.

Cost of each interruption: the restart (re-scheduling, loading the checkpoint, warming up) plus, on
average, half a checkpoint interval of work that is recomputed. Llama 3 reports "higher than 90% effective
training time" over those 54 days, so 466 interruptions cost at most 10% × 54 days: ≤ 1,001 s each. We
take a 10-minute restart and a checkpoint every 800 s, whose sum (600 + 400 s) meets that bound.

Other overhead (evaluation, checkpoint writes, queueing, stragglers) is a fitted fraction,
``EfficiencyParams.idle_overhead``, learned from published whole-run device-hours.

    effective fraction  = 1 − rate · devices · (restart + interval/2)
    wall-clock          = steps × step time / effective fraction × (1 + idle overhead)
"""

from __future__ import annotations

import numpy as np

from flopcast.units import SECONDS_PER_DAY

LLAMA3_INTERRUPTIONS = 466  # Dubey et al. 2024, Sec. 3.3.4
LLAMA3_SNAPSHOT_DAYS = 54
LLAMA3_GPUS = 16_384
INTERRUPTIONS_PER_DEVICE_SECOND = LLAMA3_INTERRUPTIONS / (LLAMA3_SNAPSHOT_DAYS * SECONDS_PER_DAY * LLAMA3_GPUS)
RESTART_SECONDS = 600.0
CHECKPOINT_INTERVAL_SECONDS = 800.0
# A job so large that it would spend most of its time restarting is capped here (and flagged).
MIN_EFFECTIVE_FRACTION = 0.1


def lost_seconds_per_interruption(
    restart_seconds: float = RESTART_SECONDS, checkpoint_interval_seconds: float = CHECKPOINT_INTERVAL_SECONDS
) -> float:
    """Restart time plus, on average, half a checkpoint interval of recomputed work."""
    return restart_seconds + 0.5 * checkpoint_interval_seconds


def effective_fraction(devices: np.ndarray, lost_seconds: float | None = None) -> np.ndarray:
    """Fraction of wall-clock time spent making progress, given the interruption rate per device."""
    lost = lost_seconds_per_interruption() if lost_seconds is None else lost_seconds
    return np.maximum(1.0 - INTERRUPTIONS_PER_DEVICE_SECOND * devices * lost, MIN_EFFECTIVE_FRACTION)


def wall_clock_seconds(training_seconds: np.ndarray, devices: np.ndarray, idle_overhead: float) -> np.ndarray:
    """Steps × step time stretched by interruptions and the fitted idle overhead."""
    return training_seconds / effective_fraction(devices) * (1.0 + idle_overhead)
