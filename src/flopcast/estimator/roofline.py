"""The roofline: time of an operation bound by either arithmetic or memory traffic.

Williams, Waterman & Patterson 2009, "Roofline: an insightful visual performance model": an operation
with ``flops`` arithmetic and ``bytes`` of memory traffic takes at least
``max(flops / peak_flops_per_s, bytes / bandwidth_bytes_per_s)``. Sustained rates are the peaks times
efficiencies in (0, 1].
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # numpy.typing costs ~1 ms of start-up; annotations only
    from numpy.typing import ArrayLike


def roofline_seconds(
    flops: ArrayLike,
    bytes_moved: ArrayLike,
    peak_flops_per_s: ArrayLike,
    bandwidth_bytes_per_s: ArrayLike,
    compute_efficiency: ArrayLike = 1.0,
    bandwidth_efficiency: ArrayLike = 1.0,
) -> np.ndarray:
    """Seconds for one op class: ``max(flops / (peak·η_c), bytes / (bw·η_b))``; broadcasts."""
    compute = np.asarray(flops, dtype=float) / (np.asarray(peak_flops_per_s, dtype=float) * compute_efficiency)
    memory = np.asarray(bytes_moved, dtype=float) / (
        np.asarray(bandwidth_bytes_per_s, dtype=float) * bandwidth_efficiency
    )
    return np.maximum(compute, memory)


def ridge_point_flops_per_byte(peak_flops_per_s: ArrayLike, bandwidth_bytes_per_s: ArrayLike) -> np.ndarray:
    """Arithmetic intensity (FLOP/byte) where the memory roof meets the compute roof."""
    return np.asarray(peak_flops_per_s, dtype=float) / np.asarray(bandwidth_bytes_per_s, dtype=float)


def attainable_flops_per_s(
    intensity_flops_per_byte: ArrayLike, peak_flops_per_s: ArrayLike, bandwidth_bytes_per_s: ArrayLike
) -> np.ndarray:
    """The roofline itself: ``min(peak, intensity · bandwidth)``."""
    return np.minimum(
        np.asarray(peak_flops_per_s, dtype=float),
        np.asarray(intensity_flops_per_byte, dtype=float) * np.asarray(bandwidth_bytes_per_s, dtype=float),
    )
