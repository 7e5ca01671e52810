"""`flopcast calibrate RUNS...`: fit a hardware profile's GEMM ceiling to steps measured on your own cluster.

RUNS are CSV/JSON files of measured steps (flopcast.calibration.measured) and/or training logs of torchtitan,
Megatron-LM/NeMo or DeepSpeed (flopcast.calibration.logs; the model and layout come from the options).
``--save-profile NAME`` writes the base profile with the fitted calibration block to the user profile dir.
"""

from __future__ import annotations

from pathlib import Path

import typer

from flopcast.calibration.measured import LAYOUT_COLUMNS
from flopcast.cli import columns as col
from flopcast.cli._app import app
from flopcast.cli.common import OutputFormat, emit_text, note, preflight_output
from flopcast.cli.options import (
    LAYOUT_OPTIONS,
    DevicesOfRun,
    ForceOutputOrProfile,
    Format,
    Hardware,
    Model,
    Output,
    Profiles,
    Quiet,
    SaveProfile,
    SeqLen,
    option_group,
    with_architecture_options,
)

# the shared flags of the layout fields a measured row has (no shard group or interleave: the backtest searches them)
with_measured_layout_options = option_group("layout", {k: LAYOUT_OPTIONS[k] for k in LAYOUT_COLUMNS})


def _num(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 1e4 else f"{x:.4g}"


def _gb(x: float | None) -> str:
    return "" if x is None else f"{x / 1e9:.3g}"


SHORT_TARGET = {"step_seconds": "step s", "tokens_per_second": "tokens/s", "tflops_per_device": "TFLOP/s/dev"}
COLUMNS: col.Columns = (
    ("run", lambda r: r.run_id),
    ("target", lambda r: r.target),
    ("measured", lambda r: f"{r.measured:.6g}"),
    ("predicted before", lambda r: f"{r.predicted_before:.6g}"),
    ("error before", lambda r: f"{r.error_before:+.1%}"),
    ("predicted after", lambda r: f"{r.predicted_after:.6g}"),
    ("error after", lambda r: f"{r.error_after:+.1%}"),
    ("devices", lambda r: str(r.devices)),
    ("layout used", lambda r: r.layout),
    ("measured memory GB", lambda r: _gb(r.measured_peak_memory_bytes)),
    ("predicted memory GB", lambda r: _gb(r.predicted_memory_bytes)),
)
TABLE_COLUMNS: col.Columns = (
    ("run", lambda r: r.run_id),
    ("target", lambda r: SHORT_TARGET.get(r.target, r.target)),
    ("measured", lambda r: _num(r.measured)),
    ("before", lambda r: _num(r.predicted_before)),
    ("error", lambda r: f"{r.error_before:+.1%}"),
    ("after", lambda r: _num(r.predicted_after)),
    ("error ", lambda r: f"{r.error_after:+.1%}"),
    ("layout used", lambda r: r.layout),
    ("memory GB meas/pred", lambda r: f"{_gb(r.measured_peak_memory_bytes) or '—'}/{_gb(r.predicted_memory_bytes)}"),
)


def _summary_lines(report) -> list[str]:
    lines = []
    for c in report.fitted:
        bound = " (ON ITS BOUND)" if c.on_bound else ""
        lines.append(f"fitted {c.name} = {c.value:.4g} {c.unit}, range {c.lower:g}–{c.upper:.4g}{bound}: {c.meaning}")
    lines.append(
        f"= {report.ceiling_factor:.3f} × the ceiling flopcast used before ({report.base_ceiling:.4g}, family "
        f"{report.base_family or 'none'}); profile family written: {report.written_family or 'none'}"
    )
    for name, r in (("before", report.before), ("after", report.after)):
        lines.append(
            f"{name}: median |error| {r.median_abs_error:.1%}, max {r.max_abs_error:.1%}, rms log ratio "
            f"{r.rms_log_ratio:.3f}, measured/predicted time P10–P90 ×{r.p10_factor:.3f}–×{r.p90_factor:.3f}"
        )
    lines.append(
        f"{report.runs} row(s), {report.distinct_layouts} distinct layout(s); the range is in-sample (the rows fitted "
        f"are the rows measured); {report.evaluations} evaluations in {report.seconds:.2f} s"
    )
    if report.saved_profile:
        lines.append(f"saved profile {report.profile_name}: {report.saved_profile} (flopcast estimate --hardware "
                     f"{report.profile_name} ...)")  # fmt: skip
    return lines + [f"warning: {w}" for w in report.warnings]


@app.command("calibrate")
@with_architecture_options
@with_measured_layout_options
def calibrate_command(
    runs: list[Path] = typer.Argument(
        ...,
        metavar="RUNS",
        help="CSV/JSON files of measured steps, or torchtitan / Megatron-LM / DeepSpeed training logs.",
    ),  # fmt: skip
    model: Model = None,
    seq_len: SeqLen = None,
    architecture: dict | None = None,
    hardware: Hardware = None,
    devices: DevicesOfRun = None,
    layout: dict | None = None,
    skip_steps: int = typer.Option(
        3, "--skip-steps", metavar="N", help="Logs: warm-up step lines dropped before the median."
    ),
    fit: str = typer.Option(
        "ceiling",
        "--fit",
        metavar="ceiling|ceiling,overhead",
        help="What to fit: the GEMM ceiling, or also a per-step overhead (needs 2+ distinct layouts; reported only).",
    ),  # fmt: skip
    save_profile: SaveProfile = None,
    profiles: Profiles = None,
    fmt: Format = OutputFormat.table,
    output: Output = None,
    force: ForceOutputOrProfile = False,
    quiet: Quiet = False,
) -> None:
    """Fit the GEMM ceiling of a hardware profile to steps measured on your cluster; optionally save the profile."""
    from flopcast.calibration.calibrate import calibrate
    from flopcast.calibration.measured import load_sources
    from flopcast.errors import InvalidValue

    parts = [p.strip().lower() for p in fit.split(",") if p.strip()]
    if not parts or parts[0] != "ceiling" or any(p not in ("ceiling", "overhead") for p in parts):
        raise InvalidValue(f"--fit {fit!r}: expected ceiling or ceiling,overhead")
    preflight_output(output, force)
    target = None
    if save_profile is not None:
        from flopcast.calibration.save import check_target

        target = check_target(save_profile, force)
    defaults = {"model": model, "seq_len": seq_len, "devices": devices, **(architecture or {}), **(layout or {})}
    measured = load_sources(runs, hardware=hardware, defaults=defaults, skip_steps=skip_steps, profiles=profiles)
    from flopcast.request import resolve_hardware

    base = resolve_hardware(measured[0].run.hardware, profiles)
    report = calibrate(measured, base, name=save_profile, fit_overhead="overhead" in parts,
                       sources=[str(p) for p in runs])  # fmt: skip
    if target is not None:
        from flopcast.calibration.save import calibrated_profile, write_profile

        path = write_profile(calibrated_profile(base, report, save_profile), target)
        report = report.model_copy(update={"saved_profile": str(path), "profile_name": save_profile})
    emit_text(render_calibration(report, fmt), output, force, quiet)
    if fmt is OutputFormat.csv:
        for line in _summary_lines(report):
            note(line, quiet)


def render_calibration(report, fmt: OutputFormat) -> str:
    """A CalibrationReport as text in ``fmt`` (the command and `flopcast report` both use this)."""
    if fmt is OutputFormat.json:
        return report.to_json()
    if fmt is OutputFormat.csv:
        return col.to_csv(COLUMNS, report.rows)
    if fmt is OutputFormat.markdown:
        return col.to_markdown(COLUMNS, report.rows) + "\n" + "\n".join(f"- {line}" for line in _summary_lines(report))
    from rich.table import Table

    from flopcast.cli.common import render_to_text

    table = Table(title=f"Calibration of {report.hardware} on {report.runs} measured row(s)", title_justify="left")
    for h in col.headers(TABLE_COLUMNS):
        table.add_column(h, justify="left" if h in ("run", "target", "layout used") else "right", no_wrap=True)
    for row in col.cells(TABLE_COLUMNS, report.rows):
        table.add_row(*row)
    return render_to_text([table]) + "\n".join(_summary_lines(report))
