"""`serve --plan`'s report as a table, Markdown or CSV (the command and `flopcast report` both use this)."""

from __future__ import annotations

from flopcast.cli.common import OutputFormat, render_to_text
from flopcast.reports.serve_plan import ms_text, targets_text

HEADERS = ["hardware", "runtime", "bits", "tp×r", "dev", "$/h", "$/M tok", "batch", "TTFT ms", "TPOT ms",
           "max r/s", "meets"]  # fmt: skip
MISS_HEADERS = ["hardware", "runtime", "bits", "tp×r", "dev", "$/h", "TTFT ms", "TPOT ms", "misses"]
TEXT_COLUMNS = ("hardware", "runtime", "misses")
CUSTOM_MODEL = "custom"  # the name of a model given by its architecture flags (flopcast.model_resolve)


def _ms(a, b) -> str:
    return "—" if a is None else f"{ms_text(a)}/{ms_text(b)}"


def _row(p) -> dict[str, str]:
    return {
        "hardware": p.hardware, "runtime": p.runtime,
        "bits": str(p.weights_bits) if p.compute == "bf16" else f"{p.weights_bits} {p.compute}",
        "tp×r": f"{p.tensor_parallel}×{p.replicas}", "dev": str(p.devices),
        "$/h": f"{p.usd_per_hour:,.2f}", "$/M tok": f"{p.usd_per_million_tokens:,.3g}",
        "batch": "—" if p.running_batch is None else f"{p.running_batch:.3g}",
        "TTFT ms": _ms(p.time_to_first_token_p50_seconds, p.time_to_first_token_p90_seconds),
        "TPOT ms": _ms(p.time_per_output_token_p50_seconds, p.time_per_output_token_p90_seconds),
        "max r/s": f"{p.max_request_rate_per_s:,.3g}", "meets": "yes" if p.meets_targets else "no",
        "misses": p.miss or "",
    }  # fmt: skip


def _table(points, headers, all_runtimes: bool) -> tuple[list[str], list[list[str]]]:
    """Rows of ``points`` under ``headers`` (the runtime column only when they differ, or in CSV)."""
    if not all_runtimes and len({p.runtime for p in points}) <= 1:
        headers = [h for h in headers if h != "runtime"]
    return headers, [[_row(p)[h] for h in headers] for p in points]


def title(report) -> str:
    i = report.inputs
    limits = targets_text(i.ttft_target_seconds, i.tpot_target_seconds)
    wanted = f", {limits} at {i.percentile.upper()}" if limits else ""
    return (
        f"serve --plan: {i.model} at {i.request_rate_per_s:g} requests/s ({i.prompt_tokens} + {i.output_tokens} "
        f"tokens){wanted}; {report.configurations_searched:,} configurations on {len(i.hardware)} hardware, "
        f"up to {i.max_devices} devices"
    )


def best_line(report) -> str:
    b = report.best
    if b is None:
        return f"no feasible configuration: {report.infeasible_reason}"
    q = report.inputs.percentile
    first = b.time_to_first_token_p90_seconds if q == "p90" else b.time_to_first_token_p50_seconds
    tpot = b.time_per_output_token_p90_seconds if q == "p90" else b.time_per_output_token_p50_seconds
    i = report.inputs
    extra = "".join(
        f" --{flag} {value}"
        for flag, value, default in (("prompt-tokens", i.prompt_tokens, 512), ("output-tokens", i.output_tokens, 256),
                                     ("kv-bits", i.kv_bits, 16), ("price-tier", i.price_tier, None),
                                     ("price-per-hour", i.price_per_hour_usd, None),
                                     ("matmul-efficiency", i.matmul_efficiency, None),
                                     ("bandwidth-efficiency", i.bandwidth_efficiency, None))
        if value != default
    )  # fmt: skip
    # a preset by name; an architecture given flag by flag is not repeated here
    model = "" if i.model == CUSTOM_MODEL else f" --model {i.model}"
    arch = " (+ the plan's architecture flags)" if i.model == CUSTOM_MODEL else ""
    replicas = f"{b.replicas} replica" + ("" if b.replicas == 1 else "s")
    return (
        f"cheapest: {b.devices} × {b.hardware} ({b.tensor_parallel} tensor parallel × {replicas}), "
        f"{b.weights_bits}-bit weights{_compute_text(b)} on {b.runtime}: ${b.usd_per_hour:,.2f}/h, "
        f"${b.usd_per_million_tokens:.3g} "
        f"per million output tokens; TTFT {q.upper()} {ms_text(first)} ms, TPOT {q.upper()} {ms_text(tpot)} ms, "
        f"batch {b.running_batch:.3g} per replica — `flopcast serve{model} --hardware {b.hardware} --devices "
        f"{b.tensor_parallel} --weights {b.weights_bits}{_compute_flag(b)} --runtime {b.runtime} --request-rate "
        f"{i.request_rate_per_s / b.replicas:.6g}{extra}`{arch}"
    )


def _compute_text(point) -> str:
    return (
        "" if point.compute == "bf16" else f" with {point.compute} compute (W{point.weights_bits}A{point.weights_bits})"
    )


def _compute_flag(point) -> str:
    return "" if point.compute == "bf16" else f" --compute {point.compute}"


def _notes(report) -> list[str]:
    notes = [f"assumes {a}" for a in report.assumptions]
    if report.skipped:
        notes.append("not searched: " + "; ".join(f"{s.hardware} ({s.reason})" for s in report.skipped))
    return notes


def render_serve_plan(report, fmt: OutputFormat) -> str:
    if fmt is OutputFormat.json:
        return report.to_json()
    csv = fmt is OutputFormat.csv
    pareto = _table(report.pareto, HEADERS, csv)
    misses = _table(report.near_misses, MISS_HEADERS, csv)
    if csv:
        from flopcast.tabular import to_csv

        return to_csv(*pareto) if report.feasible or not report.near_misses else to_csv(*misses)
    sections = [("Pareto: cost per hour vs TTFT, TPOT target met (latencies P50/P90)", pareto),
                ("Closest near-misses (latencies P50/P90)", misses)]  # fmt: skip
    sections = [(caption, table) for caption, table in sections if table[1]]
    if fmt is OutputFormat.markdown:
        from flopcast.tabular import to_markdown

        text = f"{title(report)}\n\n{best_line(report)}\n\n"
        text += "".join(to_markdown(*table, title=caption) + "\n" for caption, table in sections)
        return text + "\n".join(f"- {n}" for n in _notes(report)) + "\n"
    from rich.table import Table
    from rich.text import Text

    parts = [Text(title(report)), Text(best_line(report))]
    for caption, (headers, rows) in sections:
        table = Table(title=caption, title_justify="left")
        for h in headers:
            text = h in TEXT_COLUMNS
            table.add_column(h, justify="left" if text else "right", no_wrap=not text or h == "hardware")
        for row in rows:
            table.add_row(*row)
        parts.append(table)
    return render_to_text([*parts, *(Text(n) for n in _notes(report))])
