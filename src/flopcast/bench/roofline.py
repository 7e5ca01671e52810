"""Fitting a roofline — sustained peak FLOP/s and memory bandwidth per dtype — to measured GD steps.

The model of a step's time is the estimator core's roofline applied to each of its operations and summed:
``T(P, B) = Σ_ops max(flops_op / P, bytes_op / B)`` (:func:`flopcast.estimator.roofline.roofline_seconds`;
no second copy of the formula). A roofline is the *upper envelope* of what the machine achieved (Williams,
Waterman & Patterson 2009; the Empirical Roofline Toolkit also takes maxima), so the fit is, per dtype,
the tightest (P, B) under which no measured point is faster than the model, ``T(P, B) ≤ measured``:

1. **Bandwidth** ``B`` = the highest bytes/s of the dtype's points. Every point must satisfy it
   (``T ≥ Σ bytes/B``), and the memory-bound points — k = 1, two GEMV that stream X twice, whose
   operations are all memory bound — reach it: it is their bytes per second.
2. **Peak** ``P`` = the highest, over the dtype's points, of the P that makes the model equal the measured
   time with that B (solved by bisection; the model is monotone in P). The compute-bound plateau (large k)
   sets it; the small element-wise operations of those points are charged at B.

The bandwidth is fitted per dtype because what a BLAS GEMV sustains depends on the row length in bytes
(float32 rows are half as long as float64 rows of the same d); the machine's bandwidth is the highest of
them. Consequences, tested: points generated from a known roofline give back its P and B exactly; slow
points (BLAS is poor at small k > 1) do not pull the roof down; every point's FLOP/s is
≤ ``min(P, intensity·B)``, so efficiencies are ≤ 1. A fit whose peak is set by a point left of the ridge
(no compute-bound plateau was measured) or whose bandwidth is set by a point right of it says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from flopcast.estimator.roofline import roofline_seconds

# a point "touches" the roof when it is within this fraction of the fitted peak (resp. bandwidth)
TOUCH_FRACTION = 0.05
_BISECTION_STEPS = 80  # halves the log-bracket 80 times: far below 1e-12 relative

METHOD = (
    "per dtype, the tightest per-operation roofline T = Σ max(flops/P, bytes/B) (estimator core) that no "
    "point beats: B = highest bytes/s (the memory-bound k = 1 GEMV points); P = highest P solving "
    "T(P, B) = measured (the compute-bound plateau); machine bandwidth = highest B over dtypes"
)


@dataclass
class DtypePoints:
    """Per-operation counts of each point of one dtype: ``flops``/``bytes`` are (points, ops); ``seconds``
    is the measured median per step."""

    flops: np.ndarray
    bytes: np.ndarray
    seconds: np.ndarray

    def __post_init__(self):
        self.flops = np.atleast_2d(np.asarray(self.flops, dtype=float))
        self.bytes = np.atleast_2d(np.asarray(self.bytes, dtype=float))
        self.seconds = np.atleast_1d(np.asarray(self.seconds, dtype=float))

    @property
    def flops_per_s(self) -> np.ndarray:
        return self.flops.sum(axis=-1) / self.seconds

    @property
    def bytes_per_s(self) -> np.ndarray:
        return self.bytes.sum(axis=-1) / self.seconds

    @property
    def intensity(self) -> np.ndarray:
        """FLOP per byte of each point."""
        return self.flops.sum(axis=-1) / self.bytes.sum(axis=-1)


@dataclass
class Fit:
    peak_flops_per_s: dict[str, float]
    bandwidth_bytes_per_s: float
    bandwidth_by_dtype: dict[str, float]
    peak_points: dict[str, int]
    bandwidth_points: int
    warnings: list[str] = field(default_factory=list)


def model_seconds(flops, bytes_, peak_flops_per_s, bandwidth_bytes_per_s) -> np.ndarray:
    """Modelled seconds of each point: the roofline of each operation, summed over the last axis."""
    return roofline_seconds(flops, bytes_, peak_flops_per_s, bandwidth_bytes_per_s).sum(axis=-1)


def _bisect(lo: np.ndarray, hi: np.ndarray, too_slow) -> np.ndarray:
    """Geometric bisection of a decreasing model: ``too_slow(x)`` is True where the model at rate x is
    slower than measured (so the root lies above x)."""
    lo, hi = lo.copy(), hi.copy()
    for _ in range(_BISECTION_STEPS):
        mid = np.sqrt(lo * hi)
        slow = too_slow(mid)
        lo = np.where(slow, mid, lo)
        hi = np.where(slow, hi, mid)
    return np.sqrt(lo * hi)


def solve_peak(pts: DtypePoints, bandwidth: float) -> np.ndarray:
    """P per point such that the model with (P, bandwidth) equals the measured time; NaN where none exists."""
    memory_only = (pts.bytes / bandwidth).sum(axis=-1)
    total_flops = pts.flops.sum(axis=-1)
    ok = memory_only < pts.seconds
    lo = total_flops / pts.seconds
    hi = np.where(ok, total_flops / np.where(ok, pts.seconds - memory_only, 1.0), lo)
    root = _bisect(lo, hi, lambda p: model_seconds(pts.flops, pts.bytes, p[:, None], bandwidth) > pts.seconds)
    return np.where(ok, root, np.nan)


def fit_roofline(points: dict[str, DtypePoints]) -> Fit:
    """Fit a peak and a bandwidth per dtype (see the module docstring). ``points`` must not be empty."""
    if not points or any(p.seconds.size == 0 for p in points.values()):
        raise ValueError("every dtype needs at least one point")
    peak: dict[str, float] = {}
    band: dict[str, float] = {}
    touching: dict[str, int] = {}
    band_points = 0
    warnings: list[str] = []
    for d, p in points.items():
        band[d] = float(p.bytes_per_s.max())
        solved = solve_peak(p, band[d] * (1 + 1e-12))  # a hair above max bytes/s: every point solvable
        peak[d] = float(np.nanmax(solved))
        ridge = peak[d] / band[d]
        touching[d] = int((solved >= (1 - TOUCH_FRACTION) * peak[d]).sum())
        band_points += int((p.bytes_per_s >= (1 - TOUCH_FRACTION) * band[d]).sum())
        if p.intensity[int(np.nanargmax(solved))] < ridge:  # the peak was set left of the ridge
            warnings.append(
                f"no {d} point was compute bound: its peak is a lower bound (run the full sweep, without --quick)"
            )
        if p.intensity[int(np.argmax(p.bytes_per_s))] > ridge:  # the bandwidth was set right of the ridge
            warnings.append(
                f"no {d} point was memory bound: its bandwidth is a lower bound (measure k = 1, or a larger --size)"
            )
    return Fit(
        peak_flops_per_s=peak,
        bandwidth_bytes_per_s=max(band.values()),
        bandwidth_by_dtype=band,
        peak_points=touching,
        bandwidth_points=band_points,
        warnings=warnings,
    )
