"""`flopcast compare`, `flopcast plan` and `flopcast size`.

The work is done by :mod:`flopcast.planner` and :mod:`flopcast.sizing` (which call the one estimator core);
this module parses flags and renders reports. Nothing is written before the result is complete, so Ctrl-C
leaves no partial ``--output`` (the CLI group maps it to exit 130). ``--format json`` never imports rich.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import typer

from flopcast.cli._app import app
from flopcast.cli.common import (
    FORCE_OPTION,
    FORMAT_OPTION,
    OUTPUT_OPTION,
    PLOT_OPTION,
    PROFILES_OPTION,
    QUIET_OPTION,
    OutputFormat,
    emit_plot,
    emit_text,
    note,
    preflight_output,
    preflight_plot,
)
from flopcast.cli.estimate_cmd import _opt
from flopcast.units import format_duration, format_si, format_usd

PARETO_TABLE_ROWS = 20  # the table and Markdown show at most this many Pareto points (JSON and CSV: all)
SECONDS_PER_DAY = 86400.0

# --- options shared by compare and plan (the model and token flags are those of `estimate`) ----------------
MODEL_OPTION = _opt("Preset id (llama-2-7b, gpt3-175b, ...) or a size (7B, 350M).", "--model", "-m")
TOKENS_OPTION = _opt("Training tokens, e.g. 2T, 300B (required).", "--tokens", "-t")
LAYERS_OPTION = _opt("Transformer layers (explicit architecture).", "--layers")
D_MODEL_OPTION = _opt("Model width.", "--d-model")
HEADS_OPTION = _opt("Attention heads.", "--heads")
KV_HEADS_OPTION = _opt("Key/value heads (GQA/MQA; default: heads).", "--kv-heads")
HEAD_DIM_OPTION = _opt("Width of one head (default d_model/heads).", "--head-dim")
FFN_OPTION = _opt("FFN hidden size (default 4·d_model).", "--ffn")
GATED_OPTION = typer.Option(
    None, "--gated-ffn/--plain-ffn", help="SwiGLU (three FFN matrices) or a plain FFN.", show_default=False
)
VOCAB_OPTION = _opt("Vocabulary size.", "--vocab")
SEQ_LEN_OPTION = _opt("Sequence length (also overrides a preset's).", "--seq-len")
TIED_OPTION = typer.Option(
    None, "--tied-embeddings/--untied-embeddings", help="Share input embedding and output head.", show_default=False
)
EXPERTS_OPTION = _opt("MoE: experts per layer.", "--experts")
ACTIVE_EXPERTS_OPTION = _opt("MoE: experts each token uses.", "--active-experts")
GLOBAL_BATCH_OPTION = _opt("Sequences per optimizer step (default: ~0.5M–4M tokens by size).", "--global-batch")
PRECISION_OPTION = typer.Option("bf16", "--precision", help="Training precision: bf16, fp16, fp8, tf32, fp32.")
PRICE_TIER_OPTION = _opt(
    "Price tier (on-demand, spot, reserved-1y, ...; default: on-demand where listed).", "--price-tier"
)
HARDWARE_LIST_OPTION = _opt("Hardware ids or aliases, comma-separated (default: every profile).", "--hardware", "-H")
DEADLINE_OPTION = _opt("Wall-clock limit, e.g. 30d, 2w, 720h.", "--deadline")
MAX_DEVICES_OPTION = _opt("Largest device count to search (default 4096, or what --deadline implies).", "--max-devices")
OBJECTIVE_OPTION = _opt("What to minimise: cost, time or energy (default cost).", "--objective")


@contextmanager
def _interruptible():
    """Ctrl-C → :class:`Interrupted` (one line, exit 130). typer's own handler would exit 130 silently."""
    try:
        yield
    except KeyboardInterrupt:
        from flopcast.errors import Interrupted

        raise Interrupted("interrupted (Ctrl-C); nothing was written") from None


def _workload(model, tokens, seq_len, precision, global_batch, **architecture):
    workload = {"model": model, "tokens": tokens, "seq_len": seq_len, "precision": precision}
    return {**workload, "global_batch": global_batch, **architecture}


def _days(seconds: float | None) -> str:
    return "—" if seconds is None else format_duration(seconds)


def _range(lo: float | None, hi: float | None, fmt) -> str:
    return "" if lo is None or hi is None else f"{fmt(lo)}–{fmt(hi)}"


def _layout_text(layout) -> str:
    if layout is None:
        return "—"
    from flopcast.layout import Layout

    return Layout(**layout.model_dump()).short()


def _usd(x: float | None) -> str:
    return "—" if x is None else format_usd(x)


def _mwh(kwh: float | None) -> str:
    return "—" if kwh is None else f"{kwh / 1000:,.1f} MWh"


def _raw(x) -> str:
    return "" if x is None else (repr(float(x)) if isinstance(x, float) else str(x))


def _rows_text(fmt: OutputFormat, headers, rows, csv_headers, csv_rows, title: str) -> str:
    if fmt is OutputFormat.csv:
        from flopcast.tabular import to_csv

        return to_csv(csv_headers, csv_rows)
    from flopcast.tabular import to_markdown

    return to_markdown(headers, rows, title=title)


def _rich_table(title: str, headers: list[str], rows: list[list[str]]):
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for h in headers:
        table.add_column(h, overflow="fold")
    for row in rows:
        table.add_row(*row)
    return table


def _warnings_table(warnings: list[str]):
    from rich.table import Table

    table = Table(title="Notes", title_justify="left", show_header=False)
    table.add_column("note", overflow="fold")
    for w in warnings:
        table.add_row(w)
    return table


# ============================================================================================================
# compare
# ============================================================================================================

COMPARE_HEADERS = [
    "#",
    "hardware",
    "devices",
    "tp·pp·dp",
    "wall-clock (P10–P90)",
    "device-hours",
    "cost",
    "energy",
    "fits",
    "why not / note",
]
COMPARE_CSV_HEADERS = [
    "rank",
    "hardware",
    "ok",
    "devices",
    "fits",
    "tp",
    "pp",
    "dp",
    "micro_batch",
    "global_batch",
    "zero",
    "recompute",
    "wall_clock_seconds",
    "wall_clock_seconds_p10",
    "wall_clock_seconds_p90",
    "device_hours",
    "cost_usd",
    "price_tier",
    "usd_per_device_hour",
    "energy_kwh",
    "memory_per_device_bytes",
    "capacity_bytes",
    "mfu",
    "reason",
]


def _with_range(value: float | None, lo: float | None, hi: float | None, fmt) -> str:
    if value is None:
        return "—"
    return fmt(value) + ("" if lo is None or hi is None else f" ({fmt(lo)}–{fmt(hi)})")


def compare_rows(report) -> list[list[str]]:
    out = []
    for r in report.rows:
        out.append(
            [
                str(r.rank),
                r.hardware,
                "—" if r.devices is None else str(r.devices),
                _layout_text(r.layout),
                _with_range(r.wall_clock_seconds, r.wall_clock_seconds_p10, r.wall_clock_seconds_p90, format_duration),
                "—" if r.device_hours is None else format_si(r.device_hours),
                _usd(r.cost_usd),
                _mwh(r.energy_kwh),
                "—" if r.fits is None else ("yes" if r.fits else "NO"),
                r.reason or "",
            ]
        )
    return out


def compare_csv_rows(report) -> list[list[str]]:
    out = []
    for r in report.rows:
        lay = r.layout
        out.append(
            [
                str(r.rank),
                r.hardware,
                str(r.ok).lower(),
                _raw(r.devices),
                "" if r.fits is None else str(r.fits).lower(),
                *(
                    ("",) * 7
                    if lay is None
                    else (
                        str(lay.tp),
                        str(lay.pp),
                        str(lay.dp),
                        str(lay.micro_batch),
                        str(lay.global_batch),
                        str(lay.zero),
                        lay.recompute,
                    )
                ),
                _raw(r.wall_clock_seconds),
                _raw(r.wall_clock_seconds_p10),
                _raw(r.wall_clock_seconds_p90),
                _raw(r.device_hours),
                _raw(r.cost_usd),
                r.price_tier or "",
                _raw(r.usd_per_device_hour),
                _raw(r.energy_kwh),
                _raw(r.memory_per_device_bytes),
                _raw(r.capacity_bytes),
                _raw(r.mfu),
                r.reason or "",
            ]
        )
    return out


def _compare_title(report) -> str:
    i = report.inputs
    where = (
        f"{i.devices} devices"
        if i.devices is not None
        else f"the fewest devices that meet {format_duration(i.deadline_seconds)}"
    )
    tier = f"{i.price_tier} prices" if i.price_tier else "on-demand prices where listed"
    return (
        f"Compare: {report.model.name} ({format_si(report.model.params)} params), {format_si(i.tokens)} tokens "
        f"on {where}; {tier}; best {i.objective} first"
    )


@app.command("compare")
def compare_command(
    model: str | None = MODEL_OPTION,
    tokens: str | None = TOKENS_OPTION,
    hardware: str | None = HARDWARE_LIST_OPTION,
    devices: str | None = _opt("Devices per hardware, e.g. 256 (or give --deadline).", "--devices", "-n"),
    deadline: str | None = _opt(
        "Instead of --devices: the fewest devices of each hardware that meet this wall-clock, e.g. 30d.", "--deadline"
    ),
    max_devices: str | None = MAX_DEVICES_OPTION,
    objective: str | None = OBJECTIVE_OPTION,
    price_tier: str | None = PRICE_TIER_OPTION,
    precision: str = PRECISION_OPTION,
    global_batch: str | None = GLOBAL_BATCH_OPTION,
    layers: str | None = LAYERS_OPTION,
    d_model: str | None = D_MODEL_OPTION,
    heads: str | None = HEADS_OPTION,
    kv_heads: str | None = KV_HEADS_OPTION,
    head_dim: str | None = HEAD_DIM_OPTION,
    ffn: str | None = FFN_OPTION,
    gated_ffn: bool | None = GATED_OPTION,
    vocab: str | None = VOCAB_OPTION,
    seq_len: str | None = SEQ_LEN_OPTION,
    tied_embeddings: bool | None = TIED_OPTION,
    experts: str | None = EXPERTS_OPTION,
    active_experts: str | None = ACTIVE_EXPERTS_OPTION,
    fmt: OutputFormat = FORMAT_OPTION,
    output: Path | None = OUTPUT_OPTION,
    force: bool = FORCE_OPTION,
    profiles: list[Path] | None = PROFILES_OPTION,
    quiet: bool = QUIET_OPTION,
    plot: Path | None = PLOT_OPTION,
) -> None:
    """One workload on every (or the named) hardware: time, device-hours, cost, energy, fits — ranked."""
    from flopcast.api import compare

    preflight_output(output, force)
    preflight_plot(plot, force)
    work = _workload(
        model,
        tokens,
        seq_len,
        precision,
        global_batch,
        layers=layers,
        d_model=d_model,
        heads=heads,
        kv_heads=kv_heads,
        head_dim=head_dim,
        ffn=ffn,
        gated_ffn=gated_ffn,
        vocab=vocab,
        tied_embeddings=tied_embeddings,
        experts=experts,
        active_experts=active_experts,
    )
    with _interruptible():
        report = compare(
            **work,
            hardware=hardware,
            devices=devices,
            deadline=deadline,
            max_devices=max_devices,
            objective=objective,
            price_tier=price_tier,
            profiles=profiles,
        )
    emit_text(render_compare(report, fmt), output, force, quiet)
    emit_plot(report, plot, force, quiet)


def render_compare(report, fmt: OutputFormat) -> str:
    """A CompareReport as text in ``fmt`` (the command and `flopcast report` both use this)."""
    if fmt is OutputFormat.json:
        return report.to_json()
    if fmt in (OutputFormat.csv, OutputFormat.markdown):
        return _rows_text(
            fmt,
            COMPARE_HEADERS,
            compare_rows(report),
            COMPARE_CSV_HEADERS,
            compare_csv_rows(report),
            _compare_title(report),
        )
    from flopcast.cli.common import render_to_text

    parts = [_rich_table(_compare_title(report), COMPARE_HEADERS, compare_rows(report))]
    if report.warnings:
        parts.append(_warnings_table(report.warnings))
    return render_to_text(parts)


# ============================================================================================================
# plan
# ============================================================================================================

PARETO_HEADERS = [
    "",
    "hardware",
    "devices",
    "tp·pp·dp",
    "wall-clock",
    "P10–P90",
    "cost",
    "energy",
    "MFU",
    "memory/device",
]
PARETO_CSV_HEADERS = [
    "best",
    "hardware",
    "devices",
    "tp",
    "pp",
    "dp",
    "micro_batch",
    "global_batch",
    "zero",
    "recompute",
    "wall_clock_seconds",
    "wall_clock_seconds_p10",
    "wall_clock_seconds_p90",
    "device_hours",
    "cost_usd",
    "cost_usd_p10",
    "cost_usd_p90",
    "price_tier",
    "energy_kwh",
    "mfu",
    "memory_per_device_bytes",
    "capacity_bytes",
]


def _same_point(a, b) -> bool:
    return b is not None and a.hardware == b.hardware and a.devices == b.devices and a.layout == b.layout


def _pareto_shown(report) -> list:
    """At most PARETO_TABLE_ROWS points, evenly spread along the front (the best always among them)."""
    import numpy as np

    pts = report.pareto
    if len(pts) <= PARETO_TABLE_ROWS:
        return list(pts)
    keep = set(np.unique(np.round(np.linspace(0, len(pts) - 1, PARETO_TABLE_ROWS)).astype(int)).tolist())
    keep |= {k for k, p in enumerate(pts) if _same_point(p, report.best_point)}
    return [pts[k] for k in sorted(keep)]


def pareto_rows(report, points) -> list[list[str]]:
    return [
        [
            "*" if _same_point(p, report.best_point) else "",
            p.hardware,
            str(p.devices),
            _layout_text(p.layout),
            format_duration(p.wall_clock_seconds),
            _range(p.wall_clock_seconds_p10, p.wall_clock_seconds_p90, format_duration),
            _usd(p.cost_usd),
            _mwh(p.energy_kwh),
            f"{p.mfu:.1%}",
            f"{p.memory_per_device_bytes / 1e9:.1f} GB",
        ]
        for p in points
    ]


def pareto_csv_rows(report) -> list[list[str]]:
    out = []
    for p in report.pareto:
        lay = p.layout
        out.append(
            [
                "true" if _same_point(p, report.best_point) else "false",
                p.hardware,
                str(p.devices),
                str(lay.tp),
                str(lay.pp),
                str(lay.dp),
                str(lay.micro_batch),
                str(lay.global_batch),
                str(lay.zero),
                lay.recompute,
                _raw(p.wall_clock_seconds),
                _raw(p.wall_clock_seconds_p10),
                _raw(p.wall_clock_seconds_p90),
                _raw(p.device_hours),
                _raw(p.cost_usd),
                _raw(p.cost_usd_p10),
                _raw(p.cost_usd_p90),
                p.price_tier or "",
                _raw(p.energy_kwh),
                _raw(p.mfu),
                _raw(p.memory_per_device_bytes),
                _raw(p.capacity_bytes),
            ]
        )
    return out


def _plan_title(report) -> str:
    i = report.inputs
    limits = []
    if i.deadline_seconds is not None:
        limits.append(f"deadline {format_duration(i.deadline_seconds)}")
    if i.budget_usd is not None:
        limits.append(f"budget {format_usd(i.budget_usd)}")
    limits.append(f"searched up to {report.search.max_devices} devices")
    return (
        f"Plan: {report.model.name} ({format_si(report.model.params)} params), {format_si(i.tokens)} tokens; "
        f"{', '.join(limits)}; objective {i.objective}"
    )


def _search_line(report) -> str:
    s = report.search
    return (
        f"{s.layouts_evaluated:,} layouts evaluated ({s.layouts_feasible:,} feasible) on "
        f"{len(s.hardware_searched)} hardware × {s.device_counts:,} device counts in {s.seconds:.2f} s "
        f"({s.layouts_per_second / 1e6:.2f} M layouts/s)"
    )


def _best_line(report) -> str:
    p = report.best_point
    if p is None:
        return "no feasible plan"
    b = report.best
    return (
        f"best: {p.devices} × {p.hardware}, {_layout_text(p.layout)}: {format_duration(p.wall_clock_seconds)}, "
        f"{_usd(p.cost_usd)}, {_mwh(p.energy_kwh)} — `flopcast estimate --hardware {p.hardware} --devices "
        f"{p.devices} {_flags(b)}`"
    )


def _flags(best) -> str:
    q = best.parallelism
    return (
        f"--tp {q.tp} --pp {q.pp} --dp {q.dp} --micro-batch {q.micro_batch} --global-batch {q.global_batch} "
        f"--zero {q.zero} --recompute {q.recompute}"
    )


NEAR_MISS_HEADERS = ["hardware", "devices", "tp·pp·dp", "wall-clock", "cost", "misses by"]


def near_miss_rows(report) -> list[list[str]]:
    return [
        [
            m.point.hardware,
            str(m.point.devices),
            _layout_text(m.point.layout),
            format_duration(m.point.wall_clock_seconds),
            _usd(m.point.cost_usd),
            m.description,
        ]
        for m in report.near_misses
    ]


@app.command("plan")
def plan_command(
    model: str | None = MODEL_OPTION,
    tokens: str | None = TOKENS_OPTION,
    hardware: str | None = HARDWARE_LIST_OPTION,
    deadline: str | None = DEADLINE_OPTION,
    budget: str | None = _opt("Cost limit, e.g. $2M, 500k.", "--budget"),
    max_devices: str | None = MAX_DEVICES_OPTION,
    objective: str | None = OBJECTIVE_OPTION,
    price_tier: str | None = PRICE_TIER_OPTION,
    precision: str = PRECISION_OPTION,
    global_batch: str | None = GLOBAL_BATCH_OPTION,
    layers: str | None = LAYERS_OPTION,
    d_model: str | None = D_MODEL_OPTION,
    heads: str | None = HEADS_OPTION,
    kv_heads: str | None = KV_HEADS_OPTION,
    head_dim: str | None = HEAD_DIM_OPTION,
    ffn: str | None = FFN_OPTION,
    gated_ffn: bool | None = GATED_OPTION,
    vocab: str | None = VOCAB_OPTION,
    seq_len: str | None = SEQ_LEN_OPTION,
    tied_embeddings: bool | None = TIED_OPTION,
    experts: str | None = EXPERTS_OPTION,
    active_experts: str | None = ACTIVE_EXPERTS_OPTION,
    fmt: OutputFormat = FORMAT_OPTION,
    output: Path | None = OUTPUT_OPTION,
    force: bool = FORCE_OPTION,
    profiles: list[Path] | None = PROFILES_OPTION,
    quiet: bool = QUIET_OPTION,
    plot: Path | None = PLOT_OPTION,
) -> None:
    """Search hardware × devices × layout under constraints: Pareto front of time vs cost, and the best plan.

    Exits 3 (after writing the report with the closest near-misses) when nothing meets the constraints.
    """
    from flopcast.api import plan
    from flopcast.planner import raise_if_infeasible

    preflight_output(output, force)
    preflight_plot(plot, force)
    work = _workload(
        model,
        tokens,
        seq_len,
        precision,
        global_batch,
        layers=layers,
        d_model=d_model,
        heads=heads,
        kv_heads=kv_heads,
        head_dim=head_dim,
        ffn=ffn,
        gated_ffn=gated_ffn,
        vocab=vocab,
        tied_embeddings=tied_embeddings,
        experts=experts,
        active_experts=active_experts,
    )
    with _interruptible():
        report = plan(
            **work,
            hardware=hardware,
            objective=objective,
            deadline=deadline,
            budget=budget,
            max_devices=max_devices,
            price_tier=price_tier,
            profiles=profiles,
        )
    _emit_plan(report, fmt, output, force, quiet)
    if report.pareto:
        emit_plot(report, plot, force, quiet)
    elif plot is not None:
        note(f"no plot written to {plot}: no feasible plan", quiet)
    raise_if_infeasible(report)


def _emit_plan(report, fmt, output, force, quiet) -> None:
    emit_text(render_plan(report, fmt), output, force, quiet)
    if fmt in (OutputFormat.csv, OutputFormat.markdown):
        if fmt is OutputFormat.csv:
            note(_search_line(report), quiet)
        for w in report.warnings:
            note(f"warning: {w}", quiet)


def render_plan(report, fmt: OutputFormat) -> str:
    """A PlanReport as text in ``fmt`` (the command and `flopcast report` both use this)."""
    if fmt is OutputFormat.json:
        return report.to_json()
    if fmt is OutputFormat.csv:
        from flopcast.tabular import to_csv

        return to_csv(PARETO_CSV_HEADERS, pareto_csv_rows(report))
    if fmt is OutputFormat.markdown:
        from flopcast.tabular import to_markdown

        text = f"{_search_line(report)}\n\n{_best_line(report)}\n\n"
        text += to_markdown(
            PARETO_HEADERS,
            pareto_rows(report, _pareto_shown(report)),
            title=f"{_plan_title(report)}: Pareto front ({len(report.pareto)} points)",
        )
        if report.near_misses:
            text += "\n" + to_markdown(NEAR_MISS_HEADERS, near_miss_rows(report), title="Closest near-misses")
        return text
    from rich.text import Text

    from flopcast.cli.common import render_to_text
    from flopcast.cli.estimate_cmd import estimate_tables

    shown = _pareto_shown(report)
    extra = "" if len(shown) == len(report.pareto) else f", {len(shown)} shown (all in --format json/csv)"
    parts = [
        Text(_search_line(report)),
        _rich_table(
            f"{_plan_title(report)}\nPareto front of time vs cost: {len(report.pareto)} points{extra}; * = best",
            PARETO_HEADERS,
            pareto_rows(report, shown),
        ),
    ]
    if report.near_misses:
        parts.append(_rich_table("Closest near-misses", NEAR_MISS_HEADERS, near_miss_rows(report)))
    if report.best is not None:
        parts.append(Text(_best_line(report)))
        parts.append(estimate_tables(report.best)[0])
    if report.warnings:
        parts.append(_warnings_table(report.warnings))
    return render_to_text(parts)


# ============================================================================================================
# size
# ============================================================================================================

SIZE_CSV_HEADERS = [
    "budget_kind",
    "budget",
    "params",
    "tokens",
    "flops",
    "model",
    "model_params",
    "layers",
    "d_model",
    "hardware",
    "devices",
    "wall_clock_seconds",
    "device_hours",
    "cost_usd",
    "fits",
    "budget_used",
    "budget_used_fraction",
]


def _budget_text(kind: str, value: float) -> str:
    from flopcast.sizing import Budget

    return Budget(kind, value).describe()


def size_rows(r) -> tuple[list[str], list[list[str]]]:
    e = r.estimate
    headers = [
        "budget",
        "N (params)",
        "D (tokens)",
        "C = 6·N·D",
        "model",
        "hardware",
        "wall-clock",
        "cost",
        "device-hours",
        "uses",
    ]
    row = [
        _budget_text(r.inputs.budget_kind, r.inputs.budget),
        format_si(r.compute_optimal.params),
        format_si(r.compute_optimal.tokens),
        f"{r.compute_optimal.flops:.3g}",
        f"{r.model.layers} × {r.model.d_model} ({format_si(r.model.params)})",
        "—" if e is None else f"{e.inputs.devices} × {e.hardware.id}",
        "—" if e is None else format_duration(e.time.wall_clock_seconds),
        "—" if e is None else _usd(e.cost.total_usd),
        "—" if e is None else f"{e.time.device_hours:,.0f}",
        f"{r.budget_used_fraction:.1%}",
    ]
    return headers, [row]


def size_csv_row(r) -> list[str]:
    e = r.estimate
    return [
        r.inputs.budget_kind,
        _raw(r.inputs.budget),
        _raw(r.compute_optimal.params),
        _raw(r.compute_optimal.tokens),
        _raw(r.compute_optimal.flops),
        r.model.name,
        str(r.model.params),
        str(r.model.layers),
        str(r.model.d_model),
        "" if e is None else e.hardware.id,
        "" if e is None else str(e.inputs.devices),
        "" if e is None else _raw(e.time.wall_clock_seconds),
        "" if e is None else _raw(e.time.device_hours),
        "" if e is None else _raw(e.cost.total_usd),
        "" if e is None else str(e.memory.fits).lower(),
        _raw(r.budget_used),
        _raw(r.budget_used_fraction),
    ]


@app.command("size")
def size_command(
    flops: str | None = _opt("Compute budget in FLOPs, e.g. 1e24.", "--flops"),
    budget: str | None = _opt(
        "Dollar budget, e.g. $2M (on --hardware --devices, or the planner's cheapest plan).", "--budget"
    ),
    device_hours: str | None = _opt(
        "Device-hour budget, e.g. 100k (needs --hardware and --devices).", "--device-hours"
    ),
    deadline: str | None = _opt("Wall-clock budget, e.g. 30d (needs --hardware and --devices).", "--deadline"),
    hardware: str | None = _opt(
        "Hardware id (or, without --devices, a comma-separated list for the planner).", "--hardware", "-H"
    ),
    devices: str | None = _opt("Device count the budget is spent on.", "--devices", "-n"),
    max_devices: str | None = _opt("Planner: largest device count to search (default 4096).", "--max-devices"),
    price_tier: str | None = PRICE_TIER_OPTION,
    precision: str = PRECISION_OPTION,
    seq_len: str | None = _opt("Sequence length of the sized model (default 2048).", "--seq-len"),
    vocab: str | None = _opt("Vocabulary of the sized model (default 32000).", "--vocab"),
    fmt: OutputFormat = FORMAT_OPTION,
    output: Path | None = OUTPUT_OPTION,
    force: bool = FORCE_OPTION,
    profiles: list[Path] | None = PROFILES_OPTION,
    quiet: bool = QUIET_OPTION,
) -> None:
    """Compute-optimal parameters and tokens for a budget (Chinchilla: D ≈ 20·N, C = 6·N·D), then its estimate."""
    from flopcast.api import size

    preflight_output(output, force)
    with _interruptible():
        report = size(
            flops=flops,
            budget=budget,
            device_hours=device_hours,
            deadline=deadline,
            hardware=hardware,
            devices=devices,
            price_tier=price_tier,
            precision=precision,
            seq_len=seq_len,
            vocab=vocab,
            max_devices=max_devices,
            profiles=profiles,
        )
    emit_text(render_size(report, fmt), output, force, quiet)
    if fmt in (OutputFormat.csv, OutputFormat.markdown):
        for w in report.warnings:
            note(f"warning: {w}", quiet)


def render_size(report, fmt: OutputFormat) -> str:
    """A SizeReport as text in ``fmt`` (the command and `flopcast report` both use this)."""
    if fmt is OutputFormat.json:
        return report.to_json()
    headers, rows = size_rows(report)
    if fmt in (OutputFormat.csv, OutputFormat.markdown):
        return _rows_text(fmt, headers, rows, SIZE_CSV_HEADERS, [size_csv_row(report)], "Compute-optimal size")
    from flopcast.cli.common import render_to_text
    from flopcast.cli.estimate_cmd import estimate_tables

    parts = [_rich_table("Compute-optimal size (Chinchilla: D ≈ 20·N, C = 6·N·D; Hoffmann et al. 2022)", headers, rows)]
    if report.estimate is not None:
        parts.append(estimate_tables(report.estimate)[0])
    if report.warnings:
        parts.append(_warnings_table(report.warnings))
    return render_to_text(parts)
