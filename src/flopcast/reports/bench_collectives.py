"""The `bench --collectives` report: collectives timed through torch.distributed, and a latency + bus bandwidth
fitted per collective.

Units are in the field names: bytes, seconds, bytes/s (SI decimal). Bandwidths follow nccl-tests
(doc/PERFORMANCE.md): ``algorithm_bandwidth = bytes / seconds``, ``bus_bandwidth = algorithm_bandwidth ×
bus_factor`` (see :mod:`flopcast.bench.collectives`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from flopcast.reports.base import ReportBase
from flopcast.units import format_si


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CollectivesSettings(_Part):
    mode: Literal["quick", "default"]
    launcher: Literal["torchrun", "nproc"] = Field(description="torchrun (env vars) or flopcast --nproc N")
    backend: Literal["gloo", "nccl"]
    device: Literal["cpu", "cuda"]
    device_name: str
    torch_version: str
    ranks: int
    nodes: int = Field(description="distinct hostnames among the ranks")
    ranks_per_node: int = Field(description="the most ranks on one host")
    dtype: str = "float32"
    min_bytes: int
    max_bytes: int
    warmup_iterations: int
    repeats: int


class CollectivePoint(_Part):
    collective: str
    bytes: int = Field(description="nccl-tests' size: the whole buffer (all-gather: gathered; reduce-scatter: input)")
    seconds: float = Field(description="median over repeats of the slowest rank's time")
    seconds_min: float = Field(description="fastest repeat")
    spread: float = Field(description="(slowest - fastest repeat) / median")
    algorithm_bandwidth_bytes_per_s: float
    bus_bandwidth_bytes_per_s: float


class CollectiveFit(_Part):
    collective: str
    bus_factor: float = Field(description="busbw / algbw at this rank count (nccl-tests PERFORMANCE.md)")
    latency_s: float = Field(description="fitted launch latency: t(0)")
    bus_bandwidth_bytes_per_s: float | None = Field(description="fitted; None when time did not grow with size")
    max_relative_residual: float = Field(description="worst |fit / measured - 1| over the sizes")
    points: int


class CollectivesReport(ReportBase):
    report: str = "collectives"
    settings: CollectivesSettings
    fits: list[CollectiveFit]
    points: list[CollectivePoint]
    unsupported: dict[str, str] = Field(default_factory=dict, description="collective -> why the backend skipped it")
    elapsed_seconds: float
    saved_profile: str | None = Field(default=None, description="the profile file --save-profile wrote")

    def fit(self, collective: str) -> CollectiveFit | None:
        return next((f for f in self.fits if f.collective == collective), None)


FIT_HEADERS = ["collective", "latency", "bus bandwidth", "bus factor", "worst residual", "sizes"]
POINT_HEADERS = ["collective", "size", "time (median)", "spread", "algbw", "busbw"]
POINT_CSV_HEADERS = [
    "collective", "bytes", "seconds", "seconds_min", "spread", "algorithm_bandwidth_bytes_per_s",
    "bus_bandwidth_bytes_per_s",
]  # fmt: skip


def seconds_text(value: float) -> str:
    if value < 1e-3:
        return f"{value * 1e6:.3g} µs"
    return f"{value * 1e3:.3g} ms" if value < 1 else f"{value:.3g} s"


def bytes_text(value: float) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if value >= scale:
            return f"{value / scale:.4g} {unit}"
    return f"{value:.0f} B"


def fit_rows(report: CollectivesReport) -> list[list[str]]:
    rows = []
    for f in report.fits:
        bw = format_si(f.bus_bandwidth_bytes_per_s, "B/s") if f.bus_bandwidth_bytes_per_s else "—"
        rows.append([f.collective, seconds_text(f.latency_s), bw, f"{f.bus_factor:.3g}",
                     f"{f.max_relative_residual:.1%}", str(f.points)])  # fmt: skip
    rows += [[name, "not run", "—", "—", "—", why] for name, why in report.unsupported.items()]
    return rows


def point_rows(report: CollectivesReport) -> list[list[str]]:
    return [
        [p.collective, bytes_text(p.bytes), seconds_text(p.seconds), f"{p.spread:.0%}",
         format_si(p.algorithm_bandwidth_bytes_per_s, "B/s"), format_si(p.bus_bandwidth_bytes_per_s, "B/s")]
        for p in report.points
    ]  # fmt: skip


def point_csv_rows(report: CollectivesReport) -> list[list]:
    return [[getattr(p, h) for h in POINT_CSV_HEADERS] for p in report.points]


def title(report: CollectivesReport) -> str:
    s = report.settings
    where = f"{s.nodes} nodes" if s.nodes > 1 else "one host"
    return (
        f"flopcast bench --collectives ({s.mode}, {report.elapsed_seconds:.1f} s): {s.ranks} ranks on {where}, "
        f"{s.backend} on {s.device_name} ({s.launcher}), PyTorch {s.torch_version}\n"
        f"{s.dtype} sum, {bytes_text(s.min_bytes)} to {bytes_text(s.max_bytes)}, {s.warmup_iterations} warm-up + "
        f"median of {s.repeats} repeats after a barrier; busbw per nccl-tests PERFORMANCE.md"
    )
