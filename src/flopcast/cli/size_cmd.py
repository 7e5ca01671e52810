"""`flopcast size`: compute-optimal parameters and tokens for a budget, then their estimate.

The work is done by :func:`flopcast.size` (flopcast.sizing); this module parses flags and renders the report.
``--format json`` never imports rich.
"""

from __future__ import annotations

from typing import Annotated

import typer

from flopcast.cli import columns as col
from flopcast.cli._app import app
from flopcast.cli._search import interruptible
from flopcast.cli.common import OutputFormat, emit_text, note, preflight_output
from flopcast.cli.options import (
    Confidence,
    DeadlineBudget,
    DollarBudget,
    Force,
    Format,
    MaxDevices,
    Output,
    Precision,
    PriceTier,
    Profiles,
    Quiet,
    SizedDevices,
    SizedHardware,
    SizedSeqLen,
    SizedVocab,
)
from flopcast.units import format_duration, format_si

# size's own options (every shared one is in flopcast.cli.options)
Flops = Annotated[str | None, typer.Option("--flops", help="Compute budget in FLOPs, e.g. 1e24.", metavar="N",
                                           show_default=False)]  # fmt: skip
DeviceHours = Annotated[
    str | None,
    typer.Option("--device-hours", help="Device-hour budget, e.g. 100k (needs --hardware and --devices).",
                 metavar="N", show_default=False),
]  # fmt: skip


def _budget_text(kind: str, value: float) -> str:
    from flopcast.sizing import Budget

    return Budget(kind, value).describe()


def _met_at(report) -> str:
    """`` at P90`` when the budget is met at a percentile (a FLOP budget has no range)."""
    c = report.inputs.confidence
    return "" if c == "p50" or report.inputs.budget_kind == "flops" else f" at {c.upper()}"


def _estimated(get, none: str = "—"):
    """A cell from the report's estimate; ``none`` when the report has no estimate."""
    return lambda r: none if r.estimate is None else get(r.estimate)


# one row: the SizeReport itself
SIZE_COLUMNS: col.Columns = (
    ("budget", lambda r: _budget_text(r.inputs.budget_kind, r.inputs.budget) + _met_at(r)),
    ("N (params)", lambda r: format_si(r.compute_optimal.params)),
    ("D (tokens)", lambda r: format_si(r.compute_optimal.tokens)),
    ("C = 6·N·D", lambda r: f"{r.compute_optimal.flops:.3g}"),
    ("model", lambda r: f"{r.model.layers} × {r.model.d_model} ({format_si(r.model.params)})"),
    ("hardware", _estimated(lambda e: f"{e.inputs.devices} × {e.hardware.id}")),
    ("wall-clock", _estimated(lambda e: format_duration(e.time.wall_clock_seconds))),
    ("cost", _estimated(lambda e: col.usd(e.cost.total_usd))),
    ("device-hours", _estimated(lambda e: f"{e.time.device_hours:,.0f}")),
    ("uses", lambda r: f"{r.budget_used_fraction:.1%}"),
)


def _estimated_csv(get):
    return _estimated(get, none="")


SIZE_CSV_COLUMNS: col.Columns = (
    ("budget_kind", lambda r: r.inputs.budget_kind),
    ("budget", lambda r: col.raw(r.inputs.budget)),
    ("params", lambda r: col.raw(r.compute_optimal.params)),
    ("tokens", lambda r: col.raw(r.compute_optimal.tokens)),
    ("flops", lambda r: col.raw(r.compute_optimal.flops)),
    ("model", lambda r: r.model.name),
    ("model_params", lambda r: str(r.model.params)),
    ("layers", lambda r: str(r.model.layers)),
    ("d_model", lambda r: str(r.model.d_model)),
    ("hardware", _estimated_csv(lambda e: e.hardware.id)),
    ("devices", _estimated_csv(lambda e: str(e.inputs.devices))),
    ("wall_clock_seconds", _estimated_csv(lambda e: col.raw(e.time.wall_clock_seconds))),
    ("device_hours", _estimated_csv(lambda e: col.raw(e.time.device_hours))),
    ("cost_usd", _estimated_csv(lambda e: col.raw(e.cost.total_usd))),
    ("fits", _estimated_csv(lambda e: col.flag(e.memory.fits))),
    ("budget_used", lambda r: col.raw(r.budget_used)),
    ("budget_used_fraction", lambda r: col.raw(r.budget_used_fraction)),
    ("confidence", lambda r: r.inputs.confidence),
)
SIZE_CSV_HEADERS = col.headers(SIZE_CSV_COLUMNS)


@app.command("size")
def size_command(
    flops: Flops = None,
    budget: DollarBudget = None,
    device_hours: DeviceHours = None,
    deadline: DeadlineBudget = None,
    hardware: SizedHardware = None,
    devices: SizedDevices = None,
    max_devices: MaxDevices = None,
    confidence: Confidence = None,
    price_tier: PriceTier = None,
    precision: Precision = "bf16",
    seq_len: SizedSeqLen = None,
    vocab: SizedVocab = None,
    fmt: Format = OutputFormat.table,
    output: Output = None,
    force: Force = False,
    profiles: Profiles = None,
    quiet: Quiet = False,
) -> None:
    """Compute-optimal parameters and tokens for a budget (Chinchilla: D ≈ 20·N, C = 6·N·D), then its estimate."""
    from flopcast.api import size

    preflight_output(output, force)
    with interruptible():
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
            confidence=confidence,
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
    if fmt is OutputFormat.csv:
        return col.to_csv(SIZE_CSV_COLUMNS, [report])
    if fmt is OutputFormat.markdown:
        return col.to_markdown(SIZE_COLUMNS, [report], title="Compute-optimal size")
    from flopcast.cli.common import render_to_text
    from flopcast.cli.estimate_cmd import estimate_tables

    title = "Compute-optimal size (Chinchilla: D ≈ 20·N, C = 6·N·D; Hoffmann et al. 2022)"
    parts = [col.rich_table(title, SIZE_COLUMNS, [report])]
    if report.estimate is not None:
        parts.append(estimate_tables(report.estimate)[0])
    if report.warnings:
        parts.append(col.notes_table(report.warnings))
    return render_to_text(parts)
