"""The `serve --plan` report: the cheapest serving configuration under latency targets at a request rate.

Units are in the field names (seconds, usd, per_s). A configuration is a hardware profile, its runtime, a
weight format, a tensor-parallel degree and a number of replicas (each replica takes an equal share of the
requests); ``devices`` = tensor parallel × replicas. Latencies are those of serving_load.py at the replica's
share of the rate.
"""

from __future__ import annotations

from pydantic import Field

from flopcast.reports.base import ReportBase
from flopcast.reports.serve import ServeModel, _Part


def ms_text(seconds: float) -> str:
    """A latency in milliseconds for tables and messages: ``19.3``, ``0.236``, ``1,180`` (never 1.18e+03)."""
    value = seconds * 1e3
    return f"{value:,.0f}" if value >= 1_000 else f"{value:.3g}"


def targets_text(ttft_seconds: float | None, tpot_seconds: float | None) -> str:
    """``TTFT ≤ 500 ms and TPOT ≤ 50 ms`` (the targets given; empty when none)."""
    parts = []
    if ttft_seconds is not None:
        parts.append(f"TTFT ≤ {ttft_seconds * 1e3:.4g} ms")
    if tpot_seconds is not None:
        parts.append(f"TPOT ≤ {tpot_seconds * 1e3:.4g} ms")
    return " and ".join(parts)


class ServePlanInputs(_Part):
    model: str
    hardware: list[str] = Field(description="the profiles searched (after those skipped)")
    request_rate_per_s: float
    prompt_tokens: int
    output_tokens: int
    kv_bits: int
    weights_bits: list[int] | None = Field(description="--weights as given; None = every format the runtime has")
    runtime: str | None = Field(description="--runtime as given; None = the default per device kind")
    compute: list[str] | None = Field(
        default=None,
        description="--compute as given; None = bf16 and every low-bit format the hardware and runtime have",
    )
    ttft_target_seconds: float | None
    tpot_target_seconds: float | None
    percentile: str = Field(description="p50 or p90: the latency percentile the targets are met at")
    max_devices: int
    price_tier: str | None = None
    price_per_hour_usd: float | None = None
    matmul_efficiency: float | None = Field(default=None, description="--matmul-efficiency; None = fitted curve")
    bandwidth_efficiency: float | None = Field(default=None, description="--bandwidth-efficiency; None = runtime's")


class ServePlanPoint(_Part):
    hardware: str
    runtime: str
    weights_bits: int
    compute: str = Field(
        default="bf16",
        description="the linear GEMMs' format: bf16 (weight-only below 16 bit), fp8 (W8A8) or fp4 (W4A4)",
    )
    tensor_parallel: int = Field(description="devices per replica (tensor parallelism)")
    replicas: int = Field(description="copies of the model, each serving rate / replicas")
    devices: int
    usd_per_hour: float = Field(description="devices × price per device-hour, chosen tier")
    usd_per_million_tokens: float = Field(description="per million output tokens at this request rate")
    max_request_rate_per_s: float = Field(description="the most requests/s all replicas together sustain")
    running_batch: float | None = Field(description="mean sequences decoding together per replica")
    prefill_busy_fraction: float | None
    step_seconds: float | None = Field(description="decode step at the running batch")
    time_to_first_token_p50_seconds: float | None
    time_to_first_token_p90_seconds: float | None
    time_per_output_token_p50_seconds: float | None
    time_per_output_token_p90_seconds: float | None
    meets_targets: bool
    miss: str | None = Field(default=None, description="what a near miss misses, and by how much")


class ServePlanSkipped(_Part):
    hardware: str
    reason: str


class ServePlanReport(ReportBase):
    report: str = "serve-plan"
    inputs: ServePlanInputs
    model: ServeModel = Field(description="the model planned for (--model, or the architecture flags)")
    configurations_searched: int = Field(description="hardware × weights × tensor parallel × replicas evaluated")
    feasible: bool
    best: ServePlanPoint | None = Field(description="the cheapest configuration meeting the targets")
    pareto: list[ServePlanPoint] = Field(
        description="cost per hour vs TTFT at the percentile, among configurations meeting the TPOT target"
    )
    near_misses: list[ServePlanPoint] = Field(default_factory=list, description="closest ones when none meets")
    infeasible_reason: str | None = None
    skipped: list[ServePlanSkipped] = Field(default_factory=list, description="hardware not searched, and why")
    assumptions: list[str]
