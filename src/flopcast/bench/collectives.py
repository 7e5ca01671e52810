"""`flopcast bench --collectives`: what is timed, how a timing becomes a bus bandwidth, and the fit (no torch here).

Sizes are bytes (SI names, binary steps: 1 KiB, 4 KiB, ... 256 MiB), times seconds, bandwidths bytes/s.

**Bus bandwidth** (NVIDIA nccl-tests, ``doc/PERFORMANCE.md``): a collective of ``size`` bytes that takes ``t``
seconds has the algorithm bandwidth ``algbw = size / t``; the bus bandwidth ``busbw = algbw × factor`` removes
the dependence on the rank count ``n``, so that it reads as the speed of the link each rank drives, comparable
with the hardware's per-direction link bandwidth (the ``intra_node_bandwidth_bytes_per_s`` of a profile):

    all-reduce                      2·(n−1)/n      (a ring moves each byte out and back: reduce-scatter + all-gather)
    all-gather, reduce-scatter      (n−1)/n        ``size`` is the whole (gathered / reduced) buffer
    all-to-all                      (n−1)/n        ``size`` is the buffer each rank sends (1/n of it stays home)
    send/recv                       1              each rank sends ``size`` bytes to the next rank, receives as much

These factors are the ones :mod:`flopcast.estimator.comms` uses for its ring times, so a fitted bus bandwidth
drops into a profile unchanged.

**Fit** (per collective): ``t(size) = latency + factor·size / busbw`` — the time of a ring collective, a launch
latency plus the bytes each rank moves over the link (nccl-tests PERFORMANCE.md, "Time": "roughly equal to
overhead + size / bw"). Least squares on the *relative* residuals (each point weighted by 1/t), so the
microsecond points that fix the latency count as much as the 100 ms points that fix the bandwidth.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from flopcast.errors import InvalidValue, opt

# The collectives, in the order they are timed and reported.
ALL_REDUCE = "all-reduce"
ALL_GATHER = "all-gather"
REDUCE_SCATTER = "reduce-scatter"
ALL_TO_ALL = "all-to-all"
SEND_RECV = "send-recv"
COLLECTIVES = (ALL_REDUCE, ALL_GATHER, REDUCE_SCATTER, ALL_TO_ALL, SEND_RECV)

# Message sizes, bytes: from 1 KiB up by factors of 4 (nccl-tests' `-f` step, coarser to keep a run short) to
# 256 MiB by default (nccl-tests' PERFORMANCE.md example runs reach hundreds of MB, where the bus bandwidth has
# flattened on NVLink); --quick stops at 4 MiB, where Gloo on loopback is already bandwidth bound.
MIN_MESSAGE_BYTES = 1024
MESSAGE_SIZE_STEP = 4
DEFAULT_MAX_MESSAGE_BYTES = 256 * 2**20
QUICK_MAX_MESSAGE_BYTES = 4 * 2**20
ELEMENT_BYTES = 4  # float32: the dtype every collective runs in (sum reduction)

# Warm-up and timed repeats per (collective, size); the median of the repeats counts (nccl-tests runs 5 warm-up
# iterations and reports a mean over 20; a median resists the odd slow repeat of a shared CPU better).
WARMUP_ITERATIONS = 3
REPEATS = 10
QUICK_WARMUP_ITERATIONS = 2
QUICK_REPEATS = 5

# Buffers one rank holds at the largest size: all-gather's input (size/n) and output (size), all-to-all's input and
# output, the all-reduce buffer; 3 × size bounds every collective's live bytes (the memory check uses it).
BUFFERS_PER_RANK = 3


def bus_factor(collective: str, ranks: int) -> float:
    """nccl-tests' busbw / algbw for ``collective`` on ``ranks`` ranks (doc/PERFORMANCE.md, see the module text)."""
    n = float(ranks)
    if collective == ALL_REDUCE:
        return 2.0 * (n - 1.0) / n
    if collective in (ALL_GATHER, REDUCE_SCATTER, ALL_TO_ALL):
        return (n - 1.0) / n
    if collective == SEND_RECV:
        return 1.0
    raise ValueError(f"unknown collective {collective!r}")


def message_sizes(max_bytes: float, ranks: int, min_bytes: int = MIN_MESSAGE_BYTES) -> list[int]:
    """The sizes (bytes) timed: ``min_bytes`` × 4^k up to ``max_bytes``, each cut to a whole number of float32
    elements divisible by ``ranks`` (all-gather, reduce-scatter and all-to-all split the buffer in n parts)."""
    quantum = ELEMENT_BYTES * ranks
    sizes: list[int] = []
    size = float(min_bytes)
    while size <= max_bytes * (1 + 1e-9):
        cut = max(quantum, int(size) // quantum * quantum)
        if not sizes or cut > sizes[-1]:
            sizes.append(cut)
        size *= MESSAGE_SIZE_STEP
    return sizes


@dataclass(frozen=True)
class CollectivesConfig:
    """What one run times. ``fail_rank`` (tests only) makes that rank fail after its first timed collective."""

    quick: bool
    max_bytes: float
    device: str = "cpu"  # cpu: Gloo; cuda: NCCL
    warmup: int = WARMUP_ITERATIONS
    repeats: int = REPEATS
    collectives: tuple[str, ...] = COLLECTIVES
    fail_rank: int | None = None

    @classmethod
    def make(cls, *, quick: bool, max_bytes: float | None, device: str = "cpu", fail_rank: int | None = None):
        top = max_bytes if max_bytes is not None else (QUICK_MAX_MESSAGE_BYTES if quick else DEFAULT_MAX_MESSAGE_BYTES)
        smallest_top = MIN_MESSAGE_BYTES * MESSAGE_SIZE_STEP  # two sizes at least: a fit has two unknowns
        if top < smallest_top:
            raise InvalidValue(
                f"{opt('max_bytes')} {top:g} bytes: the fit needs two sizes, {MIN_MESSAGE_BYTES} and {smallest_top} "
                "bytes at least",
                hint=f"give {opt('max_bytes')} {smallest_top // 1024}KiB or more",
            )
        warm, reps = (QUICK_WARMUP_ITERATIONS, QUICK_REPEATS) if quick else (WARMUP_ITERATIONS, REPEATS)
        return cls(quick=quick, max_bytes=float(top), device=device, warmup=warm, repeats=reps, fail_rank=fail_rank)

    @property
    def backend(self) -> str:
        return "nccl" if self.device == "cuda" else "gloo"

    def tasks(self, ranks: int) -> int:
        """(collective, size) pairs one run times: the progress bar's total."""
        return len(self.collectives) * len(message_sizes(self.max_bytes, ranks))

    def as_dict(self) -> dict:
        return {
            "quick": self.quick, "max_bytes": self.max_bytes, "device": self.device, "warmup": self.warmup,
            "repeats": self.repeats, "collectives": list(self.collectives), "fail_rank": self.fail_rank,
        }  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict) -> CollectivesConfig:
        return cls(**{**data, "collectives": tuple(data["collectives"])})


class Fit(NamedTuple):
    """``t = latency_s + bytes_factor · size / bus_bandwidth_bytes_per_s`` fitted on one collective's medians."""

    latency_s: float
    bus_bandwidth_bytes_per_s: float | None  # None: the time did not grow with the size
    max_relative_residual: float


def fit_latency_bandwidth(sizes_bytes, seconds, bytes_factor: float) -> Fit:
    """Weighted least squares of ``seconds ≈ latency + bytes_factor·size / busbw`` (weights 1/seconds: relative
    residuals). A negative intercept is refitted through the origin (latency 0); a slope ≤ 0 gives no bandwidth."""
    x = bytes_factor * np.asarray(sizes_bytes, dtype=float)
    t = np.asarray(seconds, dtype=float)
    if x.size < 2 or x.size != t.size or np.any(t <= 0):
        raise ValueError("a fit needs two or more positive times, one per size")
    w = 1.0 / t
    design = np.column_stack([np.ones_like(x), x]) * w[:, None]
    (latency, per_byte), *_ = np.linalg.lstsq(design, t * w, rcond=None)
    if latency < 0:
        latency, per_byte = 0.0, float(np.sum(w * w * x * t) / np.sum(w * w * x * x))
    if per_byte <= 0:
        latency, per_byte = float(np.sum(w * w * t) / np.sum(w * w)), 0.0
    model = latency + per_byte * x
    residual = float(np.max(np.abs(model / t - 1.0)))
    return Fit(float(latency), 1.0 / per_byte if per_byte > 0 else None, residual)


def summarise(repeat_seconds_per_rank: list[list[float]]) -> tuple[float, float, float]:
    """(median, fastest, spread) of one point. Each repeat's time is the slowest rank's (a collective is done
    when its last rank is); spread = (max − min) / median over the repeats."""
    per_repeat = [max(times) for times in zip(*repeat_seconds_per_rank, strict=True)]
    median = statistics.median(per_repeat)
    spread = (max(per_repeat) - min(per_repeat)) / median if median > 0 else math.inf
    return median, min(per_repeat), spread
