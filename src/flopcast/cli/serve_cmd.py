"""`flopcast serve`: memory, latency, throughput and cost of serving a model, at 16/8/4-bit weights."""

from __future__ import annotations

import typer

from flopcast.cli._app import app
from flopcast.cli.common import OutputFormat, emit_text, note, preflight_output, render_to_text
from flopcast.cli.options import (
    DEFAULT_HARDWARE,
    DevicesToFit,
    Force,
    Format,
    Model,
    Output,
    PricePerHour,
    PriceTier,
    Profiles,
    Quiet,
    SeqLen,
    ServeHardware,
    ServeMaxDevices,
    Storage,
    complete_kv_bits,
    complete_runtime,
    complete_weight_bits,
    with_architecture_options,
)


@app.command("serve")
@with_architecture_options
def serve(
    model: Model = None,
    hardware: ServeHardware = None,
    devices: DevicesToFit = None,
    weights: str | None = typer.Option(
        None,
        "--weights",
        help="Weight bits: 16 (default), 8 or 4 (weight-only quantization); with --plan, the formats to search, "
        "comma-separated (default: every one the runtime has).",
        autocompletion=complete_weight_bits,
        show_default=False,
    ),
    compute: str | None = typer.Option(
        None,
        "--compute",
        metavar="bf16|fp8|fp4",
        help="Format of the linear GEMMs: bf16 (default; 8/4-bit weights dequantise to it), fp8 (W8A8 at the "
        "profile's fp8 peak: Hopper, Ada, MI300; --weights defaults to 8) or fp4 (W4A4 where the profile lists an "
        "fp4 peak: Blackwell, MI355X; --weights 4). Attention core and LM head stay 16-bit. With --plan, the "
        "formats to search, comma-separated (default: bf16 and every low-bit one the hardware and runtime have).",
        show_default=False,
    ),
    kv_bits: str = typer.Option("16", "--kv-bits", help="KV-cache bits: 16 or 8.", autocompletion=complete_kv_bits),
    runtime: str | None = typer.Option(
        None,
        "--runtime",
        metavar="NAME",
        help="Serving runtime: vllm, sglang, tensorrt-llm, llama.cpp, cuda-graph or eager (its kernels' bandwidth "
        "and per-forward cost; default vllm on GPU/TPU, llama.cpp on CPU and Apple GPUs).",
        autocompletion=complete_runtime,
        show_default=False,
    ),
    batch: str = typer.Option("1", "--batch", help="Concurrent sequences decoded together."),
    prompt_tokens: str = typer.Option("512", "--prompt-tokens", help="Prompt (input) tokens per request."),
    output_tokens: str = typer.Option("256", "--output-tokens", help="Generated (output) tokens per request."),
    request_rate: str | None = typer.Option(
        None,
        "--request-rate",
        metavar="R",
        help="Requests per second arriving (Poisson): the continuous-batching steady state, TTFT and time per "
        "output token P50/P90, throughput and cost at that load.",
        show_default=False,
    ),
    chunked_prefill: str | None = typer.Option(
        None,
        "--chunked-prefill",
        metavar="TOKENS",
        help="With --request-rate: chunked prefill (Sarathi-Serve; vLLM max_num_batched_tokens) with this token "
        "budget per step: decodes first, prompt chunks fill the rest, so a prompt stalls decodes by one chunk, not "
        "its whole prefill (default: off, prefill first).",
        show_default=False,
    ),
    prompt_dist: str | None = typer.Option(
        None,
        "--prompt-dist",
        metavar="fixed|exponential|uniform",
        help="With --request-rate: prompt lengths, mean --prompt-tokens (default fixed); the prompt queue becomes "
        "M/G/1 (Pollaczek–Khinchine).",
        show_default=False,
    ),
    output_dist: str | None = typer.Option(
        None,
        "--output-dist",
        metavar="fixed|exponential|uniform",
        help="With --request-rate: output lengths, mean --output-tokens (default fixed).",
        show_default=False,
    ),
    plan: bool = typer.Option(
        False,
        "--plan",
        help="Instead: search hardware × weights × tensor parallel × replicas for the cheapest configuration that "
        "meets --ttft and/or --tpot (one at least) at --request-rate (needed); Pareto of cost vs TTFT; exit 3 with "
        "the nearest misses.",
    ),
    ttft: str | None = typer.Option(
        None,
        "--ttft",
        metavar="LATENCY",
        help="With --plan: time-to-first-token target, e.g. 500ms.",
        show_default=False,
    ),
    tpot: str | None = typer.Option(
        None,
        "--tpot",
        metavar="LATENCY",
        help="With --plan: time-per-output-token target, e.g. 50ms.",
        show_default=False,
    ),
    percentile: str | None = typer.Option(
        None,
        "--percentile",
        metavar="p50|p90",
        help="With --plan: meet the targets at this percentile of each latency under load: p50 or p90 (also 50, "
        "90; default p90).",
        show_default=False,
    ),
    max_devices: ServeMaxDevices = None,
    price_tier: PriceTier = None,
    price_per_hour: PricePerHour = None,
    matmul_efficiency: str | None = typer.Option(
        None, "--matmul-efficiency", help="Fraction of peak FLOP/s matmuls reach (default: the fitted GEMM curve)."
    ),
    bandwidth_efficiency: str | None = typer.Option(
        None,
        "--bandwidth-efficiency",
        help="Share of the profile's bandwidth decode reaches (default: the runtime's, per weight format).",
    ),
    architecture: dict = None,  # one option per architecture field: cli.options.with_architecture_options
    seq_len: SeqLen = None,
    storage: Storage = None,
    fmt: Format = OutputFormat.table,
    output: Output = None,
    force: Force = False,
    profiles: Profiles = None,
    quiet: Quiet = False,
) -> None:
    """Deployment estimate: memory and fit, time to first token, decode tokens/s, cost per 1M output tokens.

    Shows 16-, 8- and 4-bit weights side by side (those the --runtime has kernels for; the chosen --weights
    marked *). When --devices is too small
    the report says so and how many devices would fit (exit 0); a model that fits on no number of devices is
    an error (exit 2).
    """
    from flopcast.api import serve as serve_model

    preflight_output(output, force)
    if plan:
        _check_plan_flags(devices=devices, storage=storage, batch=batch)
        _not_planned(chunked_prefill=chunked_prefill, prompt_dist=prompt_dist, output_dist=output_dist)
        _plan(model=model, hardware=hardware, weights=weights, compute=compute, kv_bits=kv_bits,
              prompt_tokens=prompt_tokens,
              output_tokens=output_tokens, price_tier=price_tier, price_per_hour=price_per_hour,
              matmul_efficiency=matmul_efficiency, bandwidth_efficiency=bandwidth_efficiency, runtime=runtime,
              request_rate=request_rate, ttft=ttft, tpot=tpot, percentile=percentile, max_devices=max_devices,
              seq_len=seq_len, profiles=profiles, architecture=architecture, fmt=fmt, output=output, force=force,
              quiet=quiet)  # fmt: skip
        return
    _check_plan_flags(ttft=ttft, tpot=tpot, percentile=percentile, max_devices=max_devices, plan=False)
    if hardware is not None and "," in hardware:
        from flopcast.errors import InvalidValue

        raise InvalidValue(f"--hardware {hardware}: serve takes one profile", hint="add --plan to search several")
    report = serve_model(
        model=model, hardware=hardware or DEFAULT_HARDWARE, devices=devices, weights=weights, compute=compute,
        kv_bits=kv_bits, batch=batch,
        prompt_tokens=prompt_tokens, output_tokens=output_tokens, price_tier=price_tier, price_per_hour=price_per_hour,
        matmul_efficiency=matmul_efficiency, bandwidth_efficiency=bandwidth_efficiency, runtime=runtime,
        request_rate=request_rate, chunked_prefill=chunked_prefill, prompt_dist=prompt_dist, output_dist=output_dist,
        seq_len=seq_len, profiles=profiles, storage=storage, **architecture,
    )  # fmt: skip
    for line in report.warnings:
        note(f"warning: {line}", quiet or fmt is OutputFormat.json)
    emit_text(_render(report, fmt), output, force, quiet)


def _check_plan_flags(plan: bool = True, **given) -> None:
    """Flags that belong with --plan only, or that --plan decides itself (ConflictingOptions, exit 2)."""
    from flopcast.errors import ConflictingOptions

    for name, value in given.items():
        if value is None or (name == "batch" and value == "1"):
            continue
        flag = "--" + name.replace("_", "-")
        if plan:
            raise ConflictingOptions(f"{flag} with --plan: the plan chooses it (the batch forms from the rate)"
                                     if name == "batch" else f"{flag} with --plan: the plan chooses it",
                                     hint=f"drop {flag}" + (" (--max-devices bounds the search)"
                                                            if name == "devices" else ""))  # fmt: skip
        raise ConflictingOptions(f"{flag} is for --plan", hint=f"add --plan, or drop {flag}")


def _not_planned(**given) -> None:
    """Serving options `serve --plan` does not search yet (ConflictingOptions, exit 2)."""
    from flopcast.errors import ConflictingOptions

    for name, value in given.items():
        if value is not None:
            flag = "--" + name.replace("_", "-")
            raise ConflictingOptions(
                f"{flag} with --plan: the plan does not model it yet",
                hint=f"drop {flag}, or run `serve` without --plan on one configuration",
            )


def _plan(*, architecture, fmt, output, force, quiet, **options) -> None:
    """`serve --plan`: write the report, then exit 3 with the nearest misses when none meets the targets."""
    from flopcast.api import serve_plan
    from flopcast.cli.serve_plan_view import render_serve_plan
    from flopcast.errors import Infeasible

    report = serve_plan(**options, **architecture)
    emit_text(render_serve_plan(report, fmt), output, force, quiet)
    if not report.feasible:
        misses = [f"{p.devices} × {p.hardware} {p.weights_bits}-bit: {p.miss}" for p in report.near_misses]
        raise Infeasible(
            report.infeasible_reason or "no feasible configuration",
            hint="loosen --ttft/--tpot, lower --request-rate, raise --max-devices or add hardware"
            + (f"; nearest: {misses[0]}" if misses else ""),
            near_misses=misses,
        )


def _render(report, fmt: OutputFormat) -> str:
    if fmt is OutputFormat.json:
        return report.to_json()
    from flopcast.reports.serve_table import table_rows, title

    if fmt is OutputFormat.csv:
        from flopcast.tabular import to_csv

        headers, rows = table_rows(report)
        return to_csv(headers, rows)
    notes = [f"warning: {w}" for w in report.warnings] + [f"assumes {a}" for a in report.assumptions]
    if report.cost.note:
        notes.append(report.cost.note)
    if report.weights_load is not None:
        from flopcast.units import format_duration

        wl = report.weights_load
        notes.append(
            f"start-up: {wl.weights_bytes / 1e9:,.1f} GB of weights load from {wl.tier} in "
            f"{format_duration(wl.load_seconds)} ({wl.nodes} node(s) reading in parallel)"
        )
    if fmt is OutputFormat.markdown:
        from flopcast.tabular import to_markdown

        headers, rows = table_rows(report)
        return to_markdown(headers, rows, title=title(report)) + "\n" + "\n".join(f"- {n}" for n in notes) + "\n"
    from rich.table import Table
    from rich.text import Text

    headers, rows = table_rows(report, marker=" *")
    table = Table(title=title(report), title_justify="left")
    table.add_column(headers[0], style="bold")
    for header, variant in zip(headers[1:], report.variants, strict=True):
        chosen = variant.weights_bits == report.weights_bits
        table.add_column(header, justify="right", style="bold reverse" if chosen else None)
    for row in rows:
        table.add_row(*row)
    return render_to_text([table, *(Text(n) for n in notes)])


render_serve = _render  # the name `flopcast report` uses (flopcast.cli.report_cmd)
