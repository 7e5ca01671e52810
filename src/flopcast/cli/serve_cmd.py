"""`flopcast serve`: memory, latency, throughput and cost of serving a model, at 16/8/4-bit weights."""

from __future__ import annotations

import typer

from flopcast.cli._app import app
from flopcast.cli.common import OutputFormat, emit_text, note, preflight_output, render_to_text
from flopcast.cli.options import (
    ActiveExperts,
    DevicesToFit,
    DModel,
    Experts,
    Ffn,
    Force,
    Format,
    GatedFfn,
    Hardware,
    HeadDim,
    Heads,
    KvHeads,
    Layers,
    Model,
    Output,
    PricePerHourUnlessTier,
    PriceTier,
    Profiles,
    Quiet,
    SeqLen,
    TiedEmbeddings,
    Vocab,
)


@app.command("serve")
def serve(
    model: Model = None,
    hardware: Hardware = ...,
    devices: DevicesToFit = None,
    weights: str = typer.Option("16", "--weights", help="Weight bits: 16, 8 or 4 (weight-only quantization)."),
    kv_bits: str = typer.Option("16", "--kv-bits", help="KV-cache bits: 16 or 8."),
    batch: str = typer.Option("1", "--batch", help="Concurrent sequences decoded together."),
    prompt_tokens: str = typer.Option("512", "--prompt-tokens", help="Prompt (input) tokens per request."),
    output_tokens: str = typer.Option("256", "--output-tokens", help="Generated (output) tokens per request."),
    price_tier: PriceTier = None,
    price_per_hour: PricePerHourUnlessTier = None,
    matmul_efficiency: str | None = typer.Option(
        None, "--matmul-efficiency", help="Fraction of peak FLOP/s matmuls reach (default: profile or 0.5)."
    ),
    bandwidth_efficiency: str | None = typer.Option(
        None, "--bandwidth-efficiency", help="Share of datasheet bandwidth reached (default 0.63; 1 for bench)."
    ),
    layers: Layers = None,
    d_model: DModel = None,
    heads: Heads = None,
    kv_heads: KvHeads = None,
    head_dim: HeadDim = None,
    ffn: Ffn = None,
    gated_ffn: GatedFfn = None,
    vocab: Vocab = None,
    seq_len: SeqLen = None,
    tied_embeddings: TiedEmbeddings = None,
    experts: Experts = None,
    active_experts: ActiveExperts = None,
    fmt: Format = OutputFormat.table,
    output: Output = None,
    force: Force = False,
    profiles: Profiles = None,
    quiet: Quiet = False,
) -> None:
    """Deployment estimate: memory and fit, time to first token, decode tokens/s, cost per 1M output tokens.

    Shows 16-, 8- and 4-bit weights side by side (the chosen --weights marked *). When --devices is too small
    the report says so and how many devices would fit (exit 0); a model that fits on no number of devices is
    an error (exit 2).
    """
    from flopcast.hardware import load_catalog
    from flopcast.models import resolve_model
    from flopcast.serving import ServeRequest, estimate_serving
    from flopcast.units import parse_int, parse_usd

    preflight_output(output, force)
    request = ServeRequest(
        weights_bits=parse_int(weights, what="--weights"),
        kv_bits=parse_int(kv_bits, what="--kv-bits"),
        batch=parse_int(batch, what="--batch"),
        prompt_tokens=parse_int(prompt_tokens, what="--prompt-tokens"),
        output_tokens=parse_int(output_tokens, what="--output-tokens"),
        devices=None if devices is None else parse_int(devices, what="--devices"),
        price_tier=None if price_tier is None else price_tier.strip().lower(),
        price_per_hour_usd=None if price_per_hour is None else parse_usd(price_per_hour, what="--price-per-hour"),
        matmul_efficiency=_fraction(matmul_efficiency, "--matmul-efficiency"),
        bandwidth_efficiency=_fraction(bandwidth_efficiency, "--bandwidth-efficiency"),
    )
    arch = {
        "layers": layers,
        "d_model": d_model,
        "heads": heads,
        "kv_heads": kv_heads,
        "head_dim": head_dim,
        "ffn": ffn,
        "vocab": vocab,
        "seq_len": seq_len,
        "experts": experts,
        "active_experts": active_experts,
    }
    flags = {k: parse_int(v, what="--" + k.replace("_", "-")) for k, v in arch.items() if v is not None}
    if gated_ffn is not None:
        flags["gated_ffn"] = gated_ffn
    if tied_embeddings is not None:
        flags["tied_embeddings"] = tied_embeddings
    spec = resolve_model(model, **flags)
    profile = load_catalog(profiles).get(hardware)
    report = estimate_serving(spec, profile, request)
    for line in report.warnings:
        note(f"warning: {line}", quiet or fmt is OutputFormat.json)
    emit_text(_render(report, fmt), output, force, quiet)


def _fraction(text: str | None, what: str) -> float | None:
    if text is None:
        return None
    from flopcast.units import parse_count

    return parse_count(text, what=what)


def _render(report, fmt: OutputFormat) -> str:
    if fmt is OutputFormat.json:
        return report.to_json()
    from flopcast.reports.serve import table_rows, title

    if fmt is OutputFormat.csv:
        from flopcast.tabular import to_csv

        headers, rows = table_rows(report)
        return to_csv(headers, rows)
    notes = [f"warning: {w}" for w in report.warnings] + [f"assumes {a}" for a in report.assumptions]
    if report.cost.note:
        notes.append(report.cost.note)
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
