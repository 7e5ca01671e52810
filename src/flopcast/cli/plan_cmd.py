"""`flopcast plan`: search hardware × devices × layout under constraints; the Pareto front and the best plan.

The work is done by :func:`flopcast.plan` (flopcast.planner); this module parses flags and renders the report.
``--format json`` never imports rich.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from flopcast.cli import columns as col
from flopcast.cli._app import app
from flopcast.cli._search import interruptible, workload
from flopcast.cli.common import OutputFormat, emit_plot, emit_text, note, preflight_output, preflight_plot
from flopcast.cli.options import (
    Budget,
    Confidence,
    Deadline,
    Epochs,
    Finetune,
    Force,
    Format,
    GlobalBatch,
    GradDtype,
    HardwareList,
    KeepCheckpoints,
    LoraRank,
    LoraTargets,
    MaxDevices,
    MemoryHeadroom,
    Model,
    Objective,
    Output,
    Plot,
    Precision,
    PriceTier,
    Profiles,
    Quiet,
    SeqLen,
    Storage,
    Tokens,
    TransferGbps,
    with_architecture_options,
)
from flopcast.units import format_duration, format_si, format_usd

PARETO_TABLE_ROWS = 20  # the table and Markdown show at most this many Pareto points (JSON and CSV: all)


class Marked(NamedTuple):
    """A Pareto point and whether it is the best plan (the ``*`` / ``best`` column)."""

    point: Any
    best: bool


PARETO_COLUMNS: col.Columns = (
    ("", lambda m: "*" if m.best else ""),
    ("hardware", lambda m: m.point.hardware),
    ("devices", lambda m: str(m.point.devices)),
    ("tp·pp·dp", lambda m: col.layout_text(m.point.layout)),
    ("batch", lambda m: str(m.point.layout.global_batch)),  # sequences per step: it grows with dp (the warning)
    ("wall-clock", lambda m: format_duration(m.point.wall_clock_seconds)),
    ("P10–P90", lambda m: col.duration_range(m.point.wall_clock_seconds_p10, m.point.wall_clock_seconds_p90)),
    ("cost", lambda m: col.usd(m.point.cost_usd)),
    ("energy", lambda m: col.mwh(m.point.energy_kwh)),
    ("MFU", lambda m: f"{m.point.mfu:.1%}"),
    ("memory", lambda m: f"{m.point.memory_per_device_bytes / 1e9:.1f} GB"),
)
_POINT_RAW = col.raw_columns(
    "wall_clock_seconds", "wall_clock_seconds_p10", "wall_clock_seconds_p90", "device_hours", "cost_usd",
    "cost_usd_p10", "cost_usd_p90", "price_tier", "energy_kwh", "mfu", "memory_per_device_bytes", "capacity_bytes",
)  # fmt: skip
PARETO_CSV_COLUMNS: col.Columns = (
    ("best", lambda m: "true" if m.best else "false"),
    ("hardware", lambda m: m.point.hardware),
    ("devices", lambda m: str(m.point.devices)),
    *col.layout_csv_columns(lambda m: m.point.layout),
    *((header, lambda m, get=get: get(m.point)) for header, get in _POINT_RAW),
)
NEAR_MISS_COLUMNS: col.Columns = (
    ("hardware", lambda m: m.point.hardware),
    ("devices", lambda m: str(m.point.devices)),
    ("tp·pp·dp", lambda m: col.layout_text(m.point.layout)),
    ("wall-clock", lambda m: format_duration(m.point.wall_clock_seconds)),
    ("cost", lambda m: col.usd(m.point.cost_usd)),
    ("misses by", lambda m: m.description),
)
PARETO_HEADERS = col.headers(PARETO_COLUMNS)
PARETO_CSV_HEADERS = col.headers(PARETO_CSV_COLUMNS)
NEAR_MISS_HEADERS = col.headers(NEAR_MISS_COLUMNS)


def _same_point(a, b) -> bool:
    return b is not None and a.hardware == b.hardware and a.devices == b.devices and a.layout == b.layout


def _marked(report, points) -> list[Marked]:
    return [Marked(p, _same_point(p, report.best_point)) for p in points]


def _pareto_shown(report) -> list:
    """At most PARETO_TABLE_ROWS points, evenly spread along the front (the best always among them)."""
    import numpy as np

    pts = report.pareto
    if len(pts) <= PARETO_TABLE_ROWS:
        return list(pts)
    keep = set(np.unique(np.round(np.linspace(0, len(pts) - 1, PARETO_TABLE_ROWS)).astype(int)).tolist())
    keep |= {k for k, p in enumerate(pts) if _same_point(p, report.best_point)}
    return [pts[k] for k in sorted(keep)]


def _plan_title(report) -> str:
    i = report.inputs
    limits = []
    if i.deadline_seconds is not None:
        limits.append(f"deadline {format_duration(i.deadline_seconds)}")
    if i.budget_usd is not None:
        limits.append(f"budget {format_usd(i.budget_usd)}")
    if i.confidence != "p50" and (i.deadline_seconds is not None or i.budget_usd is not None):
        limits.append(f"met at {i.confidence.upper()}")
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
    c = report.inputs.confidence
    at_c = (
        ""
        if c == "p50"
        else (
            f" ({c.upper()} {format_duration(getattr(p, f'wall_clock_seconds_{c}'))}, "
            f"{col.usd(getattr(p, f'cost_usd_{c}'))})"
        )
    )
    return (
        f"best: {p.devices} × {p.hardware}, {col.layout_text(p.layout)}: {format_duration(p.wall_clock_seconds)}, "
        f"{col.usd(p.cost_usd)}{at_c}, {col.mwh(p.energy_kwh)} — `flopcast estimate --hardware {p.hardware} --devices "
        f"{p.devices} {_flags(report.best)}`"
    )


def _flags(best) -> str:
    """The layout flags that reproduce the best point (every field of the layout record, from the record)."""
    from flopcast.layout import Layout
    from flopcast.layout_fields import LAYOUT_FIELDS

    return Layout(**{name: getattr(best.parallelism, name) for name in LAYOUT_FIELDS}).flags()


@app.command("plan")
@with_architecture_options
def plan_command(
    model: Model = None,
    tokens: Tokens = None,
    hardware: HardwareList = None,
    deadline: Deadline = None,
    budget: Budget = None,
    confidence: Confidence = None,
    max_devices: MaxDevices = None,
    objective: Objective = None,
    price_tier: PriceTier = None,
    precision: Precision = "bf16",
    memory_headroom: MemoryHeadroom = None,
    grad_dtype: GradDtype = None,
    finetune: Finetune = None,
    lora_rank: LoraRank = None,
    lora_targets: LoraTargets = None,
    epochs: Epochs = None,
    global_batch: GlobalBatch = None,
    architecture: dict = None,  # one option per architecture field: cli.options.with_architecture_options
    seq_len: SeqLen = None,
    storage: Storage = None,
    keep_checkpoints: KeepCheckpoints = None,
    transfer_gbps: TransferGbps = None,
    fmt: Format = OutputFormat.table,
    output: Output = None,
    force: Force = False,
    profiles: Profiles = None,
    quiet: Quiet = False,
    plot: Plot = None,
) -> None:
    """Search hardware × devices × layout under constraints: Pareto front of time vs cost, and the best plan.

    Exits 3 (after writing the report with the closest near-misses) when nothing meets the constraints.
    """
    from flopcast.api import plan
    from flopcast.planner import raise_if_infeasible

    preflight_output(output, force)
    preflight_plot(plot, force)
    work = workload(model, tokens, seq_len, precision, global_batch, **architecture)
    work["memory_headroom"] = memory_headroom
    work["grad_dtype"] = grad_dtype
    work.update(finetune=finetune, lora_rank=lora_rank, lora_targets=lora_targets, epochs=epochs)
    with interruptible():
        report = plan(
            **work,
            hardware=hardware,
            objective=objective,
            deadline=deadline,
            budget=budget,
            confidence=confidence,
            max_devices=max_devices,
            price_tier=price_tier,
            profiles=profiles,
            storage=storage,
            keep_checkpoints=keep_checkpoints,
            transfer_gbps=transfer_gbps,
        )
    emit_text(render_plan(report, fmt), output, force, quiet)
    if fmt in (OutputFormat.csv, OutputFormat.markdown):
        if fmt is OutputFormat.csv:
            note(_search_line(report), quiet)
        for w in report.warnings:
            note(f"warning: {w}", quiet)
    if report.pareto:
        emit_plot(report, plot, force, quiet)
    elif plot is not None:
        note(f"no plot written to {plot}: no feasible plan", quiet)
    raise_if_infeasible(report)


def render_plan(report, fmt: OutputFormat) -> str:
    """A PlanReport as text in ``fmt`` (the command and `flopcast report` both use this)."""
    if fmt is OutputFormat.json:
        return report.to_json()
    if fmt is OutputFormat.csv:
        return col.to_csv(PARETO_CSV_COLUMNS, _marked(report, report.pareto))
    shown = _marked(report, _pareto_shown(report))
    if fmt is OutputFormat.markdown:
        text = f"{_search_line(report)}\n\n{_best_line(report)}\n\n"
        text += col.to_markdown(
            PARETO_COLUMNS, shown, title=f"{_plan_title(report)}: Pareto front ({len(report.pareto)} points)"
        )
        if report.near_misses:
            text += "\n" + col.to_markdown(NEAR_MISS_COLUMNS, report.near_misses, title="Closest near-misses")
        return text
    from rich.text import Text

    from flopcast.cli.common import render_to_text
    from flopcast.cli.estimate_cmd import estimate_tables

    extra = "" if len(shown) == len(report.pareto) else f", {len(shown)} shown (all in --format json/csv)"
    title = f"{_plan_title(report)}\nPareto front of time vs cost: {len(report.pareto)} points{extra}; * = best"
    parts = [Text(_search_line(report)), col.rich_table(title, PARETO_COLUMNS, shown)]
    if report.near_misses:
        parts.append(col.rich_table("Closest near-misses", NEAR_MISS_COLUMNS, report.near_misses))
    if report.best is not None:
        parts.append(Text(_best_line(report)))
        parts.append(estimate_tables(report.best)[0])
    if report.warnings:
        parts.append(col.notes_table(report.warnings))
    return render_to_text(parts)
