"""The `bench --verify-serve` report: a real decode on this machine, predicted by `serve` and then measured.

Units are in the field names (seconds, bytes/s, FLOP/s, tokens/s); SI decimal. ``error`` = predicted /
measured − 1.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from flopcast.reports.base import ReportBase
from flopcast.units import format_si

# DESIGN §8 "serving": decode tokens/s within 12% (median) of measurements, time to first token within 20%.
DECODE_TARGET_ABS_ERROR = 0.12
TTFT_TARGET_ABS_ERROR = 0.20


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid")


class VerifyServeMachine(_Part):
    device: str = Field(description="cpu or cuda")
    name: str
    torch_version: str
    threads: int | None = Field(description="PyTorch intra-op threads (CPU)")
    cache_bytes: float
    dtype: str
    bandwidth_bytes_per_s: float = Field(description="measured: a mat-vec beyond the cache")
    peak_flops_per_s: float = Field(description="measured: a large square GEMM")


class VerifyServeModel(_Part):
    layers: int
    d_model: int
    heads: int
    kv_heads: int
    ffn: int
    vocab: int
    params: int
    batch: int
    prompt_tokens: int
    output_tokens: int
    kernels_per_decode_step: int = Field(description="counted: operators that run a kernel in one decode step")
    kernels_per_decode_step_runtime: float = Field(description="what the eager runtime profile assumes")


class VerifyServeFigure(_Part):
    predicted: float
    measured: float
    error: float = Field(description="predicted / measured - 1")
    target_abs_error: float
    within_target: bool


class VerifyServeReport(ReportBase):
    report: str = "verify-serve"
    machine: VerifyServeMachine
    model: VerifyServeModel
    runtime: str
    decode_tokens_per_second: VerifyServeFigure = Field(description="per sequence")
    time_to_first_token_seconds: VerifyServeFigure
    predicted_decode_bound: str
    generated_tokens: list[int] = Field(description="greedy tokens of the first sequence (random weights)")
    elapsed_seconds: float


def figure(predicted: float, measured: float, target: float) -> VerifyServeFigure:
    error = predicted / measured - 1.0
    return VerifyServeFigure(
        predicted=predicted, measured=measured, error=error, target_abs_error=target, within_target=abs(error) <= target
    )


def rows(report: VerifyServeReport) -> tuple[list[str], list[list[str]]]:
    """Headers and rows for the table, Markdown and CSV renderers."""

    def line(label, f: VerifyServeFigure, fmt) -> list[str]:
        verdict = "yes" if f.within_target else "NO"
        return [label, fmt(f.predicted), fmt(f.measured), f"{f.error:+.1%}", f"±{f.target_abs_error:.0%} {verdict}"]

    def seconds(v: float) -> str:
        return f"{v * 1e3:.3g} ms" if v < 1 else f"{v:.3g} s"

    headers = ["", "predicted", "measured", "error", "within target"]
    return headers, [
        line("decode tokens/s (per sequence)", report.decode_tokens_per_second, lambda v: f"{v:,.4g}"),
        line("time to first token", report.time_to_first_token_seconds, seconds),
    ]


def title(report: VerifyServeReport) -> str:
    m, s = report.machine, report.model
    return (
        f"flopcast bench --verify-serve ({report.elapsed_seconds:.1f} s): {m.name} ({m.device}, {m.dtype}"
        f"{f', {m.threads} threads' if m.threads else ''}), measured {format_si(m.bandwidth_bytes_per_s, 'B/s')}, "
        f"{format_si(m.peak_flops_per_s, 'FLOP/s')}\nLlama-style decoder {s.layers} × {s.d_model} "
        f"({format_si(s.params, '')} params), batch {s.batch}, {s.prompt_tokens} prompt + {s.output_tokens} output "
        f"tokens, runtime {report.runtime}; predicted decode {report.predicted_decode_bound} bound; "
        f"{s.kernels_per_decode_step} kernels per step counted ({s.kernels_per_decode_step_runtime:g} assumed)"
    )
