"""`flopcast compare`: one workload on every (or the named) hardware, ranked.

The work is done by :func:`flopcast.compare` (flopcast.comparison); this module parses flags and renders the
report. ``--format json`` never imports rich.
"""

from __future__ import annotations

from flopcast.cli import columns as col
from flopcast.cli._app import app
from flopcast.cli._search import interruptible, workload
from flopcast.cli.common import OutputFormat, emit_plot, emit_text, preflight_output, preflight_plot
from flopcast.cli.options import (
    Confidence,
    DeadlineInsteadOfDevices,
    DevicesPerHardware,
    Force,
    Format,
    GlobalBatch,
    GradDtype,
    HardwareList,
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
    Tokens,
    with_architecture_options,
)
from flopcast.units import format_duration, format_si


def _with_range(value: float | None, lo: float | None, hi: float | None, fmt) -> str:
    if value is None:
        return "—"
    return fmt(value) + ("" if lo is None or hi is None else f" ({fmt(lo)}–{fmt(hi)})")


# one CompareRow per hardware
COMPARE_COLUMNS: col.Columns = (
    ("#", lambda r: str(r.rank)),
    ("hardware", lambda r: r.hardware),
    ("devices", lambda r: "—" if r.devices is None else str(r.devices)),
    ("tp·pp·dp", lambda r: col.layout_text(r.layout)),
    ("wall-clock (P10–P90)",
     lambda r: _with_range(r.wall_clock_seconds, r.wall_clock_seconds_p10, r.wall_clock_seconds_p90, format_duration)),
    ("device-hours", lambda r: "—" if r.device_hours is None else format_si(r.device_hours)),
    ("cost", lambda r: col.usd(r.cost_usd)),
    ("energy", lambda r: col.mwh(r.energy_kwh)),
    ("fits", lambda r: "—" if r.fits is None else ("yes" if r.fits else "NO")),
    ("why not / note", lambda r: r.reason or ""),
)  # fmt: skip
COMPARE_CSV_COLUMNS: col.Columns = (
    ("rank", lambda r: str(r.rank)),
    ("hardware", lambda r: r.hardware),
    ("ok", lambda r: col.flag(r.ok)),
    *col.raw_columns("devices"),
    ("fits", lambda r: col.flag(r.fits)),
    *col.layout_csv_columns(lambda r: r.layout),
    *col.raw_columns("wall_clock_seconds", "wall_clock_seconds_p10", "wall_clock_seconds_p90", "device_hours",
                     "cost_usd"),
    ("price_tier", lambda r: r.price_tier or ""),
    *col.raw_columns("usd_per_device_hour", "energy_kwh", "memory_per_device_bytes", "capacity_bytes", "mfu"),
    ("reason", lambda r: r.reason or ""),
)  # fmt: skip
COMPARE_HEADERS = col.headers(COMPARE_COLUMNS)
COMPARE_CSV_HEADERS = col.headers(COMPARE_CSV_COLUMNS)


def _compare_title(report) -> str:
    i = report.inputs
    where = (
        f"{i.devices} devices"
        if i.devices is not None
        else f"the fewest devices that meet {format_duration(i.deadline_seconds)}"
        + ("" if i.confidence == "p50" else f" at {i.confidence.upper()}")
    )
    rank = {"cost": "cost", "time": "devices" if i.deadline_seconds is not None else "time", "energy": "energy"}
    at_c = "" if i.confidence == "p50" or rank[i.objective] in ("devices", "energy") else f" {i.confidence.upper()}"
    tier = f"{i.price_tier} prices" if i.price_tier else "on-demand prices where listed"
    return (
        f"Compare: {report.model.name} ({format_si(report.model.params)} params), {format_si(i.tokens)} tokens "
        f"on {where}; {tier}; best{at_c} {rank[i.objective]} first"
    )


@app.command("compare")
@with_architecture_options
def compare_command(
    model: Model = None,
    tokens: Tokens = None,
    hardware: HardwareList = None,
    devices: DevicesPerHardware = None,
    deadline: DeadlineInsteadOfDevices = None,
    confidence: Confidence = None,
    max_devices: MaxDevices = None,
    objective: Objective = None,
    price_tier: PriceTier = None,
    precision: Precision = "bf16",
    memory_headroom: MemoryHeadroom = None,
    grad_dtype: GradDtype = None,
    global_batch: GlobalBatch = None,
    architecture: dict = None,  # one option per architecture field: cli.options.with_architecture_options
    seq_len: SeqLen = None,
    fmt: Format = OutputFormat.table,
    output: Output = None,
    force: Force = False,
    profiles: Profiles = None,
    quiet: Quiet = False,
    plot: Plot = None,
) -> None:
    """One workload on every (or the named) hardware: time, device-hours, cost, energy, fits — ranked."""
    from flopcast.api import compare

    preflight_output(output, force)
    preflight_plot(plot, force)
    work = workload(model, tokens, seq_len, precision, global_batch, **architecture)
    work["memory_headroom"] = memory_headroom
    work["grad_dtype"] = grad_dtype
    with interruptible():
        report = compare(
            **work,
            hardware=hardware,
            devices=devices,
            deadline=deadline,
            confidence=confidence,
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
    if fmt is OutputFormat.csv:
        return col.to_csv(COMPARE_CSV_COLUMNS, report.rows)
    if fmt is OutputFormat.markdown:
        return col.to_markdown(COMPARE_COLUMNS, report.rows, title=_compare_title(report))
    from flopcast.cli.common import render_to_text

    parts = [col.rich_table(_compare_title(report), COMPARE_COLUMNS, report.rows)]
    if report.warnings:
        parts.append(col.notes_table(report.warnings))
    return render_to_text(parts)
