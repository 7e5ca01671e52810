"""The `bench --verify-train` report: a real PyTorch transformer's measured peak memory and step time against
flopcast's prediction, per recompute mode (bench/verify_train.py)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from flopcast.reports.base import ReportBase


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TrainVerifyShape(_Part):
    """The transformer trained (Llama form: RMSNorm, SwiGLU, rotary, GQA, untied head, no dropout)."""

    model: str = Field(description="the model asked about; the shape is it scaled down by `scale`")
    scale: int
    layers: int
    d_model: int
    heads: int
    kv_heads: int
    ffn: int
    vocab: int
    seq_len: int
    micro_batch: int
    precision: str
    grad_dtype: str


class TrainVerifyRow(_Part):
    recompute: str
    params: int
    predicted_allocated_bytes: float = Field(description="flopcast's allocated bytes at the peak")
    measured_peak_bytes: float = Field(description="live tensor bytes at the peak (CUDA: max_memory_allocated)")
    memory_error: float = Field(description="predicted / measured − 1")
    peak_moment: str
    predicted_step_seconds: float | None = Field(None, description="null without --hardware")
    measured_step_seconds: float = Field(description="median of the timed steps")
    step_error: float | None = None


class TrainVerifyReport(ReportBase):
    report: Literal["verify-train"] = "verify-train"
    device: str
    torch_version: str
    hardware: str | None = Field(None, description="profile the step time was predicted on (null: not predicted)")
    shape: TrainVerifyShape
    rows: list[TrainVerifyRow]
    target_abs_error: float
    within_target: bool = Field(description="every mode's memory error within the target")
    median_abs_memory_error: float


TRAIN_VERIFY_HEADERS = [
    "recompute", "predicted", "measured", "memory error", "peak at", "step predicted", "step measured", "step error",
]  # fmt: skip
TRAIN_VERIFY_CSV_HEADERS = [
    "recompute", "params", "predicted_allocated_bytes", "measured_peak_bytes", "memory_error", "peak_moment",
    "predicted_step_seconds", "measured_step_seconds", "step_error",
]  # fmt: skip


def _mb(b: float) -> str:
    return f"{b / 1e6:,.1f} MB"


def _s(x: float | None) -> str:
    return "—" if x is None else (f"{x * 1e3:.0f} ms" if x < 1 else f"{x:.2f} s")


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{x:+.1%}"


def train_verify_rows(report: TrainVerifyReport) -> list[list[str]]:
    return [
        [
            r.recompute, _mb(r.predicted_allocated_bytes), _mb(r.measured_peak_bytes), _pct(r.memory_error),
            r.peak_moment, _s(r.predicted_step_seconds), _s(r.measured_step_seconds), _pct(r.step_error),
        ]
        for r in report.rows
    ]  # fmt: skip


def train_verify_csv_rows(report: TrainVerifyReport) -> list[list]:
    return [[getattr(r, h) for h in TRAIN_VERIFY_CSV_HEADERS] for r in report.rows]


def shape_line(report: TrainVerifyReport) -> str:
    s = report.shape
    return (
        f"{s.model} scaled 1/{s.scale}: {s.layers} layers, d={s.d_model}, {s.heads} heads ({s.kv_heads} KV), "
        f"ffn {s.ffn}, vocab {s.vocab}, seq {s.seq_len}, micro-batch {s.micro_batch}, {s.precision} "
        f"(grads {s.grad_dtype}) on {report.device}, PyTorch {report.torch_version}"
    )


def verdict_line(report: TrainVerifyReport) -> str:
    word = "within" if report.within_target else "OUTSIDE"
    return (
        f"Memory: median |error| {report.median_abs_memory_error:.1%}; every mode {word} the "
        f"±{report.target_abs_error:.0%} target" if report.within_target else
        f"Memory: median |error| {report.median_abs_memory_error:.1%}; some mode {word} the "
        f"±{report.target_abs_error:.0%} target"
    )  # fmt: skip
