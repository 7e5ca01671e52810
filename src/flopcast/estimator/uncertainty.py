"""P10–P90 ranges from the calibration residuals (DESIGN §4 "Uncertainty").

The fit (fit.py) records, for every published run, ``log(reported / predicted)`` with that run's source
family left out of the fit, and stores the 10th and 90th percentiles. A prediction ``x`` then has the
range ``[x·e^{p10}, x·e^{p90}]``. Hardware with no calibration runs of its family gets the wider
percentiles recorded for that case (the residuals plus the spread between families).
"""

from __future__ import annotations

import math

import numpy as np


def range_factors(calibrated: np.ndarray, params) -> tuple[np.ndarray, np.ndarray]:
    """(e^p10, e^p90) per row: the factors that turn a prediction into its P10 and P90."""
    calibrated = calibrated > 0.5
    lo = np.where(calibrated, math.exp(params.log_ratio_p10), math.exp(params.log_ratio_p10_uncalibrated))
    hi = np.where(calibrated, math.exp(params.log_ratio_p90), math.exp(params.log_ratio_p90_uncalibrated))
    return lo, hi


def percentile_range(value: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``value`` scaled by the factors of :func:`range_factors`."""
    return value * lo, value * hi
