"""Plain rows (strings) of a `serve` report for the table, Markdown and CSV renderers (reports/serve.py holds
the report itself): one row per figure, one column per weight format, the load rows when there is a load."""

from __future__ import annotations

from flopcast.reports.serve import ServeMemory, ServeReport, ServeVariant
from flopcast.units import format_si


# --- plain rows for table / markdown / csv --------------------------------------------------------------
def _gb(value: float) -> str:
    return format_si(value, "B")


def _seconds(value: float) -> str:
    if value < 1.0:
        return f"{value * 1e3:.3g} ms"
    return f"{value:.3g} s"


def _rate(value: float) -> str:
    return f"{value:,.4g}" if value < 1e4 else f"{value:,.0f}"


def _usd(value: float | None) -> str:
    return "—" if value is None else f"${value:,.3g}" if value < 1000 else f"${value:,.0f}"


def _ridge(value: float | None) -> str:
    return "never" if value is None else f"{value:,.0f}"


def _fits(m: ServeMemory) -> str:
    if m.fits:
        return "yes"
    return f"NO (needs {m.devices_needed})" if m.devices_needed else "NO (no number fits)"


ROW_LABELS = [
    "devices (tensor parallel)",
    "weights (all devices)",
    "  of which quantization scales",
    "KV cache (all devices)",
    "runtime allowance / device",
    "memory / device",
    "capacity / device",
    "fits",
    "largest batch that fits",
    "prefill = time to first token",
    "prefill bound",
    "decode time / token",
    "tokens/s per request",
    "tokens/s total (batch)",
    "decode bound",
    "batch where decode turns compute bound",
    "decode bandwidth (share of profile's)",
    "runtime fixed cost / token",
    "all-reduce time / token",
    "request latency (prefill + decode)",
    "cost / 1M output tokens",
]


def _column(v: ServeVariant) -> list[str]:
    m, p, d = v.memory, v.prefill, v.decode
    tier = f" ({v.cost.tier})" if v.cost.tier else ""
    return [
        f"{v.devices} ({v.link})" if v.devices > 1 else "1",
        _gb(m.weights_bytes),
        _gb(m.quantization_overhead_bytes),
        _gb(m.kv_cache_bytes),
        _gb(m.runtime_allowance_bytes),
        _gb(m.per_device_bytes),
        _gb(m.capacity_bytes),
        _fits(m),
        f"{m.max_batch_that_fits:,}",
        _seconds(p.seconds),
        p.bound,
        _seconds(d.seconds_per_token),
        _rate(d.tokens_per_second),
        _rate(d.total_tokens_per_second),
        d.bound,
        _ridge(d.ridge_batch),
        f"{d.bandwidth_efficiency:.0%}",
        _seconds(d.overhead_seconds_per_token),
        _seconds(d.communication_seconds_per_token),
        _seconds(v.request_seconds),
        _usd(v.cost.usd_per_million_tokens) + (tier if v.cost.usd_per_million_tokens is not None else ""),
    ]


LOAD_ROW_LABELS = [
    "under load: requests/s (most sustained)",
    "  running batch (steady state)",
    "  time to first token P50 / P90",
    "  time per output token P50 / P90",
    "  output tokens/s at this load",
    "  cost / 1M output tokens at this load",
    "  prompt queue: mean wait (Pollaczek-Khinchine)",
    "  longest stall one prompt puts between tokens",
]
CHUNK_ROW_LABEL = "  prefill chunks per mean prompt × step"


def _load_column(v: ServeVariant) -> list[str]:
    g = v.load
    head = f"{g.request_rate_per_s:g} ({g.max_request_rate_per_s:.3g})"
    if not g.sustainable:
        return [head, "saturated", "—", "—", "—", "—", "—", "—", "—"]
    return [
        head,
        f"{g.running_batch:.3g}",
        f"{_seconds(g.time_to_first_token_p50_seconds)} / {_seconds(g.time_to_first_token_p90_seconds)}",
        f"{_seconds(g.time_per_output_token_p50_seconds)} / {_seconds(g.time_per_output_token_p90_seconds)}",
        _rate(g.output_tokens_per_second),
        _usd(g.usd_per_million_tokens),
        "—" if g.queue_wait_mean_seconds is None else _seconds(g.queue_wait_mean_seconds),
        "—" if g.stall_seconds is None else _seconds(g.stall_seconds),
        "—" if g.prefill_chunks is None else f"{g.prefill_chunks:.0f} × {_seconds(g.chunk_step_seconds)}",
    ]


def _compute(v: ServeVariant) -> str:
    if v.compute_dtype == "bf16":
        return f"bf16 (W{v.weights_bits}A16)"
    return f"{v.compute_dtype} (W{v.weights_bits}A{v.weights_bits})"


def column_header(report: ServeReport, v: ServeVariant, marker: str = " *") -> str:
    return f"{v.weights_bits}-bit weights" + (marker if v.weights_bits == report.weights_bits else "")


def table_rows(report: ServeReport, marker: str = " *") -> tuple[list[str], list[list[str]]]:
    """Headers and rows: one row per figure, one column per weight bit width (the chosen one marked)."""
    headers = ["", *(column_header(report, v, marker) for v in report.variants)]
    columns = [_column(v) for v in report.variants]
    rows = [[label, *(col[i] for col in columns)] for i, label in enumerate(ROW_LABELS)]
    if report.inputs.compute != "bf16":
        rows.insert(ROW_LABELS.index("prefill bound"), ["linear GEMMs compute in",
                    *(_compute(v) for v in report.variants)])  # fmt: skip
    if report.load is not None:
        loads = [_load_column(v) for v in report.variants]
        labels = LOAD_ROW_LABELS + ([CHUNK_ROW_LABEL] if report.inputs.chunked_prefill_tokens is not None else [])
        rows += [[label, *(col[i] for col in loads)] for i, label in enumerate(labels)]
    return headers, rows


def title(report: ServeReport) -> str:
    i = report.inputs
    return (
        f"Serving {report.model.name} on {report.hardware.id} with {report.runtime.id}: batch {i.batch}, "
        f"{i.prompt_tokens} prompt + "
        f"{i.output_tokens} output tokens, {i.kv_bits}-bit KV cache (* = chosen: {report.weights_bits}-bit weights)"
        + (f", {i.compute} compute" if i.compute != "bf16" else "")
    )
