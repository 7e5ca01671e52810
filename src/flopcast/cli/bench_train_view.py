"""`flopcast bench --verify-train`: run the PyTorch transformer verify and render its report."""

from __future__ import annotations

from flopcast.cli.common import OutputFormat, emit_text, note, render_to_text


def run_train_verify(
    *, model, device: str, precision, grad_dtype, hardware, profiles, scale, steps: int, fmt, output, force, quiet
) -> None:
    """Plan the scaled model, measure every recompute mode, print the report (exit 1 outside the target)."""
    import dataclasses
    import statistics

    from flopcast.bench.transformer import torch_available
    from flopcast.bench.verify_train import (
        TORCH_MISSING,
        VERIFY_TRAIN_TARGET_ABS_ERROR,
        run_verify_train,
        scaled_shape,
    )
    from flopcast.errors import FlopcastError
    from flopcast.reports.bench_train import TrainVerifyReport, TrainVerifyShape
    from flopcast.request import parse_grad_dtype, parse_precision, resolve_hardware, resolve_model

    if not torch_available():
        raise FlopcastError(TORCH_MISSING)
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        raise FlopcastError("--device cuda: PyTorch sees no CUDA device", hint="run with --device cpu")
    prec = parse_precision(precision or ("fp32" if device == "cpu" else "bf16"))
    grads = parse_grad_dtype(grad_dtype, prec) or ("fp32" if prec != "fp16" else "fp16")
    spec = resolve_model(model or "llama-3.2-1b")
    if hardware is not None:
        resolve_hardware(hardware, profiles)  # unknown ids fail before anything is measured
    free = _free_bytes(device)
    plan = scaled_shape(spec, device=device, free_bytes=free, precision=prec, grad_dtype=grads, scale=scale)
    note(f"verify-train: {spec.name} scaled 1/{plan.scale}, {len(_modes())} recompute modes on {device}", quiet)
    rows = run_verify_train(plan, device=device, steps=steps, hardware=hardware, profiles=profiles)
    errors = [abs(r.memory_error) for r in rows]
    s = plan.shape
    report = TrainVerifyReport(
        device=device,
        torch_version=torch.__version__,
        hardware=hardware,
        shape=TrainVerifyShape(
            model=spec.name,
            scale=plan.scale,
            **dataclasses.asdict(s),
            micro_batch=plan.micro_batch,
            precision=prec,
            grad_dtype=grads,
        ),  # fmt: skip
        rows=rows,
        target_abs_error=VERIFY_TRAIN_TARGET_ABS_ERROR,
        within_target=max(errors) <= VERIFY_TRAIN_TARGET_ABS_ERROR,
        median_abs_memory_error=statistics.median(errors),
    )
    if hardware is None:
        report.warnings.append(
            "step time not predicted: give --hardware (e.g. a profile saved by `flopcast bench --save-profile`)"
        )
    emit_text(render_train_verify(report, fmt), output, force, quiet)


def _modes():
    from flopcast.bench.verify_train import RECOMPUTE_MODES

    return RECOMPUTE_MODES


def _free_bytes(device: str) -> float | None:
    if device == "cuda":
        import torch

        free, _ = torch.cuda.mem_get_info()
        return float(free)
    from flopcast.bench.machine import available_memory_bytes

    return available_memory_bytes()


def render_train_verify(report, fmt: OutputFormat) -> str:
    """A TrainVerifyReport as text in ``fmt`` (the command and `flopcast report` both use this)."""
    from flopcast.reports.bench_train import (
        TRAIN_VERIFY_CSV_HEADERS,
        TRAIN_VERIFY_HEADERS,
        shape_line,
        train_verify_csv_rows,
        train_verify_rows,
        verdict_line,
    )

    if fmt is OutputFormat.json:
        return report.to_json()
    if fmt is OutputFormat.csv:
        from flopcast.tabular import to_csv

        return to_csv(TRAIN_VERIFY_CSV_HEADERS, train_verify_csv_rows(report))
    title = "Predict, then measure: PyTorch transformer training"
    if fmt is OutputFormat.markdown:
        from flopcast.tabular import to_markdown

        parts = [f"## {title}", "", shape_line(report), ""]
        parts += [to_markdown(TRAIN_VERIFY_HEADERS, train_verify_rows(report)), verdict_line(report)]
        return "\n".join(parts + [f"- warning: {w}" for w in report.warnings])
    from rich.table import Table
    from rich.text import Text

    t = Table(title=title, title_justify="left")
    for i, h in enumerate(TRAIN_VERIFY_HEADERS):
        t.add_column(h, justify="left" if i == 0 else "right")
    for row in train_verify_rows(report):
        t.add_row(*row)
    items = [Text(shape_line(report)), t, Text(verdict_line(report))]
    items += [Text(f"warning: {w}") for w in report.warnings]
    return render_to_text(items)
