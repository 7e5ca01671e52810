"""`flopcast hardware list|show|validate`."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from flopcast.cli._app import app
from flopcast.cli.common import (
    OutputFormat,
    emit_text,
    preflight_output,
    render_to_text,
)
from flopcast.cli.options import Force, Format, Output, Profiles, complete_hardware

hardware_app = typer.Typer(help="List, show and validate hardware profiles.", no_args_is_help=True)
app.add_typer(hardware_app, name="hardware")

# Human tables (table, markdown): scaled units, short headers so a 120-column pipe does not wrap.
LIST_HEADERS = [
    "id", "kind", "peak TFLOP/s", "mem GB", "mem GB/s", "link GB/s", "net GB/s", "dev/node", "$/dev-h", "origin",
]  # fmt: skip
# CSV: one column per field, SI units in the names, raw numbers (lossless, for spreadsheets and scripts).
CSV_HEADERS = [
    "id", "kind", "name", "training_dtype", "training_peak_flops_per_s", "fp32_flops_per_s", "memory_bytes",
    "memory_bandwidth_bytes_per_s", "intra_node_bandwidth_bytes_per_s", "inter_node_bandwidth_bytes_per_s",
    "devices_per_node", "tdp_watts", "on_demand_usd_per_device_hour", "origin", "file",
]  # fmt: skip
TERA = 1e12
GIGA = 1e9
GIBI = 2**30


def _fmt(value: float | None, scale: float, digits: int = 4) -> str:
    return "" if value is None else f"{value / scale:.{digits}g}"


def _raw(value: float | None) -> str:
    """Lossless: the shortest text that reads back as the same float."""
    return "" if value is None else repr(value)


def _on_demand(profile) -> float | None:
    price = profile.prices_usd_per_device_hour.get("on-demand")
    return None if price is None else price.usd_per_device_hour


def _table_row(entry) -> list[str]:
    p = entry.profile
    dtype, peak = p.peak_flops_per_s.for_training()
    price = _on_demand(p)
    return [
        p.id, p.kind, f"{_fmt(peak, TERA)} {dtype}", _fmt(p.memory_bytes, GIGA),
        _fmt(p.memory_bandwidth_bytes_per_s, GIGA), _fmt(p.intra_node_bandwidth_bytes_per_s, GIGA),
        _fmt(p.inter_node_bandwidth_bytes_per_s, GIGA), str(p.devices_per_node),
        "" if price is None else f"{price:.2f}", entry.origin,
    ]  # fmt: skip


def _csv_row(entry) -> list[str]:
    p = entry.profile
    dtype, peak = p.peak_flops_per_s.for_training()
    return [
        p.id, p.kind, p.name, dtype, _raw(peak), _raw(p.peak_flops_per_s.fp32), _raw(p.memory_bytes),
        _raw(p.memory_bandwidth_bytes_per_s), _raw(p.intra_node_bandwidth_bytes_per_s),
        _raw(p.inter_node_bandwidth_bytes_per_s), str(p.devices_per_node), _raw(p.tdp_watts), _raw(_on_demand(p)),
        entry.origin, str(entry.path),
    ]  # fmt: skip


def _document(entry) -> dict:
    """The JSON form of one catalogue entry: the profile as written, its training peak, and where it came from."""
    p = entry.profile
    dtype, peak = p.peak_flops_per_s.for_training()
    return {
        **p.model_dump(mode="json"),
        "training_dtype": dtype,
        "training_peak_flops_per_s": peak,
        "file": str(entry.path),
        "origin": entry.origin,
        "overrides": [str(x) for x in entry.overrides],
    }


def _plain_table(title: str | None, headers: list[str] | None, rows: list[list[str]]):
    """A rich table with light borders that reads well in a terminal and in a pipe."""
    from rich import box
    from rich.table import Table

    table = Table(title=title, title_justify="left", box=box.SIMPLE, show_header=headers is not None, pad_edge=False)
    for h in headers or ["field", "value"]:
        numeric = h not in {"id", "kind", "origin", "field", "value"}
        table.add_column(h, justify="right" if numeric else "left", no_wrap=h != "value", overflow="fold")
    for row in rows:
        table.add_row(*row)
    return table


@hardware_app.command("list")
def list_hardware(
    fmt: Format = OutputFormat.table,
    output: Output = None,
    force: Force = False,
    profiles: Profiles = None,
) -> None:
    """List every hardware profile on the search path (dense peaks; `hardware show ID` for the details)."""
    from flopcast.hardware import load_catalog

    preflight_output(output, force)
    catalog = load_catalog(profiles)
    entries = [catalog.entries[i] for i in catalog.ids()]
    if fmt is OutputFormat.json:
        text = json.dumps([_document(e) for e in entries], indent=2)
    elif fmt is OutputFormat.csv:
        from flopcast.tabular import to_csv

        text = to_csv(CSV_HEADERS, [_csv_row(e) for e in entries])
    elif fmt is OutputFormat.markdown:
        from flopcast.tabular import to_markdown

        text = to_markdown(LIST_HEADERS, [_table_row(e) for e in entries])
    else:
        title = (
            "Hardware profiles. peak: dense, for training (16-bit; fp32 on CPUs). link (intra-node), net "
            "(inter-node): per device per direction. `flopcast hardware show ID` for the rest."
        )
        text = render_to_text([_plain_table(title, LIST_HEADERS, [_table_row(e) for e in entries])])
    emit_text(text, output, force)


@hardware_app.command("show")
def show_hardware(
    hardware_id: str = typer.Argument(
        ..., metavar="ID", help="Profile id or alias, e.g. a100-80gb or h100.", autocompletion=complete_hardware
    ),
    fmt: Format = OutputFormat.table,
    output: Output = None,
    force: Force = False,
    profiles: Profiles = None,
) -> None:
    """Show one profile, its sources, which file won and which files it overrode."""
    from flopcast.hardware import load_catalog

    preflight_output(output, force)
    catalog = load_catalog(profiles)
    entry = catalog.entry(hardware_id)
    p = entry.profile
    if fmt is OutputFormat.json:
        emit_text(json.dumps(_document(entry), indent=2), output, force)
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
    emit_text(render_to_text([_plain_table(f"{p.name} ({p.id})", None, rows)]), output, force)


def _link(value: float | None) -> str:
    return f"{value / GIGA:g} GB/s per device per direction" if value else "not published"


def _show_rows(p, entry) -> list[list[str]]:
    dtype, peak = p.peak_flops_per_s.for_training()
    rows = [
        ["id", p.id], ["name", p.name], ["kind", p.kind], ["vendor", p.vendor or "—"],
        ["family", p.family or "— (uncalibrated)"],
        ["compute capability", "—" if p.compute_capability is None else f"{p.compute_capability:.1f}"],
        ["aliases", ", ".join(p.aliases) or "—"], ["release year", str(p.release_year or "—")],
        ["training peak", f"{peak / TERA:g} TFLOP/s ({dtype}, dense)"],
    ]  # fmt: skip
    for name, value in p.peak_flops_per_s.model_dump().items():
        rows.append([f"peak {name} (dense)", "not published" if value is None else f"{value / TERA:g} TFLOP/s"])
    rows += [
        ["memory", f"{p.memory_bytes / GIGA:g} GB ({p.memory_bytes / GIBI:.4g} GiB)"],
        ["memory bandwidth", f"{p.memory_bandwidth_bytes_per_s / GIGA:g} GB/s"],
        ["devices per node", str(p.devices_per_node)],
        ["intra-node link", _link(p.intra_node_bandwidth_bytes_per_s)],
        ["inter-node link", _link(p.inter_node_bandwidth_bytes_per_s)],
        ["TDP", f"{p.tdp_watts:g} W" if p.tdp_watts else "not published"],
    ]
    if p.collective_latency_s is not None:
        rows.append(["collective latency", f"{p.collective_latency_s * 1e6:.3g} µs (one all-reduce, measured)"])
    if p.measured:
        rows.append(["measured", ", ".join(p.measured) + " (the rest: datasheet)"])
    if p.typical_power_watts:
        rows.append(["typical power", f"{p.typical_power_watts:g} W (measured average)"])
    for tier, price in p.prices_usd_per_device_hour.items():
        rows.append(
            [f"price {tier}", f"${price.usd_per_device_hour:g}/device-hour (seen {price.date}; {price.source})"]
        )
        if price.note:
            rows.append([f"price {tier} note", price.note])
    if p.calibration:
        rows.append(["calibration", f"matmul efficiency {p.calibration.matmul_efficiency} ({p.calibration.fitted_on})"])
    rows += [[f"source {i + 1}", s] for i, s in enumerate(p.sources)]
    rows += [["missing", m] for m in p.missing]
    rows += [["note", n] for n in p.notes]
    rows.append(["file (wins)", f"{entry.path} ({entry.origin})"])
    rows += [["overrides", str(o)] for o in entry.overrides]
    return rows


def _expand(paths: list[Path]) -> list[Path]:
    """Files as given; a directory stands for the profile files inside it."""
    from flopcast.hardware import PROFILE_SUFFIXES

    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out += sorted(p for p in path.iterdir() if p.suffix in PROFILE_SUFFIXES and not p.name.startswith("."))
        else:
            out.append(path)
    return out


@hardware_app.command("validate")
def validate_hardware(
    files: list[Path] = typer.Argument(..., metavar="FILE...", help="Profile YAML files (or folders of them)."),
) -> None:
    """Check profile files; print every problem as file:line: field: message (exit 2 if any)."""
    from flopcast.errors import EXIT_USAGE
    from flopcast.hardware import profile_problems
    from flopcast.yamlsafe import FILE_FIELD

    checked = _expand(files)
    problems: list[str] = [
        f"{folder}:1: {FILE_FIELD}: no .yaml or .yml profile in this folder"
        for folder in files
        if folder.is_dir() and not _expand([folder])
    ]
    for path in checked:
        if not path.exists():
            problems.append(f"{path}:1: {FILE_FIELD}: file does not exist")
            continue
        _, found = profile_problems(path)
        problems += found
    if problems:
        for line in problems:
            typer.echo(line, err=True)
        typer.echo(f"flopcast: {len(problems)} problem(s) in {len(checked)} file(s)", err=True)
        raise typer.Exit(EXIT_USAGE)
    typer.echo(f"{len(checked)} profile(s) valid")
