"""The benchmark kernel: one full-batch gradient-descent step for linear least squares (DESIGN §5).

With ``X ∈ R^{m×d}``, ``W ∈ R^{d×k}``, ``Y ∈ R^{m×k}`` and a learning rate ``α``, one step issues five array
operations (the order they run in; every result goes into a preallocated buffer with ``out=``):

====  ==============  ==================  ===============  ==========================================
 op    what            FLOPs               elements moved   traffic (elements; read → write)
====  ==============  ==================  ===============  ==========================================
 1     P = X·W         2·m·d·k             md + dk + mk     read X, read W, write P
 2     R = P − Y       m·k                 3·mk             read P, read Y, write R (into P's buffer)
 3     G = Xᵀ·R        2·m·d·k             md + mk + dk     read X, read R, write G
 4     G ← (α/m)·G     d·k                 2·dk             read G, write G
 5     W ← W − G       d·k                 3·dk             read W, read G, write W
====  ==============  ==================  ===============  ==========================================

A matrix product of an (a×b) by a (b×c) matrix does a·c dot products of length b: a·b·c multiplies and
a·b·c adds, so 2·a·b·c FLOPs. Summing the table:

* FLOPs per step = ``4·m·d·k + m·k + 2·d·k`` (≈ ``4·m·d·k``, DESIGN §5);
* bytes per step = ``itemsize · (2·m·d + 5·m·k + 7·d·k)``.

The byte count is the *compulsory* traffic of the operations actually issued: each operand read once and
each result written once per operation, with no reuse between operations through the cache and no
write-allocate (read-for-ownership) traffic. DESIGN §5 quotes ``itemsize·(2·m·d + 3·m·k + 3·d·k)``, the
traffic of an ideally fused step; the two differ only in the lower-order ``m·k`` and ``d·k`` terms, which
are negligible when ``d ≫ k`` (the memory-bound end) and cost little time when ``k`` is large (compute-bound).
At ``k = 1`` the products are matrix-vector products (GEMV): X is streamed from memory *twice* per step
(ops 1 and 3), which is why ``2·m·d`` leads the byte count and the arithmetic intensity is
``≈ 4·m·d / (itemsize·2·m·d) = 2 / itemsize`` FLOP/byte (0.25 for float64). As ``k`` grows the intensity
grows as ``≈ 2·k / itemsize`` until the GEMMs are compute bound.

The training loop of ``bench --verify`` adds op 6, the loss ``‖R‖² / (2m)`` (a dot product of R with itself:
2·m·k FLOPs, m·k elements read).

Everything that touches arrays goes through an *array backend* (:class:`NumpyOps` here,
:class:`flopcast.bench.gpu.TorchOps` for CUDA), so the same step runs on a CPU or a GPU.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from flopcast.errors import RuntimeFailure

GD_STEP_OPS = ("P = X·W", "R = P − Y", "G = Xᵀ·R", "G ← (α/m)·G", "W ← W − G")
TRAINING_STEP_OPS = (*GD_STEP_OPS, "loss = ‖R‖²/2m")

# Sweep data are uniform on [-1, 1): each feature has variance 1/3, so the largest eigenvalue of XᵀX/m is
# about (1/3)·(1 + √(d/m))² (Marchenko–Pastur edge), ≤ 1.94 for m ≥ d/2. Gradient descent on a quadratic is
# stable for α < 2/λ_max, so α = 0.5 keeps the sweep's weights bounded (no overflow, no denormals that would
# slow the arithmetic) for any number of timed steps. With m < d, XᵀX/m is rank deficient: the directions it
# does not see simply never move.
SWEEP_LEARNING_RATE = 0.5
MIN_ROWS_PER_FEATURE = 0.5  # m ≥ d/2 (see SWEEP_LEARNING_RATE); keeps the compute-bound GEMMs large


def gd_step_counts(m: ArrayLike, d: ArrayLike, k: ArrayLike, itemsize: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """FLOPs and bytes of each of the five operations of one step; arrays broadcast, last axis = op."""
    m, d, k, s = (np.asarray(v, dtype=float) for v in (m, d, k, itemsize))
    md, mk, dk = m * d, m * k, d * k
    flops = np.stack(np.broadcast_arrays(2 * md * k, mk, 2 * md * k, dk, dk), axis=-1)
    elements = np.stack(np.broadcast_arrays(md + dk + mk, 3 * mk, md + mk + dk, 2 * dk, 3 * dk), axis=-1)
    return flops, elements * s[..., None]


def training_step_counts(
    m: ArrayLike, d: ArrayLike, k: ArrayLike, itemsize: ArrayLike
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`gd_step_counts` plus the loss ``‖R‖²/2m`` (2·m·k FLOPs, m·k elements read)."""
    flops, bytes_ = gd_step_counts(m, d, k, itemsize)
    mk = np.asarray(m, dtype=float) * np.asarray(k, dtype=float)
    loss_flops = np.broadcast_to(2 * mk, flops.shape[:-1])
    loss_bytes = np.broadcast_to(mk * np.asarray(itemsize, dtype=float), bytes_.shape[:-1])
    return (
        np.concatenate([flops, loss_flops[..., None]], axis=-1),
        np.concatenate([bytes_, loss_bytes[..., None]], axis=-1),
    )


class NumpyOps:
    """The array backend for NumPy on the CPU (BLAS does the products; NumPy the element-wise ops)."""

    device = "cpu"
    dtypes = ("float64", "float32")
    # A timed sample runs the step as often as needed to last at least this long, so timer resolution and
    # Python call overhead (~µs) stay far below 1 % of a sample.
    min_sample_seconds = 0.005

    def __init__(self, seed: int = 0):
        self.rng = np.random.default_rng(seed)

    def itemsize(self, dtype: str) -> int:
        return np.dtype(dtype).itemsize

    def uniform(self, shape: tuple[int, ...], dtype: str, low: float, high: float) -> np.ndarray:
        """Uniform on [low, high) without a float64 temporary (``Generator.random(dtype=, out=)``)."""
        out = np.empty(shape, dtype=dtype)
        self.rng.random(dtype=out.dtype, out=out)
        out *= out.dtype.type(high - low)
        out += out.dtype.type(low)
        return out

    def zeros(self, shape: tuple[int, ...], dtype: str) -> np.ndarray:
        return np.zeros(shape, dtype=dtype)

    def empty(self, shape: tuple[int, ...], dtype: str) -> np.ndarray:
        out = np.empty(shape, dtype=dtype)
        out.fill(0)  # touch every page now so the first timed step does not pay the page faults
        return out

    def scalar(self, value: float, dtype: str) -> Any:
        return np.dtype(dtype).type(value)

    @staticmethod
    def matmul(a, b, out) -> None:
        np.matmul(a, b, out=out)

    @staticmethod
    def sub(a, b, out) -> None:
        np.subtract(a, b, out=out)

    @staticmethod
    def scale(a, factor, out) -> None:
        np.multiply(a, factor, out=out)

    @staticmethod
    def sumsq(a) -> Any:
        """‖a‖² as one BLAS dot product over the contiguous buffer (reads ``a`` once)."""
        return np.vdot(a, a)

    @staticmethod
    def to_float(value: Any) -> float:
        return float(value)

    @staticmethod
    def relative_error(a, b) -> float:
        """‖a − b‖ / ‖b‖ (Frobenius), in float64."""
        return float(np.linalg.norm(np.asarray(a, dtype=float) - b) / np.linalg.norm(np.asarray(b, dtype=float)))

    @staticmethod
    def sync() -> None:
        """CPU work is synchronous."""

    def time_calls(self, fn: Callable[[], None], calls: int) -> float:
        """Wall seconds for ``calls`` back-to-back calls of ``fn``."""
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        return time.perf_counter() - start

    @staticmethod
    def free(*arrays) -> None:
        """Arrays are freed when the last reference goes; nothing else to do on the CPU."""

    @contextlib.contextmanager
    def session(self, threads: int | None = None) -> Iterator[None]:
        """The run's environment: the BLAS thread pool limited to ``threads`` (None = as it is)."""
        from flopcast.bench.machine import blas_threads

        with blas_threads(threads):
            yield

    def describe(self, threads_requested: int | None = None):
        """This machine (call inside :meth:`session` so the thread count is the one in force)."""
        from flopcast.bench.machine import describe_cpu

        return describe_cpu(threads_requested)


class GradientDescent:
    """Preallocated buffers for one GD problem; :meth:`step` allocates nothing.

    ``X`` is given (often a row-slice view of a larger buffer); W starts at zero; ``Y`` is uniform on [-1, 1)
    unless given.
    """

    def __init__(self, ops, X, k: int, dtype: str, learning_rate: float = SWEEP_LEARNING_RATE, Y=None):
        self.ops = ops
        self.m, self.d = int(X.shape[0]), int(X.shape[1])
        self.k = int(k)
        self.X = X
        self.Y = Y if Y is not None else ops.uniform((self.m, self.k), dtype, -1.0, 1.0)
        self.W = ops.zeros((self.d, self.k), dtype)
        self.P = ops.empty((self.m, self.k), dtype)  # holds P, then R
        self.G = ops.empty((self.d, self.k), dtype)
        self.lr_over_m = ops.scalar(learning_rate / self.m, dtype)

    def step(self) -> None:
        """One gradient-descent step: the five operations of the module docstring, in order."""
        ops = self.ops
        ops.matmul(self.X, self.W, self.P)  # 1. P = X·W
        ops.sub(self.P, self.Y, self.P)  # 2. R = P − Y (in place)
        ops.matmul(self.X.T, self.P, self.G)  # 3. G = Xᵀ·R
        ops.scale(self.G, self.lr_over_m, self.G)  # 4. G ← (α/m)·G
        ops.sub(self.W, self.G, self.W)  # 5. W ← W − G

    def step_with_loss(self) -> Any:
        """A training step that also returns the loss ‖XW − Y‖²/2m at the weights it started from."""
        ops = self.ops
        ops.matmul(self.X, self.W, self.P)
        ops.sub(self.P, self.Y, self.P)
        sumsq = ops.sumsq(self.P)  # 6. loss (scaled by 1/2m outside the timed loop)
        ops.matmul(self.X.T, self.P, self.G)
        ops.scale(self.G, self.lr_over_m, self.G)
        ops.sub(self.W, self.G, self.W)
        return sumsq

    def free(self) -> None:
        self.ops.free(self.Y, self.W, self.P, self.G)
        self.X = self.Y = self.W = self.P = self.G = None


@dataclass(frozen=True)
class Timing:
    """Seconds per call of each timed sample (each sample is ``calls_per_sample`` back-to-back calls)."""

    seconds: tuple[float, ...]
    calls_per_sample: int

    @property
    def median(self) -> float:
        return float(np.median(self.seconds))

    @property
    def spread(self) -> float:
        """(max − min) / median of the samples: 0.05 means the samples lie within 5 % of each other."""
        return (max(self.seconds) - min(self.seconds)) / self.median


def measure(
    ops, fn: Callable[[], None], *, warmup: int, repeats: int, min_sample_seconds: float | None = None
) -> Timing:
    """Warm up, size the sample so it lasts ≥ ``min_sample_seconds`` (default: the backend's), then time
    ``repeats`` samples."""
    if repeats < 1:
        raise ValueError("repeats must be ≥ 1")
    warm_calls = max(1, warmup)
    warm = ops.time_calls(fn, warm_calls)  # the first call also pays one-off costs (threads, caches)
    one = ops.time_calls(fn, 1)
    per_call = max(min(one, warm / warm_calls), 1e-9)
    target = ops.min_sample_seconds if min_sample_seconds is None else min_sample_seconds
    calls = max(1, math.ceil(target / per_call))
    samples = []
    for _ in range(repeats):
        elapsed = ops.time_calls(fn, calls)
        if not math.isfinite(elapsed) or elapsed <= 0:
            raise RuntimeFailure("the timer returned a non-positive interval", hint="rerun the benchmark")
        samples.append(elapsed / calls)
    return Timing(seconds=tuple(samples), calls_per_sample=calls)
