"""`flopcast hardware list|show|validate`."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from flopcast.cli import app
from flopcast.cli.common import (
    FORCE_OPTION,
    FORMAT_OPTION,
    OUTPUT_OPTION,
    PROFILES_OPTION,
    OutputFormat,
    emit_text,
    preflight_output,
    render_to_text,
)

hardware_app = typer.Typer(help="List, show and validate hardware profiles.", no_args_is_help=True)
app.add_typer(hardware_app, name="hardware")

LIST_HEADERS = [
    "id", "kind", "name", "peak 16-bit TFLOP/s", "peak fp32 TFLOP/s", "memory GB", "bandwidth GB/s",
    "devices/node", "on-demand $/h", "origin",
]


def _fmt(value: float | None, scale: float, digits: int = 4) -> str:
    return "" if value is None else f"{value / scale:.{digits}g}"


def _list_row(entry) -> list[str]:
    p = entry.profile
    half = p.peak_flops_per_s.bf16 or p.peak_flops_per_s.fp16
    price = p.prices_usd_per_device_hour.get("on-demand")
    return [
        p.id, p.kind, p.name, _fmt(half, 1e12), _fmt(p.peak_flops_per_s.fp32, 1e12), _fmt(p.memory_bytes, 1e9),
        _fmt(p.memory_bandwidth_bytes_per_s, 1e9), str(p.devices_per_node),
        "" if price is None else f"{price.usd_per_device_hour:.2f}", entry.origin,
    ]


@hardware_app.command("list")
def list_hardware(
    fmt: OutputFormat = FORMAT_OPTION,
    output: Path | None = OUTPUT_OPTION,
    force: bool = FORCE_OPTION,
    profiles: list[Path] | None = PROFILES_OPTION,
) -> None:
    """List every hardware profile on the search path."""
    from flopcast.hardware import load_catalog

    preflight_output(output, force)
    catalog = load_catalog(profiles)
    entries = [catalog.entries[i] for i in catalog.ids()]
    if fmt is OutputFormat.json:
        doc = [
            {**e.profile.model_dump(mode="json"), "file": str(e.path), "origin": e.origin} for e in entries
        ]
        text = json.dumps(doc, indent=2)
    else:
        rows = [_list_row(e) for e in entries]
        if fmt is OutputFormat.csv:
            from flopcast.tabular import to_csv

            text = to_csv(LIST_HEADERS, rows)
        elif fmt is OutputFormat.markdown:
            from flopcast.tabular import to_markdown

            text = to_markdown(LIST_HEADERS, rows)
        else:
            from rich.table import Table

            table = Table(title="Hardware profiles (dense peaks)", title_justify="left")
            for h in LIST_HEADERS:
                table.add_column(h, justify="right" if h[0].isupper() or "/" in h or "GB" in h else "left")
            for row in rows:
                table.add_row(*row)
            text = render_to_text([table])
    emit_text(text, output, force)


@hardware_app.command("show")
def show_hardware(
    hardware_id: str = typer.Argument(..., metavar="ID", help="Profile id or alias, e.g. a100-80gb or h100."),
    fmt: OutputFormat = FORMAT_OPTION,
    output: Path | None = OUTPUT_OPTION,
    force: bool = FORCE_OPTION,
    profiles: list[Path] | None = PROFILES_OPTION,
) -> None:
    """Show one profile, its sources, and which file won."""
    from flopcast.hardware import load_catalog

    preflight_output(output, force)
    catalog = load_catalog(profiles)
    entry = catalog.entry(hardware_id)
    p = entry.profile
    doc = {**p.model_dump(mode="json"), "file": str(entry.path), "origin": entry.origin,
           "overrides": [str(x) for x in entry.overrides]}
    if fmt is OutputFormat.json:
        emit_text(json.dumps(doc, indent=2), output, force)
        return
    rows = _show_rows(p, entry)
    if fmt is OutputFormat.csv:
        from flopcast.tabular import to_csv

        emit_text(to_csv(["field", "value"], rows), output, force)
        return
    if fmt is OutputFormat.markdown:
        from flopcast.tabular import to_markdown

        emit_text(to_markdown(["field", "value"], rows, title=f"{p.name} ({p.id})"), output, force)
        return
    from rich.table import Table

    table = Table(title=f"{p.name} ({p.id})", title_justify="left", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for field, value in rows:
        table.add_row(field, value)
    emit_text(render_to_text([table]), output, force)


def _show_rows(p, entry) -> list[list[str]]:
    rows = [["id", p.id], ["name", p.name], ["kind", p.kind], ["aliases", ", ".join(p.aliases) or "—"]]
    for dtype, value in p.peak_flops_per_s.model_dump().items():
        rows.append([f"peak {dtype} (dense)", "not published" if value is None else f"{value / 1e12:g} TFLOP/s"])
    rows += [
        ["memory", f"{p.memory_bytes / 1e9:g} GB"],
        ["memory bandwidth", f"{p.memory_bandwidth_bytes_per_s / 1e9:g} GB/s"],
        ["devices per node", str(p.devices_per_node)],
        ["intra-node link", _fmt(p.intra_node_bandwidth_bytes_per_s, 1e9) + " GB/s per device"
         if p.intra_node_bandwidth_bytes_per_s else "not published"],
        ["inter-node link", _fmt(p.inter_node_bandwidth_bytes_per_s, 1e9) + " GB/s per device"
         if p.inter_node_bandwidth_bytes_per_s else "not published"],
        ["TDP", f"{p.tdp_watts:g} W" if p.tdp_watts else "not published"],
    ]
    if p.typical_power_watts:
        rows.append(["typical power", f"{p.typical_power_watts:g} W"])
    for tier, price in p.prices_usd_per_device_hour.items():
        rows.append([f"price {tier}", f"${price.usd_per_device_hour:g}/device-hour (seen {price.date})"])
    if p.calibration:
        rows.append(["calibration", f"matmul efficiency {p.calibration.matmul_efficiency} "
                                    f"({p.calibration.fitted_on})"])
    rows += [[f"source {i + 1}", s] for i, s in enumerate(p.sources)]
    rows += [["missing", m] for m in p.missing]
    rows += [["note", n] for n in p.notes]
    rows.append(["file", f"{entry.path} ({entry.origin})"])
    rows += [["overrides", str(o)] for o in entry.overrides]
    return rows


@hardware_app.command("validate")
def validate_hardware(
    files: list[Path] = typer.Argument(..., metavar="FILE...", help="Profile YAML files to check."),
) -> None:
    """Check profile files; print every problem as file:line: field: message (exit 2 if any)."""
    from flopcast.errors import EXIT_USAGE
    from flopcast.hardware import profile_problems

    problems: list[str] = []
    for path in files:
        if not path.exists():
            problems.append(f"{path}: file does not exist")
            continue
        _, found = profile_problems(path)
        problems += found
    if problems:
        for line in problems:
            typer.echo(line, err=True)
        typer.echo(f"flopcast: {len(problems)} problem(s) in {len(files)} file(s)", err=True)
        raise typer.Exit(EXIT_USAGE)
    typer.echo(f"{len(files)} profile(s) valid")
