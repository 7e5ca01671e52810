"""`flopcast bench`: measure this machine with the gradient-descent kernel and check our own predictions."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from flopcast.cli._app import app
from flopcast.cli.common import (
    OutputFormat,
    emit_plot,
    emit_text,
    note,
    output_width,
    preflight_output,
    preflight_plot,
    render_to_text,
)
from flopcast.cli.options import (
    ForceOutputOrProfile,
    Format,
    GradDtype,
    Hardware,
    Model,
    Output,
    Plot,
    Precision,
    Profiles,
    Quiet,
    SaveProfile,
)


@app.command("bench")
def bench(
    quick: bool = typer.Option(False, "--quick", help="A short run (≤ 15 s on a 2-core machine): fewer points."),
    dtype: str | None = typer.Option(
        None,
        "--dtype",
        metavar="DTYPES",
        help="Comma-separated dtypes: float64,float32 (CPU); bfloat16,float16,float32 (cuda).",
    ),
    threads: str | None = typer.Option(
        None, "--threads", metavar="N", help="Limit the BLAS thread pool to N threads (CPU)."
    ),
    device: str = typer.Option(
        "cpu", "--device", metavar="cpu|cuda", help='cpu, or cuda (needs PyTorch: pip install "flopcast[gpu]").'
    ),
    size: str | None = typer.Option(
        None,
        "--size",
        metavar="SIZE",
        help="Size of X at the memory-bound points, e.g. 256MiB (default: several caches).",
    ),
    verify: bool = typer.Option(
        True, "--verify/--no-verify", help="Train a real model and compare its predicted and measured time."
    ),
    verify_train: bool = typer.Option(
        False,
        "--verify-train",
        help="Train a PyTorch transformer (--model, scaled to this device) under every recompute mode and compare "
        "its measured peak memory and step time with flopcast's prediction (needs flopcast[torch]).",
    ),  # fmt: skip
    model: Model = None,
    verify_scale: str | None = typer.Option(
        None, "--verify-scale", metavar="N", help="--verify-train: divide the width by N (default: the smallest fit)."
    ),
    precision: Precision = None,
    grad_dtype: GradDtype = None,
    hardware: Hardware = None,
    profiles: Profiles = None,
    save_profile: SaveProfile = None,
    verify_serve: bool = typer.Option(
        False,
        "--verify-serve",
        help="Instead: decode a small Llama-style model in PyTorch here and compare `serve`'s predicted tokens/s "
        'and time to first token with the measured ones (needs pip install "flopcast[torch]").',
    ),
    collectives: bool = typer.Option(
        False,
        "--collectives",
        help="Instead: time all-reduce, all-gather, reduce-scatter, all-to-all and send/recv through "
        "torch.distributed (Gloo on CPUs, NCCL with --device cuda) under torchrun or with --nproc, and fit a latency "
        'and bus bandwidth per collective (needs pip install "flopcast[torch]").',
    ),
    nproc: str | None = typer.Option(
        None, "--nproc", metavar="N", help="--collectives: start N local processes (≥ 2) instead of torchrun."
    ),
    max_bytes: str | None = typer.Option(
        None,
        "--max-bytes",
        metavar="SIZE",
        help="--collectives: the largest message, e.g. 64MiB (default 256MiB; 4MiB with --quick).",
    ),
    fmt: Format = OutputFormat.table,
    output: Output = None,
    force: ForceOutputOrProfile = False,
    quiet: Quiet = False,
    plot: Plot = None,
    size_scale: str = typer.Option("1", "--size-scale", hidden=True, help="Tests only: shrink every size."),
    fail_rank: str | None = typer.Option(
        None, "--fail-rank", hidden=True, help="Tests only: --collectives rank N fails mid-run."
    ),
) -> None:
    """Measure this machine: roofline (peak FLOP/s per dtype, bandwidth), GEMM check, predicted vs real training."""
    from flopcast.bench import plan
    from flopcast.errors import ConflictingOptions, Interrupted
    from flopcast.units import parse_bytes, parse_count, parse_int

    n_threads = parse_int(threads, what="--threads") if threads is not None else None
    dev = plan.parse_device(device)
    if collectives:  # torch.distributed collectives: flopcast.cli.bench_collectives_view
        from flopcast.cli.bench_collectives_view import run_collectives_cli

        _refuse_with_collectives(
            ("--verify-train", verify_train or None), ("--verify-serve", verify_serve or None), ("--dtype", dtype),
            ("--threads", threads), ("--size", size), ("--plot", plot), ("--model", model),
            ("--verify-scale", verify_scale), ("--precision", precision), ("--grad-dtype", grad_dtype),
        )  # fmt: skip
        run_collectives_cli(
            nproc=nproc, max_bytes=max_bytes, quick=quick, device=dev, hardware=hardware, profiles=profiles,
            save_profile=save_profile, fail_rank=fail_rank, fmt=fmt, output=output, force=force, quiet=quiet,
        )  # fmt: skip
        return
    for flag, value in (("--nproc", nproc), ("--max-bytes", max_bytes), ("--fail-rank", fail_rank)):
        if value is not None:
            raise ConflictingOptions(f"{flag} applies to --collectives only", hint=f"add --collectives or drop {flag}")
    if verify_train:  # the PyTorch transformer verify: flopcast.cli.bench_train_view
        from flopcast.cli.bench_train_view import run_train_verify

        preflight_output(output, force)
        scale_n = parse_int(verify_scale, what="--verify-scale") if verify_scale is not None else None
        run_train_verify(
            model=model, device=dev, precision=precision, grad_dtype=grad_dtype, hardware=hardware,
            profiles=profiles, scale=scale_n, steps=2 if quick else 3, fmt=fmt, output=output, force=force,
            quiet=quiet,
        )  # fmt: skip
        return
    if verify_serve:
        return _verify_serve(dev, quick, dtype, n_threads, size, save_profile, plot, size_scale, fmt, output, force,
                             quiet)  # fmt: skip
    dtypes = plan.parse_dtypes(dtype, dev)
    size_bytes = parse_bytes(size, what="--size") if size is not None else None
    scale = parse_count(size_scale, what="--size-scale")
    if dev == "cuda" and n_threads is not None:
        raise ConflictingOptions(
            "--threads limits the CPU BLAS; it has no effect with --device cuda", hint="drop --threads"
        )
    preflight_output(output, force)
    preflight_plot(plot, force)
    profile_target = None
    if save_profile is not None:
        from flopcast.bench.profile import check_profile_target

        profile_target = check_profile_target(save_profile, force)
    ops = _backend(dev)
    with ops.session(n_threads):
        machine = ops.describe(n_threads)
        config = plan.make_config(
            device=dev, quick=quick, dtypes=dtypes, cache_bytes=machine.cache_bytes or 0.0, size_bytes=size_bytes,
            verify=verify, threads=n_threads, size_scale=scale,
        )  # fmt: skip
        config = plan.fit_to_memory(config, machine.memory_available_bytes, size_given=size_bytes is not None)
        report = _run_with_progress(config, ops, machine, quiet)
    usable = machine.cores_usable or machine.cores_logical
    if n_threads is not None and usable and n_threads > usable:
        report.warnings.append(f"--threads {n_threads} is more than the {usable} usable cores")
    if report.partial:
        # what was measured is kept, marked partial (JSON "partial": true, the table's title says PARTIAL), on
        # stdout or atomically in --output; a profile is never saved from a partial run
        done = len(report.points)
        if done:
            _emit(report, fmt, output, force, quiet=True)
        what = f"partial result written to {output}" if output is not None else "partial result printed"
        if not done:
            what = "nothing measured yet, nothing written"
        skipped = "; profile not saved" if save_profile else ""
        raise Interrupted(f"interrupted after {done} of {len(config.ks) * len(config.dtypes)} points ({what}{skipped})")
    if profile_target is not None:
        from flopcast.bench.profile import build_profile
        from flopcast.bench.profile import save_profile as write_profile

        path = write_profile(build_profile(report, save_profile), profile_target)
        report.saved_profile = str(path)
        note(f"saved profile {save_profile!r} to {path} (use --hardware {save_profile})", quiet)
    for warning in report.warnings:
        # warnings are part of the report: a table on stdout shows them and JSON holds them in "warnings" (and
        # prints nothing else, README "Reports you can share"); CSV, Markdown or a table in a file: stderr too
        in_report = fmt is OutputFormat.json or (fmt is OutputFormat.table and output is None)
        note(f"warning: {warning}", quiet or in_report)
    _emit(report, fmt, output, force, quiet)
    emit_plot(report, plot, force, quiet)


def _refuse_with_collectives(*given: tuple[str, object]) -> None:
    from flopcast.errors import ConflictingOptions

    for flag, value in given:
        if value is not None:
            raise ConflictingOptions(f"{flag} does not apply to --collectives", hint=f"drop {flag}")


def _verify_serve(dev, quick, dtype, n_threads, size, save_profile, plot, size_scale, fmt, output, force, quiet):
    from flopcast.bench.verify_serve import run_verify_serve
    from flopcast.errors import ConflictingOptions
    from flopcast.units import parse_count

    for flag, value in (("--dtype", dtype), ("--threads", n_threads), ("--size", size),
                        ("--save-profile", save_profile), ("--plot", plot)):  # fmt: skip
        if value is not None:
            what = f"{flag} applies to the roofline sweep, not to --verify-serve"
            raise ConflictingOptions(what, hint=f"drop {flag}")
    scale = parse_count(size_scale, what="--size-scale")
    preflight_output(output, force)
    if not quiet:
        note("bench --verify-serve: measuring this machine, then prefill and greedy decode in PyTorch ...", quiet)
    report = run_verify_serve(device=dev, quick=quick, scale=scale)
    emit_text(render_verify_serve(report, fmt), output, force, quiet)


def render_verify_serve(report, fmt: OutputFormat) -> str:
    """A VerifyServeReport as text in ``fmt``."""
    from flopcast.reports.verify_serve import rows, title

    if fmt is OutputFormat.json:
        return report.to_json()
    headers, body = rows(report)
    if fmt is OutputFormat.csv:
        from flopcast.tabular import to_csv

        return to_csv(headers, body)
    notes = [f"warning: {w}" for w in report.warnings]
    if fmt is OutputFormat.markdown:
        from flopcast.tabular import to_markdown

        head, rest = title(report).split("\n", 1)
        return "\n".join([f"## {head}", "", rest, "", to_markdown(headers, body), *notes]) + "\n"
    from rich.table import Table
    from rich.text import Text

    table = Table(title="Predicted (flopcast serve) vs measured (PyTorch, this machine)", title_justify="left")
    for i, h in enumerate(headers):
        table.add_column(h, justify="left" if i == 0 else "right")
    for r in body:
        table.add_row(*r)
    return render_to_text([Text(title(report)), table, *(Text(n) for n in notes)])


def _backend(device: str):
    if device == "cuda":
        from flopcast.bench.gpu import load_cuda_backend

        return load_cuda_backend()
    from flopcast.bench.kernel import NumpyOps

    return NumpyOps()


def _run_with_progress(config, ops, machine, quiet: bool):
    from flopcast.bench.run import run_bench

    if quiet or not sys.stderr.isatty():
        return run_bench(config, ops, machine)
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from flopcast.cli.common import console

    with Progress(
        TextColumn("bench"), BarColumn(), TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
        TextColumn("{task.description}"), console=console(stderr=True), transient=True,
    ) as progress:  # fmt: skip
        task = progress.add_task("starting", total=config.tasks())

        def update(label: str, done: int, total: int) -> None:
            progress.update(task, description=label, completed=done, total=total)

        return run_bench(config, ops, machine, progress=update)


def _emit(report, fmt: OutputFormat, output: Path | None, force: bool, quiet: bool = False) -> None:
    emit_text(render_bench(report, fmt), output, force, quiet)


def render_bench(report, fmt: OutputFormat) -> str:
    """A BenchReport as text in ``fmt`` (the command and `flopcast report` both use this)."""
    if fmt is OutputFormat.json:
        return report.to_json()
    if fmt is OutputFormat.csv:
        from flopcast.reports.bench import POINT_CSV_HEADERS, point_csv_rows
        from flopcast.tabular import to_csv

        return to_csv(POINT_CSV_HEADERS, point_csv_rows(report))
    if fmt is OutputFormat.markdown:
        return _markdown(report)
    return _table(report)


def _title(report) -> str:
    from flopcast.reports.bench import machine_line

    state = " — PARTIAL (interrupted)" if report.partial else ""
    return f"flopcast bench ({report.settings.mode}, {report.elapsed_seconds:.1f} s){state}\n{machine_line(report)}"


def _verify_line(report) -> str:
    v = report.verify
    verdict = "within" if v.within_target else "OUTSIDE"
    return (
        f"Training predicted {v.predicted_seconds:.3g} s, measured {v.measured_seconds:.3g} s: error {v.error:+.1%} "
        f"({verdict} the ±{v.target_abs_error:.0%} target)"
    )


def _markdown(report) -> str:
    from flopcast.bench.chart import roofline_chart
    from flopcast.reports.bench import (
        POINT_HEADERS,
        ROOFLINE_HEADERS,
        VERIFY_HEADERS,
        point_rows,
        roofline_rows,
        verify_rows,
    )
    from flopcast.tabular import to_markdown

    heading, machine = _title(report).split("\n")
    parts = [f"## {heading}", "", machine, ""]
    if report.roofline is not None:
        parts += [
            to_markdown(ROOFLINE_HEADERS, roofline_rows(report), title="Roofline"),
            "```",
            roofline_chart(report.points, report.roofline),
            "```",
            "",
        ]
    parts.append(to_markdown(POINT_HEADERS, point_rows(report), title="Points (median of repeats)"))
    if report.verify is not None:
        parts += [
            to_markdown(VERIFY_HEADERS, verify_rows(report), title="Closing the loop: GD training"),
            _verify_line(report),
            "",
        ]
    parts += [f"- warning: {w}" for w in report.warnings]
    return "\n".join(parts)


def _table(report) -> str:
    from rich.table import Table
    from rich.text import Text

    from flopcast.bench.chart import roofline_chart
    from flopcast.reports.bench import (
        POINT_HEADERS,
        ROOFLINE_HEADERS,
        VERIFY_HEADERS,
        point_rows,
        roofline_rows,
        verify_rows,
    )

    def table(title: str, headers: list[str], rows: list[list[str]]) -> Table:
        t = Table(title=title, title_justify="left")
        for i, h in enumerate(headers):
            t.add_column(h, justify="left" if i == 0 else "right")
        for r in rows:
            t.add_row(*r)
        return t

    items: list = [Text(_title(report))]
    if report.roofline is not None:
        items += [
            table("Roofline (fitted)", ROOFLINE_HEADERS, roofline_rows(report)),
            # the chart is about width + 14 columns: as wide as the table output, at most 60 plot columns
            Text(roofline_chart(report.points, report.roofline, width=max(24, min(60, output_width() - 16)))),
        ]
    items.append(table("Points (median of repeats)", POINT_HEADERS, point_rows(report)))
    if report.verify is not None:
        items += [
            table("Closing the loop: GD training", VERIFY_HEADERS, verify_rows(report)),
            Text(_verify_line(report)),
        ]
    items += [Text(f"warning: {w}") for w in report.warnings]
    return render_to_text(items)
