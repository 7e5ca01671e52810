"""`flopcast estimate`: FLOPs, memory, time, cost and energy of one training job.

Every number is taken as a string and parsed by flopcast.units (``7B``, ``2T``, ``$2.5``). The work is
done by :func:`flopcast.api.estimate`; this module only parses flags and renders the report.
``--format json`` never imports rich.
"""

from __future__ import annotations

from typing import Annotated

import typer

from flopcast.cli._app import app
from flopcast.cli.common import OutputFormat, emit_plot, emit_text, note, preflight_output, preflight_plot
from flopcast.cli.options import (
    DEFAULT_HARDWARE,
    Devices,
    Epochs,
    Finetune,
    Force,
    Format,
    GradDtype,
    Hardware,
    KeepCheckpoints,
    LoraRank,
    LoraTargets,
    MemoryHeadroom,
    Model,
    Output,
    Plot,
    Precision,
    PricePerHour,
    PriceTier,
    Profiles,
    Quiet,
    SeqLen,
    Storage,
    Tokens,
    TransferGbps,
    with_architecture_options,
    with_layout_options,
)
from flopcast.layout import degrees_text
from flopcast.units import format_duration, format_si, format_usd

# estimate's own options (every shared one is in flopcast.cli.options)
Mfu = Annotated[
    str | None,
    typer.Option("--mfu", metavar="FRACTION", show_default=False,
                 help="Force the model-FLOPs utilisation (e.g. 0.45) instead of modelling it."),
]  # fmt: skip
Sweep = Annotated[
    str | None,
    typer.Option("--sweep", metavar="devices=LOW..HIGH", show_default=False,
                 help="Estimate at every power of two in a range instead of one --devices: devices=8..4096."),
]  # fmt: skip
TorchModel = Annotated[
    str | None,
    typer.Option("--torch-model", metavar="MODULE:FACTORY", show_default=False,
                 help="Any PyTorch model: a function returning an nn.Module, measured on the meta device "
                      "(parameters, forward FLOPs, activations; needs pip install 'flopcast[torch]')."),
]  # fmt: skip
Samples = Annotated[
    str | None,
    typer.Option("--samples", metavar="COUNT", show_default=False,
                 help="Training samples of a measured model (resnet-50, vit-b16, dlrm, --torch-model) in place "
                      "of --tokens; its --global-batch counts samples."),
]  # fmt: skip


@app.command("estimate")
@with_architecture_options
@with_layout_options
def estimate_command(
    model: Model = None,
    tokens: Tokens = None,
    samples: Samples = None,
    torch_model: TorchModel = None,
    hardware: Hardware = DEFAULT_HARDWARE,
    devices: Devices = None,
    architecture: dict = None,  # one option per architecture field: cli.options.with_architecture_options
    seq_len: SeqLen = None,
    layout: dict = None,  # one option per layout field: cli.options.with_layout_options
    precision: Precision = "bf16",
    memory_headroom: MemoryHeadroom = None,
    grad_dtype: GradDtype = None,
    finetune: Finetune = None,
    lora_rank: LoraRank = None,
    lora_targets: LoraTargets = None,
    epochs: Epochs = None,
    mfu: Mfu = None,
    price_tier: PriceTier = None,
    price_per_hour: PricePerHour = None,
    storage: Storage = None,
    keep_checkpoints: KeepCheckpoints = None,
    transfer_gbps: TransferGbps = None,
    fmt: Format = OutputFormat.table,
    output: Output = None,
    force: Force = False,
    profiles: Profiles = None,
    quiet: Quiet = False,
    sweep: Sweep = None,
    plot: Plot = None,
) -> None:
    """Estimate FLOPs, memory per device, step time, wall-clock, device-hours, cost and energy."""
    options = {k: v for k, v in locals().items() if k not in ("fmt", "output", "force", "quiet", "sweep", "plot")}
    options.update(options.pop("layout"))
    options.update(options.pop("architecture"))
    from flopcast.api import estimate

    preflight_output(output, force)
    preflight_plot(plot, force)
    if sweep is not None:  # one job at many device counts: flopcast.cli.sweep_view
        from flopcast.cli.sweep_view import run_sweep
        from flopcast.errors import ConflictingOptions

        storage_options = {k: options.pop(k) for k in ("storage", "keep_checkpoints", "transfer_gbps")}
        if any(v is not None for v in storage_options.values()):
            raise ConflictingOptions(
                "--sweep with storage options", hint="estimate one device count for the storage figures"
            )
        tuning = {k: options.pop(k) for k in ("finetune", "lora_rank", "lora_targets", "epochs")}
        if any(v is not None for v in tuning.values()):
            raise ConflictingOptions("--sweep with fine-tuning options", hint="estimate one device count at a time")
        if any(options.pop(k) is not None for k in ("samples", "torch_model")):
            raise ConflictingOptions("--sweep with a measured model", hint="estimate one device count at a time")

        run_sweep(sweep, options, fmt=fmt, output=output, force=force, plot=plot, quiet=quiet)
        return
    report = estimate(**options)
    emit_text(render_estimate(report, fmt), output, force, quiet)
    emit_plot(report, plot, force, quiet)
    if fmt in (OutputFormat.csv, OutputFormat.markdown):
        for warning in report.warnings:
            note(f"warning: {warning}", quiet)


def render_estimate(report, fmt: OutputFormat) -> str:
    """An EstimateReport as text in ``fmt`` (the command and `flopcast report` both use this)."""
    if fmt is OutputFormat.json:
        return report.to_json()
    if fmt in (OutputFormat.csv, OutputFormat.markdown):
        row = report.flat_row()
        headers, values = list(row), [["" if v is None else str(v) for v in row.values()]]
        if fmt is OutputFormat.csv:
            from flopcast.tabular import to_csv

            return to_csv(headers, values)
        from flopcast.tabular import to_markdown

        return to_markdown(headers, values)
    from flopcast.cli.common import render_to_text

    return render_to_text(estimate_tables(report))


# --- table rendering (rich is imported only here, so --format json never loads it) -----------------


def _gb(x: float) -> str:
    return f"{x / 1e9:,.1f} GB"


def _pct(part: float, whole: float) -> str:
    return f"{100 * part / whole:.1f}%" if whole > 0 else "—"


def _range(lo: str, hi: str) -> str:
    return f"P10–P90 {lo} – {hi}"


def _storage_table(st):
    """Checkpoints and the dataset on the --storage tier."""
    from rich.table import Table

    def secs(x):
        return "—" if x is None else format_duration(x)

    table = Table(title=f"Storage: {st.tier}", title_justify="left")
    table.add_column("item")
    table.add_column("value", justify="right")
    table.add_column("note", overflow="fold")
    table.add_row("checkpoint", _gb(st.checkpoint_bytes), f"{_gb(st.checkpoint_bytes_per_device)} per device; "
                  f"bf16 weights alone {_gb(st.weights_export_bytes)}")  # fmt: skip
    table.add_row("write / load", f"{secs(st.checkpoint_write_seconds)} / {secs(st.checkpoint_load_seconds)}",
                  "every rank writes its shard in parallel")  # fmt: skip
    share = "—" if st.checkpoint_share_of_wall_clock is None else f"{st.checkpoint_share_of_wall_clock:.1%}"
    table.add_row("interval", secs(st.checkpoint_interval_seconds),
                  f"Young/Daly sqrt(2·write·MTBF), MTBF {format_duration(st.mtbf_seconds)}; writes {share} of "
                  f"wall-clock (the estimate's allowance: {st.pinned_checkpoint_share:.1%})")  # fmt: skip
    table.add_row("dataset", _gb(st.dataset_bytes), f"{st.dataset_read_bytes_per_s / 1e6:,.1f} MB/s read; raw text "
                  f"~{_gb(st.raw_text_bytes)}")  # fmt: skip
    usd = "—" if st.storage_usd is None else format_usd(st.storage_usd)
    table.add_row("storage cost", usd, f"{_gb(st.stored_bytes or 0)} kept ({st.keep_checkpoints} checkpoints + "
                  "dataset) for the run")  # fmt: skip
    if st.egress_usd is not None or st.transfer_seconds is not None:
        egress = "—" if st.egress_usd is None else format_usd(st.egress_usd)
        table.add_row("egress", egress, "dataset + final checkpoint out" + (
            f"; {format_duration(st.transfer_seconds)} at --transfer-gbps" if st.transfer_seconds else ""))  # fmt: skip
    return table


def _finetune_table(r):
    """What a fine-tuning run trains and freezes (report.finetune)."""
    from rich.table import Table

    f = r.finetune
    table = Table(title=f"Fine-tuning: {f.mode}", title_justify="left")
    table.add_column("item")
    table.add_column("value", justify="right")
    table.add_column("note", overflow="fold")
    table.add_row("tokens", format_si(f.tokens_processed), f"{format_si(f.dataset_tokens)} × {f.epochs} epoch(s)")
    if f.lora_rank is not None:
        table.add_row("adapters", f"{format_si(f.trainable_params)} params",
                      f"rank {f.lora_rank} on {f.lora_targets} linear layers, {f.trainable_fraction:.2%} of the "
                      "model; r·(d_in + d_out) per matrix")  # fmt: skip
        bits = f"{f.base_weight_bits_per_param:.3f}-bit NF4 + constants" if f.mode == "qlora" else "16-bit"
        table.add_row(
            "frozen base", _gb(f.frozen_weights_bytes), f"{bits} per device; no gradients or optimizer states"
        )
        table.add_row("adapter states", _gb(f.adapter_weights_bytes + r.memory.breakdown.gradients_bytes
                                            + r.memory.breakdown.optimizer_bytes),
                      f"weights {_gb(f.adapter_weights_bytes)}, gradients {_gb(r.memory.breakdown.gradients_bytes)} "
                      f"(at the peak), optimizer {_gb(r.memory.breakdown.optimizer_bytes)}")  # fmt: skip
        if f.dequant_buffer_bytes:
            table.add_row("dequantised copy", _gb(f.dequant_buffer_bytes), "the bf16 weight being multiplied")
    table.add_row("FLOPs / token", f"{f.flops_ratio_to_full_training:.1%}",
                  f"of full training's {format_si(f.flops_per_token_full_training, 'FLOP')}; model FLOPs (MFU) count "
                  "what runs once, without recomputation")  # fmt: skip
    for n in f.notes:
        table.add_row("", "", n)
    return table


def mm_scale(r) -> float:
    """A measured model's activation bytes (recorded at 2 B per element) at the run's precision, ÷ 1e9 for _gb."""
    from flopcast.estimator.arrays import activation_bytes_per_element

    return activation_bytes_per_element(r.inputs.precision) / 2.0


def estimate_tables(r) -> list:
    """The renderables of an EstimateReport, top to bottom: summary, memory, time, warnings."""
    from rich.table import Table

    p, t, m, c, e = r.parallelism, r.time, r.memory, r.cost, r.energy
    summary = Table(
        title=f"Estimate: {r.model.name} on {r.inputs.devices} × {r.hardware.id}",
        title_justify="left",
        show_header=False,
    )
    summary.add_column("quantity", style="bold")
    summary.add_column("value")
    summary.add_column("range / detail", overflow="fold")
    auto = " (chosen automatically)" if p.layout_chosen_automatically else ""
    mm = r.model.measured  # a measured model (CNN, ViT, DLRM, --torch-model): samples in place of tokens
    per = "sample" if mm else "token"
    if mm:
        tables = (
            f"; {format_si(mm.embedding_table_params)} in embedding tables"
            + (f", sharded over dp {p.dp}" if mm.embedding_tables_sharded else "")
            if mm.embedding_table_params
            else ""
        )
        summary.add_row(
            "model",
            f"{format_si(r.model.params)} parameters",
            f"{mm.kind}, measured: {format_si(mm.forward_flops_per_sample, 'FLOP')} forward and "
            f"{format_si(mm.activation_bytes_per_sample * mm_scale(r), 'B')} stored per {mm.sample}{tables}",
        )
    else:
        summary.add_row(
            "model",
            f"{format_si(r.model.params)} parameters",
            f"{r.model.layers} layers, d={r.model.d_model}, {r.model.heads} heads, seq {r.model.seq_len}",
        )
    if r.hardware.measured:
        where = f"measured on {r.hardware.id} by flopcast bench; the rest: datasheet"
        summary.add_row("measured", ", ".join(r.hardware.measured), where)
    epochs = f" × {r.inputs.epochs} epochs" if r.inputs.epochs != 1 else ""
    summary.add_row(
        f"{per}s", format_si(r.inputs.tokens) + epochs, f"{t.steps:,.0f} steps of {p.global_batch_tokens:,} {per}s"
    )
    summary.add_row(
        "layout",
        degrees_text(p),
        f"ZeRO {p.zero}, recompute {p.recompute}, micro-batch {p.micro_batch}, global batch {p.global_batch}"
        + (f", interleaved ×{p.interleave}" if getattr(p, "interleave", 1) > 1 else "")
        + auto,
    )
    summary.add_row(
        "FLOPs",
        f"{r.flops.total:.3g} FLOP",
        f"{format_si(r.flops.per_token, 'FLOP')}/{per}"
        + (" (3 × forward)" if mm else f"; {r.flops.hardware_total:.3g} with recomputation"),
    )
    summary.add_row(
        "memory / device",
        _gb(m.per_device_bytes),
        f"of {_gb(m.capacity_bytes)}"
        + (f" ({_gb(m.usable_bytes)} usable, {m.headroom_fraction:.0%} headroom)" if m.headroom_fraction else "")
        + f": {'fits' if m.fits else 'DOES NOT FIT'}"
        + f"; peak at the {'optimizer step' if m.peak_moment == 'optimizer-step' else 'loss'}, "
        f"{_gb(m.allocated_bytes)} allocated, {_gb(m.reserved_bytes)} reserved, grads {m.grad_dtype}",
    )
    summary.add_row(
        "step time",
        format_duration(t.step_seconds),
        f"step MFU {r.efficiency.mfu:.1%}, HFU {r.efficiency.hfu:.1%}"
        + (" (forced by --mfu)" if r.efficiency.mfu_forced else "")
        + f"; over wall-clock {r.efficiency.effective_mfu:.1%}",
    )
    summary.add_row(
        "throughput",
        f"{format_si(r.throughput.tokens_per_second)} {per}s/s",
        f"{r.throughput.model_tflops_per_device:.0f} model TFLOP/s per device",
    )
    summary.add_row(
        "wall-clock",
        format_duration(t.wall_clock_seconds),
        _range(format_duration(t.wall_clock_seconds_p10), format_duration(t.wall_clock_seconds_p90)),
    )
    summary.add_row(
        "device-hours", f"{t.device_hours:,.0f}", _range(f"{t.device_hours_p10:,.0f}", f"{t.device_hours_p90:,.0f}")
    )
    if c.total_usd is not None:
        summary.add_row(
            "cost",
            format_usd(c.total_usd),
            _range(format_usd(c.total_usd_p10), format_usd(c.total_usd_p90))
            + f"; {c.tier} at ${c.usd_per_device_hour:g}/device-hour",
        )
    else:
        summary.add_row("cost", "—", "no price: give --price-per-hour")
    if e.kwh is not None:
        summary.add_row(
            "energy",
            f"{e.kwh / 1000:,.1f} MWh",
            f"{e.co2_kg / 1000:,.1f} t CO2eq (PUE {e.pue}, {e.grid_kg_co2_per_kwh} kg/kWh)",
        )

    memory = Table(title="Memory per device", title_justify="left")
    memory.add_column("part")
    memory.add_column("bytes", justify="right")
    memory.add_column("share", justify="right")
    for name, value in m.breakdown.labelled():
        memory.add_row(name, _gb(value), _pct(value, m.per_device_bytes))
    memory.add_row("total", _gb(m.per_device_bytes), f"capacity {_gb(m.capacity_bytes)}", style="bold")

    step = Table(title="Where the time goes", title_justify="left")
    step.add_column("part")
    step.add_column("per step", justify="right")
    step.add_column("share of wall-clock", justify="right")
    sb = t.step_breakdown
    scale = t.training_seconds / t.wall_clock_seconds if t.wall_clock_seconds > 0 else 0.0
    lay = r.parallelism
    for name, value in (
        ("compute", sb.compute_seconds),
        ("tensor-parallel comms", sb.tp_comm_seconds),
        *([("context-parallel K/V ring (exposed)", sb.cp_comm_seconds)] if lay.cp > 1 else []),
        *([("expert all-to-all", sb.ep_comm_seconds)] if lay.ep > 1 else []),
        *([("embedding all-to-all", sb.ep_comm_seconds)] if mm and mm.embedding_tables_sharded else []),
        ("pipeline sends", sb.pp_comm_seconds),
        ("data-parallel comms (exposed)", sb.dp_comm_exposed_seconds),
        ("pipeline bubble", sb.bubble_seconds),
        ("optimizer update", sb.optimizer_seconds),
    ):
        step.add_row(name, format_duration(value), _pct(value * scale, t.step_seconds))
    step.add_row("interruptions and overhead", "—", f"{t.reliability_share:.1%}")
    step.add_row("step", format_duration(t.step_seconds), "", style="bold")

    out = [summary, memory, step]
    if r.finetune is not None:
        out.append(_finetune_table(r))
    if r.storage is not None and r.storage.tier is not None:
        out.append(_storage_table(r.storage))
    if r.warnings:
        warn = Table(title="Warnings", title_justify="left", show_header=False)
        warn.add_column("warning", overflow="fold")
        for w in r.warnings:
            warn.add_row(w)
        out.append(warn)
    return out
