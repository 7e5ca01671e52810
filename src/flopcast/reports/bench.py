"""The `bench` report: the machine, the measured points, the fitted roofline, a direct GEMM check and the
closed-loop training check (DESIGN §5, §7).

Units are in the field names (seconds, bytes, FLOP/s); SI decimal. Dtype keys are NumPy/PyTorch names
(``float64``, ``float32``, ``bfloat16``, ``float16``). A report with ``partial: true`` was interrupted
(Ctrl-C) and holds only what was measured before.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from flopcast.reports.base import ReportBase


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MachineInfo(_Part):
    device: Literal["cpu", "cuda"]
    name: str = Field(description="CPU model or GPU name")
    vendor: str | None = None
    cores_logical: int | None = Field(default=None, description="logical CPUs (os.cpu_count)")
    cores_usable: int | None = Field(default=None, description="CPUs this process may use (affinity)")
    cores_physical: int | None = Field(default=None, description="distinct physical cores (/sys topology)")
    multiprocessors: int | None = Field(default=None, description="GPU: streaming multiprocessors")
    threads_requested: int | None = Field(default=None, description="--threads, None = BLAS default")
    threads: int | None = Field(default=None, description="BLAS threads in force (threadpoolctl)")
    blas_library: str | None = None
    blas_version: str | None = None
    blas_threading_layer: str | None = None
    memory_total_bytes: float | None = None
    memory_available_bytes: float | None = None
    cache_bytes: float | None = Field(default=None, description="last-level cache (CPU) or L2 (GPU)")
    cache_source: str | None = None
    numpy_version: str | None = None
    python_version: str | None = None
    platform: str | None = None
    torch_version: str | None = None
    cuda_version: str | None = None
    tf32_allowed: bool | None = Field(default=None, description="GPU: whether float32 GEMMs could use TF32")


class BenchSettings(_Part):
    mode: Literal["quick", "default"]
    device: Literal["cpu", "cuda"]
    dtypes: list[str]
    size_bytes: float = Field(description="size of X at the memory-bound points (--size)")
    features: int = Field(description="d, the columns of X in the sweep")
    ks: list[int] = Field(description="the swept numbers of outputs k")
    flops_per_step_target: float = Field(description="rows m are cut so one step does at most this many FLOPs")
    repeats: int
    warmup_calls: int
    verify: bool
    size_scale: float = Field(default=1.0, description="test-only shrink factor of every size (1 = real run)")


class BenchPoint(_Part):
    dtype: str
    k: int
    m: int
    d: int
    x_bytes: float = Field(description="size of X at this point")
    beyond_cache: bool = Field(description="X is at least twice the last-level cache (CPU) / L2 (GPU)")
    repeats: int
    calls_per_sample: int
    seconds: float = Field(description="median seconds per step")
    seconds_min: float
    seconds_max: float
    spread: float = Field(description="(max − min) / median of the samples")
    flops: float = Field(description="FLOPs per step (4·m·d·k + m·k + 2·d·k)")
    bytes: float = Field(description="bytes per step, itemsize·(2·m·d + 5·m·k + 7·d·k)")
    flops_per_s: float = Field(description="flops / seconds (the median)")
    bytes_per_s: float = Field(description="bytes / seconds (the median)")
    intensity_flops_per_byte: float
    attainable_flops_per_s: float | None = Field(default=None, description="the fitted roofline at this intensity")
    efficiency: float | None = Field(
        default=None, description="flops_per_s (median) / attainable_flops_per_s; the fit uses seconds_min"
    )
    model_seconds: float | None = Field(
        default=None, description="per-operation roofline time of one step with the fitted peak and bandwidth"
    )


class RooflineFit(_Part):
    peak_flops_per_s: dict[str, float] = Field(description="fitted sustained peak per dtype")
    bandwidth_bytes_per_s: float = Field(description="the machine's fitted bandwidth: the highest over dtypes")
    bandwidth_bytes_per_s_by_dtype: dict[str, float] = Field(description="bandwidth of each dtype's roofline")
    ridge_flops_per_byte: dict[str, float] = Field(description="peak / bandwidth of each dtype")
    peak_points: dict[str, int] = Field(description="points within 5 % of each dtype's fitted peak (plateau)")
    bandwidth_points: int = Field(description="points within 5 % of their dtype's fitted bandwidth")
    method: str


class GemmCheck(_Part):
    dtype: str
    n: int = Field(description="square n×n · n×n product")
    seconds: float = Field(description="median seconds per product")
    seconds_min: float = Field(description="fastest sample")
    spread: float
    flops_per_s: float = Field(description="2·n³ / seconds_min (the fastest sample, as the fit uses)")
    fitted_over_gemm: float | None = Field(default=None, description="fitted peak / this measurement")


class VerifyRun(_Part):
    dtype: str
    regime: Literal["memory-bound", "compute-bound"]
    m: int
    d: int
    k: int
    steps: int
    flops: float = Field(description="FLOPs of the whole training loop")
    bytes: float = Field(description="bytes of the whole training loop")
    predicted_seconds: float
    measured_seconds: float = Field(description="the fastest of the trainings (least disturbed)")
    measured_all: list[float] = Field(description="wall seconds of every training (each from W = 0)")
    error: float = Field(description="predicted / measured − 1")
    loss_initial: float
    loss_final: float
    loss_fell: bool
    weight_error: float = Field(description="‖W − W_true‖ / ‖W_true‖ after training")


class Verify(_Part):
    predicted_seconds: float = Field(description="sum over the runs")
    measured_seconds: float
    error: float = Field(description="predicted / measured − 1 over all runs")
    target_abs_error: float
    within_target: bool
    peak_source: str = Field(description="which fitted numbers made the prediction")
    runs: list[VerifyRun]


class BenchReport(ReportBase):
    report: Literal["bench"] = "bench"
    partial: bool = Field(default=False, description="interrupted: holds only what was measured")
    settings: BenchSettings
    machine: MachineInfo
    roofline: RooflineFit | None = None
    points: list[BenchPoint] = Field(default_factory=list)
    gemm_check: dict[str, GemmCheck] = Field(default_factory=dict)
    verify: Verify | None = None
    elapsed_seconds: float = 0.0
    other_cpu_share: float | None = Field(
        default=None, description="share of all CPU time other programs used during the run (/proc/stat)"
    )
    saved_profile: str | None = Field(default=None, description="path of the profile --save-profile wrote")


# -- plain rows shared by the table, Markdown and CSV renderers (strings; no terminal library) -----------

ROOFLINE_HEADERS = ["dtype", "fitted peak", "direct GEMM", "fitted/GEMM", "bandwidth", "ridge FLOP/byte"]
POINT_HEADERS = ["dtype", "k", "m × d", "X", "median", "spread", "FLOP/s", "bytes/s", "FLOP/byte", "efficiency"]
VERIFY_HEADERS = ["dtype", "regime", "m × d × k", "steps", "predicted", "measured", "error", "loss"]
POINT_CSV_HEADERS = [
    "dtype", "k", "m", "d", "x_bytes", "beyond_cache", "seconds", "seconds_min", "seconds_max", "spread",
    "flops", "bytes", "flops_per_s", "bytes_per_s", "intensity_flops_per_byte", "attainable_flops_per_s",
    "efficiency", "model_seconds",
]  # fmt: skip


def _si(value: float | None, unit: str) -> str:
    from flopcast.units import format_si

    return "" if value is None else format_si(value, unit)


def _seconds(value: float) -> str:
    return f"{value * 1e3:.3g} ms" if value < 1 else f"{value:.3g} s"


def machine_line(report: BenchReport) -> str:
    m = report.machine
    if m.device == "cpu":
        cores = m.cores_usable or m.cores_logical
        blas = f"{m.blas_library or 'BLAS'} {m.blas_version or ''}".strip()
        return (
            f"{m.name}, {cores} cores, {_si(m.memory_total_bytes, 'B')} RAM, cache {_si(m.cache_bytes, 'B')}; "
            f"{blas}, {m.threads} thread{'' if m.threads == 1 else 's'}; numpy {m.numpy_version}"
        )
    return (
        f"{m.name}, {m.multiprocessors} SMs, {_si(m.memory_total_bytes, 'B')}, L2 {_si(m.cache_bytes, 'B')}; "
        f"PyTorch {m.torch_version}, CUDA {m.cuda_version}, TF32 {'on' if m.tf32_allowed else 'off'}"
    )


def roofline_rows(report: BenchReport) -> list[list[str]]:
    fit = report.roofline
    if fit is None:
        return []
    rows = []
    for dtype, peak in fit.peak_flops_per_s.items():
        gemm = report.gemm_check.get(dtype)
        rows.append([
            dtype, _si(peak, "FLOP/s"), _si(gemm.flops_per_s, "FLOP/s") if gemm else "",
            f"{gemm.fitted_over_gemm:.3f}" if gemm and gemm.fitted_over_gemm else "",
            _si(fit.bandwidth_bytes_per_s_by_dtype[dtype], "B/s"), f"{fit.ridge_flops_per_byte[dtype]:.3g}",
        ])  # fmt: skip
    return rows


def point_rows(report: BenchReport) -> list[list[str]]:
    return [
        [
            p.dtype, str(p.k), f"{p.m} × {p.d}", _si(p.x_bytes, "B"), _seconds(p.seconds), f"{p.spread:.0%}",
            _si(p.flops_per_s, "FLOP/s"), _si(p.bytes_per_s, "B/s"), f"{p.intensity_flops_per_byte:.3g}",
            "" if p.efficiency is None else f"{p.efficiency:.0%}",
        ]
        for p in report.points
    ]  # fmt: skip


def verify_rows(report: BenchReport) -> list[list[str]]:
    if report.verify is None:
        return []
    rows = [
        [
            r.dtype, r.regime, f"{r.m} × {r.d} × {r.k}", str(r.steps), _seconds(r.predicted_seconds),
            _seconds(r.measured_seconds), f"{r.error:+.1%}", f"{r.loss_initial:.3g} → {r.loss_final:.3g}",
        ]
        for r in report.verify.runs
    ]  # fmt: skip
    v = report.verify
    rows.append(["all", "", "", "", _seconds(v.predicted_seconds), _seconds(v.measured_seconds), f"{v.error:+.1%}", ""])
    return rows


def point_csv_rows(report: BenchReport) -> list[list[object]]:
    return [[getattr(p, h) for h in POINT_CSV_HEADERS] for p in report.points]
