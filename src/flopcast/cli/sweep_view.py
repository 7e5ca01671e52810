"""`flopcast estimate --sweep devices=8..4096`: run the sweep (flopcast.sweep) and render its report."""

from __future__ import annotations

from pathlib import Path

from flopcast.cli import columns as col
from flopcast.cli.common import OutputFormat, emit_plot, emit_text, note
from flopcast.units import format_duration, format_si


def run_sweep(sweep: str, options: dict, *, fmt: OutputFormat, output: Path | None, force: bool, plot, quiet: bool):
    """Estimate at every device count of ``sweep`` with the other ``estimate`` options, then write it."""
    from flopcast.sweep import sweep_estimate

    report = sweep_estimate(sweep=sweep, **options)
    emit_text(render_sweep(report, fmt), output, force, quiet)
    emit_plot(report, plot, force, quiet)
    if fmt is OutputFormat.csv:  # the table and Markdown carry the warnings themselves
        for warning in report.warnings:
            note(f"warning: {warning}", quiet)


def _layout_cell(r) -> str:
    lay = r.layout
    return f"{lay.tp}·{lay.pp}·{lay.dp}" + (f" v{r.layout.interleave}" if r.layout.interleave > 1 else "")


def _cost_range(r) -> str:
    return "—" if r.cost_usd_p10 is None else f"{col.usd(r.cost_usd_p10)}–{col.usd(r.cost_usd_p90)}"


# one SweepRow per device count
SWEEP_COLUMNS: col.Columns = (
    ("devices", lambda r: str(r.devices)),
    ("tp·pp·dp", _layout_cell),
    ("fits", lambda r: "yes" if r.fits else "NO"),
    ("mem/device", lambda r: f"{r.memory_per_device_bytes / 1e9:.1f} GB"),
    ("wall-clock", lambda r: format_duration(r.wall_clock_seconds)),
    ("P10–P90", lambda r: f"{format_duration(r.wall_clock_seconds_p10)}–{format_duration(r.wall_clock_seconds_p90)}"),
    ("cost", lambda r: col.usd(r.cost_usd)),
    ("cost P10–P90", _cost_range),
    ("MFU", lambda r: f"{r.mfu:.1%}"),
    ("scaling", lambda r: f"{r.scaling_efficiency:.0%}"),
)
# device-hours, step time, tokens/s and the full layout: --format csv or json
SWEEP_CSV_COLUMNS: col.Columns = (
    ("devices", lambda r: str(r.devices)),
    *col.layout_csv_columns(lambda r: r.layout),
    ("fits", lambda r: col.flag(r.fits)),
    *col.raw_columns(
        "memory_per_device_bytes", "step_seconds", "wall_clock_seconds", "wall_clock_seconds_p10",
        "wall_clock_seconds_p90", "device_hours", "device_hours_p10", "device_hours_p90", "cost_usd", "cost_usd_p10",
        "cost_usd_p90", "energy_kwh", "mfu", "tokens_per_second", "scaling_efficiency",
    ),
)  # fmt: skip
SWEEP_HEADERS = col.headers(SWEEP_COLUMNS)
SWEEP_CSV_HEADERS = col.headers(SWEEP_CSV_COLUMNS)


def sweep_title(report) -> str:
    i = report.inputs
    price = (
        f"{report.price_tier} at ${report.usd_per_device_hour:g}/device-hour"
        if report.usd_per_device_hour is not None
        else "no price"
    )
    return (
        f"Sweep: {report.model.name} ({format_si(report.model.params)} params), {format_si(i.tokens)} tokens on "
        f"{i.hardware}, devices {i.devices_min}..{i.devices_max} (powers of two); {price}"
    )


def _footer(report) -> list[str]:
    ref = next((r.devices for r in report.rows if r.fits), report.rows[0].devices)
    lines = [f"scaling: tokens/s per device relative to {ref} devices (100% = linear scaling)"]
    lines += [f"skipped {s.devices} devices: {s.reason}" for s in report.skipped]
    return lines


def render_sweep(report, fmt: OutputFormat) -> str:
    """A SweepReport as text in ``fmt`` (the command and `flopcast report` both use this)."""
    if fmt is OutputFormat.json:
        return report.to_json()
    if fmt is OutputFormat.csv:
        return col.to_csv(SWEEP_CSV_COLUMNS, report.rows)
    if fmt is OutputFormat.markdown:
        notes = _footer(report) + [f"warning: {w}" for w in report.warnings]
        return col.to_markdown(SWEEP_COLUMNS, report.rows, title=sweep_title(report)) + "".join(
            f"\n- {n}" for n in notes
        )
    from rich import box
    from rich.table import Table
    from rich.text import Text

    from flopcast.cli.common import render_to_text

    table = Table(title=sweep_title(report), title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for h in SWEEP_HEADERS:
        table.add_column(h, justify="left" if h in ("tp·pp·dp", "fits") else "right", no_wrap=True)
    for row in col.cells(SWEEP_COLUMNS, report.rows):
        table.add_row(*row)
    parts = [table, *(Text(line) for line in _footer(report))]
    parts += [Text(f"warning: {w}") for w in report.warnings]
    return render_to_text(parts)
