"""`flopcast bench --collectives`: time collectives through torch.distributed, render the report, save a profile.

Under torchrun every rank runs this; only rank 0 checks the output options, shows progress, prints and writes.
"""

from __future__ import annotations

import sys

from flopcast.cli.common import OutputFormat, emit_text, note, render_to_text


def run_collectives_cli(
    *, nproc, max_bytes, quick, device, hardware, profiles, save_profile, fail_rank, fmt, output, force, quiet
) -> None:
    """Check every option, measure, then (rank 0) print or write the report and save the profile."""
    from flopcast.bench.collectives import CollectivesConfig
    from flopcast.bench.collectives_launch import check_gpus, check_launch, check_memory
    from flopcast.bench.collectives_run import require_torch
    from flopcast.cli.common import preflight_output
    from flopcast.units import parse_bytes, parse_int

    n = parse_int(nproc, what="--nproc") if nproc is not None else None
    top = parse_bytes(max_bytes, what="--max-bytes") if max_bytes is not None else None
    fail = parse_int(fail_rank, what="--fail-rank", allow_zero=True) if fail_rank is not None else None
    launched = check_launch(n)
    require_torch()  # one line and exit 1 without PyTorch, before anything is printed or started
    rank = launched[0] if launched is not None else 0
    config = CollectivesConfig.make(quick=quick, max_bytes=top, device=device, fail_rank=fail)
    target = base = None
    if rank == 0:
        preflight_output(output, force)
        if n is not None:
            from flopcast.bench.machine import available_memory_bytes

            check_memory(config, n, available_memory_bytes())
            if config.device == "cuda":
                check_gpus(n)
        if save_profile is not None:
            from flopcast.bench.collectives_profile import plan_profile

            target, base = plan_profile(save_profile, hardware, profiles, force)
        elif hardware is not None:
            from flopcast.request import resolve_hardware

            resolve_hardware(hardware, profiles)  # an unknown id fails before anything runs
        where = f"{n} local processes" if n is not None else f"{launched[1]} ranks (torchrun)"
        note(f"bench --collectives: {config.backend} over {where} ...", quiet or fmt is OutputFormat.json)
    report = _run_with_progress(config, n, quiet or rank != 0)
    if report is None:  # a torchrun rank other than 0: rank 0 reports
        return
    if target is not None:
        from flopcast.bench.collectives_profile import build_collectives_profile
        from flopcast.bench.profile import save_profile as write_profile

        path = write_profile(build_collectives_profile(report, base, save_profile), target)
        report.saved_profile = str(path)
        note(f"saved profile {save_profile!r} to {path} (use --hardware {save_profile})", quiet)
    for warning in report.warnings:
        in_report = fmt is OutputFormat.json or (fmt is OutputFormat.table and output is None)
        note(f"warning: {warning}", quiet or in_report)
    emit_text(render_collectives(report, fmt), output, force, quiet)


def _run_with_progress(config, nproc, quiet: bool):
    from flopcast.bench.collectives_launch import run_collectives

    if quiet or not sys.stderr.isatty():
        return run_collectives(config, nproc=nproc)
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from flopcast.cli.common import console

    with Progress(
        TextColumn("collectives"), BarColumn(), TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
        TextColumn("{task.description}"), console=console(stderr=True), transient=True,
    ) as progress:  # fmt: skip
        task = progress.add_task("starting processes", total=None)

        def update(label: str, done: int, total: int) -> None:
            progress.update(task, description=label, completed=done, total=total)

        return run_collectives(config, nproc=nproc, progress=update)


def render_collectives(report, fmt: OutputFormat) -> str:
    """A CollectivesReport as text in ``fmt`` (the command and `flopcast report` both use this)."""
    from flopcast.reports.bench_collectives import (
        FIT_HEADERS,
        POINT_CSV_HEADERS,
        POINT_HEADERS,
        fit_rows,
        point_csv_rows,
        point_rows,
        title,
    )

    if fmt is OutputFormat.json:
        return report.to_json()
    if fmt is OutputFormat.csv:
        from flopcast.tabular import to_csv

        return to_csv(POINT_CSV_HEADERS, point_csv_rows(report))
    notes = [f"warning: {w}" for w in report.warnings]
    if report.saved_profile:
        notes.append(f"saved profile: {report.saved_profile}")
    fit_title = "Fit: t = latency + bus factor × size / bus bandwidth"
    if fmt is OutputFormat.markdown:
        from flopcast.tabular import to_markdown

        head, rest = title(report).split("\n", 1)
        return "\n".join([
            f"## {head}", "", rest, "", to_markdown(FIT_HEADERS, fit_rows(report), title=fit_title),
            to_markdown(POINT_HEADERS, point_rows(report), title="Points"), *(f"- {n}" for n in notes),
        ]) + "\n"  # fmt: skip
    from rich.table import Table
    from rich.text import Text

    def table(name: str, headers: list[str], rows: list[list[str]]) -> Table:
        t = Table(title=name, title_justify="left")
        for i, h in enumerate(headers):
            t.add_column(h, justify="left" if i == 0 else "right")
        for r in rows:
            t.add_row(*r)
        return t

    return render_to_text([
        Text(title(report)), table(fit_title, FIT_HEADERS, fit_rows(report)),
        table("Points (median of repeats, slowest rank)", POINT_HEADERS, point_rows(report)),
        *(Text(n) for n in notes),
    ])  # fmt: skip
