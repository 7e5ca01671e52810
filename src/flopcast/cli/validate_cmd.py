"""`flopcast validate [CSV] [--all]`: backtest the estimator against published training runs (DESIGN §7, §8).

Prints every run's predicted vs reported figure and error, then the median and P90 of the absolute
errors and the P10–P90 coverage, side by side for in-sample, leave-one-family-out and the frozen holdout
(the claim); exits 1 when the gate fails. Without arguments it checks the frozen holdout (the source
families of holdout_families.json, never fitted; what CI runs); ``--all`` shows every shipped run, fitted
and held out, and gates on the held-out ones; a CSV of your own is gated on all its runs.
"""

from __future__ import annotations

from pathlib import Path

import typer

from flopcast.cli import columns as col
from flopcast.cli._app import app
from flopcast.cli.common import (
    OutputFormat,
    emit_plot,
    emit_text,
    note,
    preflight_output,
    preflight_plot,
)
from flopcast.cli.options import Force, Format, Output, Plot, Profiles, Quiet


def _num(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 1e4 else f"{x:.4g}"


SHORT_TARGET = {"device_hours": "device-h", "tflops_per_device": "TFLOP/s/dev", "mfu": "MFU", "step_seconds": "step s"}

# one BacktestRow per published run: full precision and the layout used (CSV, Markdown) ...
COLUMNS: col.Columns = (
    ("run", lambda r: r.run_id),
    ("target", lambda r: r.target),
    ("hardware", lambda r: r.hardware),
    ("reported", lambda r: f"{r.reported:.6g}"),
    ("predicted", lambda r: f"{r.predicted:.6g}"),
    ("error", lambda r: f"{r.error:+.1%}"),
    ("P10", lambda r: f"{r.p10:.6g}"),
    ("P90", lambda r: f"{r.p90:.6g}"),
    ("in range", lambda r: "yes" if r.covered else "no"),
    ("trust", lambda r: r.trust),
    ("split", lambda r: r.split),
    ("layout used", lambda r: r.layout),
)
# ... and short, for a 120-column terminal (the table)
TABLE_COLUMNS: col.Columns = (
    ("run", lambda r: r.run_id),
    ("target", lambda r: SHORT_TARGET.get(r.target, r.target)),
    ("hardware", lambda r: r.hardware),
    ("reported", lambda r: _num(r.reported)),
    ("predicted", lambda r: _num(r.predicted)),
    ("error", lambda r: f"{r.error:+.1%}"),
    ("P10–P90", lambda r: f"{_num(r.p10)}–{_num(r.p90)}"),
    ("in range", lambda r: "yes" if r.covered else "NO"),
    ("trust", lambda r: r.trust),
    ("split", lambda r: r.split),
)
HEADERS = col.headers(COLUMNS)
TABLE_HEADERS = col.headers(TABLE_COLUMNS)


def _summary_lines(report) -> list[str]:
    s, b = report.summary, report.bars
    worst = f"{s.worst_trust_a_run} {s.worst_trust_a_error:+.1%}" if s.worst_trust_a_run else "none"
    names = {
        "in_sample": "in-sample (fit runs)",
        "leave_one_family_out": "leave-one-family-out (fit runs)",
        "held_out": "frozen holdout (never fitted) — the claim",
        "given": "the given runs — gated",
    }
    lines = []
    for key, f in report.figures.items():
        cover = "—" if f.coverage is None else f"{f.coverage:.0%}"
        lines.append(
            f"{names.get(key, key)}: {f.runs} runs, median |error| {f.median_abs_error:.1%}, "
            f"p90 {f.p90_abs_error:.1%}, P10–P90 coverage {cover}"
        )
    design = f"median ≤ {b.median_abs_error_max:.0%}, coverage ≥ {b.coverage_min:.0%}"
    lines.append(
        f"DESIGN bar on {s.gated_on} ({design}): "
        + ("met" if s.design_bars_met else "MISSED: " + "; ".join(s.design_failures))
    )
    if s.gate == "regression" and report.regression_bar:
        r = report.regression_bar
        lines.append(
            f"gate: regression bar, the figures stored at the fit plus margins (median ≤ "
            f"{r['median_abs_error_max']:.1%}, p90 ≤ {r['p90_abs_error_max']:.1%}, coverage ≥ {r['coverage_min']:.0%})"
        )
    else:
        lines.append("gate: the DESIGN bar")
    lines.append(f"worst trust-A run ({s.gated_on}): {worst} (reported, not gated)")
    rule = report.rule_of_thumb
    for key, label in (("whole_runs", "whole runs (device-hours)"), ("all", "every target")):
        if key in rule:
            f = rule[key]
            lines.append(
                f"vs the rule {rule['rule']} on {s.gated_on}, {label}: flopcast median |error| "
                f"{f['flopcast_median_abs_error']:.1%} (p90 {f['flopcast_p90_abs_error']:.0%}), the rule "
                f"{f['rule_median_abs_error']:.1%} (p90 {f['rule_p90_abs_error']:.0%}) on the same {f['runs']} runs"
            )
    lines.append("PASS" if s.passed else "FAIL: " + "; ".join(s.failures))
    return lines


@app.command("validate")
def validate_command(
    csv_file: Path | None = typer.Argument(
        None, metavar="[CSV]", help="Published runs to backtest (default: the frozen held-out runs shipped with it)."
    ),
    fmt: Format = OutputFormat.table,
    output: Output = None,
    force: Force = False,
    profiles: Profiles = None,
    quiet: Quiet = False,
    plot: Plot = None,
    all_runs: bool = typer.Option(
        False, "--all", help="Every shipped run, fitted and held out; gated on the held-out ones."
    ),
) -> None:
    """Backtest the estimator on published runs (default: the frozen holdout); exit 1 when the gate fails."""
    from flopcast.calibration.backtest import backtest
    from flopcast.calibration.runs import shipped_runs_paths

    if all_runs and csv_file is not None:
        from flopcast.errors import ConflictingOptions

        raise ConflictingOptions("a CSV together with --all", hint="give either your own CSV or --all")
    preflight_output(output, force)
    preflight_plot(plot, force)
    report = backtest(csv_file, profiles, paths=shipped_runs_paths() if all_runs else None)
    emit_text(render_validate(report, fmt), output, force, quiet)
    emit_plot(report, plot, force, quiet)
    if fmt in (OutputFormat.csv,):
        for line in _summary_lines(report):
            note(line, quiet)
    if not report.summary.passed:
        note("validate: gate failed: " + "; ".join(report.summary.failures), quiet=False)
        raise typer.Exit(1)


def render_validate(report, fmt: OutputFormat) -> str:
    """A ValidateReport as text in ``fmt`` (the command and `flopcast report` both use this)."""
    if fmt is OutputFormat.json:
        return report.to_json()
    if fmt is OutputFormat.csv:
        return col.to_csv(COLUMNS, report.rows)
    if fmt is OutputFormat.markdown:
        return col.to_markdown(COLUMNS, report.rows) + "\n" + "\n".join(f"- {line}" for line in _summary_lines(report))
    from rich.table import Table

    from flopcast.cli.common import render_to_text

    table = Table(title=f"Backtest on {len(report.rows)} published runs", title_justify="left")
    for h in TABLE_HEADERS:
        left = h in ("run", "target", "hardware", "trust", "split")
        table.add_column(h, justify="left" if left else "right", no_wrap=True)
    for row in col.cells(TABLE_COLUMNS, report.rows):
        table.add_row(*row)
    text = render_to_text([table]) + "\n".join(_summary_lines(report))
    return text + "\n(the layout used for each run: --format csv or json)"
