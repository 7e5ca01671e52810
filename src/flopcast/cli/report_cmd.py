"""`flopcast report FILE.json`: re-render a saved JSON report as a table, Markdown, CSV, JSON or a plot.

The JSON file is the durable artefact: its ``report`` field names the kind, the kind's pydantic model
validates it (flopcast.reports.registry), and each command's own renderer draws it, so a re-rendered
report reads exactly like the command's output.
"""

from __future__ import annotations

from importlib import import_module
from pathlib import Path

import typer

from flopcast.cli._app import app
from flopcast.cli.common import (
    OutputFormat,
    emit_text,
    preflight_output,
    preflight_plot,
)
from flopcast.cli.options import Force, Format, Output, Plot, Quiet

# report kind -> (module, function(report, fmt) -> str): each command's own renderer
RENDERERS: dict[str, tuple[str, str]] = {
    "estimate": ("flopcast.cli.estimate_cmd", "render_estimate"),
    "sweep": ("flopcast.cli.sweep_view", "render_sweep"),
    "compare": ("flopcast.cli.compare_cmd", "render_compare"),
    "plan": ("flopcast.cli.plan_cmd", "render_plan"),
    "size": ("flopcast.cli.size_cmd", "render_size"),
    "serve": ("flopcast.cli.serve_cmd", "render_serve"),
    "serve-plan": ("flopcast.cli.serve_plan_view", "render_serve_plan"),
    "validate": ("flopcast.cli.validate_cmd", "render_validate"),
    "bench": ("flopcast.cli.bench_cmd", "render_bench"),
    "verify-train": ("flopcast.cli.bench_train_view", "render_train_verify"),
    "verify-serve": ("flopcast.cli.bench_cmd", "render_verify_serve"),
    "collectives": ("flopcast.cli.bench_collectives_view", "render_collectives"),
    "calibration": ("flopcast.cli.calibrate_cmd", "render_calibration"),
}


def render_report(report, fmt: OutputFormat) -> str:
    """``report`` (any kind) as text in ``fmt``, by the renderer of the command that made it."""
    module, name = RENDERERS[report.report]
    return getattr(import_module(module), name)(report, fmt)


@app.command("report")
def report_command(
    ctx: typer.Context,
    file: Path = typer.Argument(
        ...,
        metavar="FILE.json",
        help="A report saved with --format json (--output FILE.json); - reads standard input (a pipe works too).",
        dir_okay=False,
    ),
    fmt: Format = OutputFormat.table,
    output: Output = None,
    force: Force = False,
    plot: Plot = None,
    quiet: Quiet = False,
) -> None:
    """Re-render a saved JSON report (any kind) as a table, Markdown, CSV or JSON, or plot it.

    The kind comes from the file's `report` field and the file is validated against that kind's schema
    (`flopcast schema KIND`). With --plot only the figure is written unless --format or --output is given too.
    """
    from flopcast.reports.registry import load_report

    preflight_output(output, force)
    preflight_plot(plot, force)
    report = load_report(file)
    if plot is not None:
        from flopcast.plotting import render_plot

        # check the kind has a figure before writing anything
        data = render_plot(report, plot)
        wants_text = output is not None or _format_given(ctx)
        if wants_text:
            emit_text(render_report(report, fmt), output, force, quiet)
        _write_plot(data, plot, force, quiet)
        return
    emit_text(render_report(report, fmt), output, force, quiet)


def _format_given(ctx: typer.Context) -> bool:
    """True when --format/-f was on the command line (with --plot alone, only the figure is written)."""
    source = ctx.get_parameter_source("fmt")
    return source is not None and source.name == "COMMANDLINE"


def _write_plot(data: bytes, plot: Path, force: bool, quiet: bool) -> None:
    from flopcast.cli.common import note
    from flopcast.io import atomic_write_bytes

    path = atomic_write_bytes(plot, data, force=force)
    note(f"wrote {path}", quiet)
