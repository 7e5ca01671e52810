"""What a bench run will do: dtypes, the k sweep, the sizes, and whether it fits in free memory.

Sizes follow DESIGN §5: X at the memory-bound points is several times the last-level cache (CPU) or L2
(GPU), so those points stream X from DRAM/HBM; the compute-bound points use fewer rows so one step does
at most ``flops_per_step`` FLOPs and the sweep stays short. Everything is decided before any work, so a
run that would not fit in free memory is refused up front, with the ``--size`` that would fit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from flopcast.bench.kernel import MIN_ROWS_PER_FEATURE
from flopcast.errors import InvalidValue, opt
from flopcast.units import format_si, suggest

DTYPE_ALIASES = {
    "float64": "float64", "fp64": "float64", "f64": "float64", "double": "float64",
    "float32": "float32", "fp32": "float32", "f32": "float32", "single": "float32",
    "bfloat16": "bfloat16", "bf16": "bfloat16",
    "float16": "float16", "fp16": "float16", "f16": "float16", "half": "float16",
}  # fmt: skip
DEVICE_DTYPES = {"cpu": ("float64", "float32"), "cuda": ("bfloat16", "float16", "float32")}
PROFILE_DTYPE_KEY = {"float64": "fp64", "float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}
ITEMSIZE_BYTES = {"float64": 8, "float32": 4, "bfloat16": 2, "float16": 2}

MIB = 2**20
# Keep this share of the free memory untouched (the OS, other processes, allocator slack).
FREE_MEMORY_USABLE_FRACTION = 0.8
# Interpreter, NumPy/PyTorch and allocator overhead on top of the arrays the run allocates.
RUNTIME_OVERHEAD_BYTES = 64 * MIB
# An X smaller than this many last-level caches may be served partly from cache: warn that the bandwidth
# points then overstate the memory bandwidth.
MIN_CACHE_MULTIPLE = 2.0
VERIFY_ROWS_PER_FEATURE = 1.25  # m ≥ 1.25·d keeps GD with α = 0.5 a descent (see bench.verify)
MAX_VERIFY_STEPS = 5000
VERIFY_MEMORY_X_FRACTION = 0.75  # the memory-bound training run's X is ¾ of --size: not a sweep size


@dataclass(frozen=True)
class Preset:
    """Sizes and repeats of one mode on one device."""

    cache_multiple: float  # X at the memory-bound points = this many caches ...
    min_size_bytes: float  # ... but at least this
    features: int  # d
    ks: tuple[int, ...]
    flops_per_step: float
    repeats: int
    warmup_calls: int
    gemm_flops: float  # one square GEMM does about this many FLOPs
    verify_memory_features: int  # d of the memory-bound training run (k = 1; not the sweep's d)
    verify_features: int  # d of the compute-bound training run (not the sweep's d: an honest check)
    verify_k: int  # outputs of the compute-bound training run (not a swept k)
    verify_steps: int  # at least this many training steps ...
    verify_min_seconds: float  # ... and enough to last this long by the prediction (timer noise ≪ 1 %)
    verify_repeats: int  # trainings per run; the fastest is reported (as the fit uses fastest samples)


# CPU: d = 2048 because OpenBLAS GEMV streams long rows best (measured in the GD loop on a 2-core EPYC,
# float64: 19–20 GB/s at d = 768, 22 at 1024, 23–26 at 2048–3072; float32 lags at the same d, its rows being
# half as long), so the k = 1 points come close to the memory's streaming rate. The training runs use
# shapes the sweep never runs: d = 1536 (k = 1 for the memory-bound run, k = 384 for the compute-bound one).
# The GEMM check is ~1500² (quick) / ~2000² (default): large enough to run at the BLAS's full rate.
_CPU = dict(features=2048, verify_memory_features=1536, verify_features=1536, verify_k=384, warmup_calls=1)
_GPU = dict(features=8192, verify_memory_features=6144, verify_features=6144, verify_k=3072, warmup_calls=3)
PRESETS = {
    ("cpu", "quick"): Preset(
        cache_multiple=4, min_size_bytes=64 * MIB, ks=(1, 4, 16, 64, 256, 512), flops_per_step=2e9, repeats=5,
        gemm_flops=6e9, verify_steps=8, verify_min_seconds=0.15, verify_repeats=2, **_CPU,
    ),
    ("cpu", "default"): Preset(
        cache_multiple=8, min_size_bytes=128 * MIB, ks=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512), flops_per_step=4e9,
        repeats=7, gemm_flops=16e9, verify_steps=30, verify_min_seconds=0.5, verify_repeats=3, **_CPU,
    ),
    ("cuda", "quick"): Preset(
        cache_multiple=16, min_size_bytes=1024 * MIB, ks=(1, 16, 256, 2048, 8192), flops_per_step=2e12, repeats=5,
        gemm_flops=2e12, verify_steps=30, verify_min_seconds=0.1, verify_repeats=2, **_GPU,
    ),
    ("cuda", "default"): Preset(
        cache_multiple=32, min_size_bytes=2048 * MIB, ks=(1, 4, 16, 64, 256, 1024, 2048, 4096, 8192),
        flops_per_step=4e12, repeats=10, gemm_flops=4e12, verify_steps=60, verify_min_seconds=0.3, verify_repeats=3,
        **_GPU,
    ),
}  # fmt: skip


@dataclass(frozen=True)
class BenchConfig:
    mode: str
    device: str
    dtypes: tuple[str, ...]
    size_bytes: float
    features: int
    ks: tuple[int, ...]
    flops_per_step: float
    repeats: int
    warmup_calls: int
    gemm_flops: float
    verify: bool
    verify_memory_features: int
    verify_features: int
    verify_k: int
    verify_steps: int
    verify_min_seconds: float
    verify_repeats: int
    cache_bytes: float
    threads: int | None = None
    size_scale: float = 1.0

    def rows_full(self, dtype: str) -> int:
        """Rows of X at the memory-bound points: ``size_bytes`` of X, at least MIN_ROWS_PER_FEATURE·d."""
        rows = int(self.size_bytes // (self.features * ITEMSIZE_BYTES[dtype]))
        return max(rows, int(MIN_ROWS_PER_FEATURE * self.features))

    def rows_for(self, dtype: str, k: int) -> int:
        """Rows m at a swept k: as many as ``flops_per_step`` allows (4·m·d·k), within [d/2, rows_full]."""
        budget = int(self.flops_per_step // (4 * self.features * k))
        return max(int(MIN_ROWS_PER_FEATURE * self.features), min(self.rows_full(dtype), budget))

    def gemm_n(self) -> int:
        """Side of the square GEMM check: 2·n³ ≈ gemm_flops, rounded to a multiple of 64."""
        return max(64, int(round((self.gemm_flops / 2) ** (1 / 3) / 64)) * 64)

    def verify_memory_rows(self, dtype: str) -> int:
        d = self.verify_memory_features
        rows = int(VERIFY_MEMORY_X_FRACTION * self.size_bytes // (d * ITEMSIZE_BYTES[dtype]))
        return max(rows, math.ceil(VERIFY_ROWS_PER_FEATURE * d))

    def verify_compute_rows(self) -> int:
        d, k = self.verify_features, self.verify_k
        return max(math.ceil(VERIFY_ROWS_PER_FEATURE * d), int(self.flops_per_step // (4 * d * k)))

    def verify_steps_for(self, predicted_step_seconds: float) -> int:
        """At least ``verify_steps``, and enough to last ``verify_min_seconds`` by the prediction."""
        wanted = math.ceil(self.verify_min_seconds / max(predicted_step_seconds, 1e-12))
        return int(min(MAX_VERIFY_STEPS, max(self.verify_steps, wanted)))

    def tasks(self) -> int:
        """Units of progress: each point, each GEMM check, each training run."""
        per_dtype = len(self.ks) + 1 + (2 if self.verify else 0)
        return per_dtype * len(self.dtypes)

    def required_bytes(self) -> float:
        """The most memory alive at once: phases run one after another and free their arrays."""
        peak = 0.0
        for dtype in self.dtypes:
            s, d = ITEMSIZE_BYTES[dtype], self.features
            x = self.rows_full(dtype) * d
            per_point = max(2 * self.rows_for(dtype, k) * k + 2 * d * k for k in self.ks)
            n = self.gemm_n()
            phases = [(x + per_point) * s, 3 * n * n * s]
            if self.verify:
                dm, dv, kv = self.verify_memory_features, self.verify_features, self.verify_k
                m1, m2 = self.verify_memory_rows(dtype), self.verify_compute_rows()
                phases.append((m1 * dm + 3 * m1 + 4 * dm) * s)  # X, Y, P, noise; W, W_true, G (k = 1)
                phases.append((m2 * dv + 3 * m2 * kv + 4 * dv * kv) * s)
            peak = max(peak, *phases)
        return peak + RUNTIME_OVERHEAD_BYTES


def parse_device(text: str) -> str:
    device = (text or "").strip().lower()
    if device in {"gpu", "cuda:0"}:
        device = "cuda"
    if device not in DEVICE_DTYPES:
        raise InvalidValue(f"{opt('device')}: {text!r} is not a device", hint="choose cpu or cuda")
    return device


def parse_dtypes(text: str | None, device: str) -> tuple[str, ...]:
    """``'float32,float64'`` → ('float32', 'float64'); aliases fp32/f32/single...; refuses what ``device``
    cannot run. None or empty = every dtype of the device."""
    supported = DEVICE_DTYPES[device]
    if text is None or not text.strip():
        return supported
    chosen: list[str] = []
    for raw in text.split(","):
        name = raw.strip().lower()
        if not name:
            continue
        dtype = DTYPE_ALIASES.get(name)
        if dtype is None or dtype not in supported:
            close = suggest(name, list(supported))
            where = f"on {device}" if dtype else "(unknown dtype)"
            hint = f"choose from {', '.join(supported)}" + (f"; did you mean {close[0]}?" if close else "")
            raise InvalidValue(f"{opt('dtype')}: {raw.strip()!r} is not supported {where}", hint=hint)
        if dtype not in chosen:
            chosen.append(dtype)
    if not chosen:
        raise InvalidValue(f"{opt('dtype')}: {text!r} names no dtype", hint=f"choose from {', '.join(supported)}")
    return tuple(chosen)


def make_config(
    *,
    device: str,
    quick: bool,
    dtypes: tuple[str, ...],
    cache_bytes: float,
    size_bytes: float | None = None,
    verify: bool = True,
    threads: int | None = None,
    size_scale: float = 1.0,
) -> BenchConfig:
    """The run's plan. ``size_scale`` (tests only) shrinks every size: X and FLOP budgets by the factor,
    d by its square root, so a whole run takes well under a second."""
    mode = "quick" if quick else "default"
    p = PRESETS[(device, mode)]
    if not 0 < size_scale <= 1:
        raise InvalidValue(f"{opt('size_scale')}: {size_scale!r} must be in (0, 1]")
    root = math.sqrt(size_scale)

    def shrink(n: int) -> int:
        return max(16, int(round(n * root / 16)) * 16)

    size = size_bytes if size_bytes is not None else max(p.min_size_bytes, p.cache_multiple * cache_bytes)
    if size_bytes is None:
        size *= size_scale
    return BenchConfig(
        mode=mode,
        device=device,
        dtypes=dtypes,
        size_bytes=float(size),
        features=shrink(p.features),
        ks=p.ks,
        flops_per_step=p.flops_per_step * size_scale,
        repeats=p.repeats,
        warmup_calls=p.warmup_calls,
        gemm_flops=p.gemm_flops * size_scale,
        verify=verify,
        verify_memory_features=shrink(p.verify_memory_features),
        verify_features=shrink(p.verify_features),
        verify_k=max(1, int(round(p.verify_k * root))),
        verify_steps=p.verify_steps,
        verify_min_seconds=p.verify_min_seconds * size_scale,
        verify_repeats=p.verify_repeats,
        cache_bytes=float(cache_bytes),
        threads=threads,
        size_scale=size_scale,
    )


def fit_to_memory(config: BenchConfig, available_bytes: float | None, size_given: bool) -> BenchConfig:
    """Refuse (``--size`` given) or shrink (default size) a run that would not fit in free memory."""
    if available_bytes is None:
        return config
    usable = FREE_MEMORY_USABLE_FRACTION * available_bytes
    if config.required_bytes() <= usable:
        return config
    lo, hi = 1.0 * MIB, config.size_bytes
    if replace(config, size_bytes=lo).required_bytes() > usable:
        raise InvalidValue(
            f"bench needs {format_si(config.required_bytes(), 'B')} of memory but only "
            f"{format_si(available_bytes, 'B')} is free",
            hint=f"free some memory, or use {opt('quick')} and fewer {opt('dtype')}",
        )
    for _ in range(60):
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if replace(config, size_bytes=mid).required_bytes() <= usable else (lo, mid)
    fitting = int(lo // MIB) * MIB
    if size_given:
        raise InvalidValue(
            f"{opt('size')} {format_si(config.size_bytes, 'B')}: the run needs "
            f"{format_si(config.required_bytes(), 'B')} but only {format_si(available_bytes, 'B')} of memory is free",
            hint=f"use {opt('size')} {fitting // MIB}MiB or less",
        )
    return replace(config, size_bytes=float(fitting))
