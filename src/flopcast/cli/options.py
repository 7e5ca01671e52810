"""Every option that two or more commands share, declared once: flags, metavar and one help text.

A command takes them as typed parameters and gives the default in its own signature::

    def plan(model: Model = None, tokens: Tokens = None, fmt: Format = OutputFormat.table, ...)

Numbers are taken as strings (``7B``, ``2T``, ``$2M``, ``30d``) and parsed by :mod:`flopcast.units` in the
library. Where one flag means something different to different commands (``--hardware`` is one profile to
`estimate`, a list to `plan`), each meaning is its own option here, named for it (``HardwareList``); a flag
that two commands share is never declared in a command module (tests/test_cli_options.py checks both).
"""

from __future__ import annotations

import functools
import inspect
from pathlib import Path
from typing import Annotated

import typer

from flopcast.cli.common import OutputFormat
from flopcast.layout_fields import CLI_LAYOUT_FIELDS, SPEC_BY_NAME


def _value(*flags: str, help: str, metavar: str = "N"):  # noqa: A002 - typer's own keyword
    """An option that takes one value (a string the library parses) and shows no default."""
    return typer.Option(*flags, help=help, metavar=metavar, show_default=False)


def _switch(flags: str, help: str):  # noqa: A002
    """An on/off pair (``--gated-ffn/--plain-ffn``) whose unset state (None) keeps the preset's value."""
    return typer.Option(flags, help=help, show_default=False)


# --- the workload -----------------------------------------------------------------------------------------
Model = Annotated[
    str | None, _value("--model", "-m", help="Preset id (llama-2-7b, gpt3-175b, ...) or a size (7B, 350M).",
                       metavar="ID|SIZE")
]  # fmt: skip
Tokens = Annotated[
    str | None, _value("--tokens", "-t", help="Training tokens, e.g. 2T, 300B (required).", metavar="COUNT")
]
Precision = Annotated[
    str, typer.Option("--precision", metavar="DTYPE", help="Training precision: bf16, fp16, fp8, tf32, fp32, fp64.")
]
GradDtype = Annotated[
    str | None,
    _value("--grad-dtype", metavar="DTYPE",
           help="Gradient dtype: fp32, bf16, fp16 (default: fp32 main grads for bf16/fp8 under ZeRO 0-1, "
                "as Megatron-LM; 16-bit under ZeRO 2-3 and for fp16)."),
]  # fmt: skip
MemoryHeadroom = Annotated[
    str | None,
    _value("--memory-headroom", metavar="FRACTION",
           help="Share of each device's memory a layout must leave free to fit, e.g. 0.1 or 10% (default 10%)."),
]  # fmt: skip
# fine-tuning (flopcast.estimator.finetune): estimate and plan
Finetune = Annotated[
    str | None,
    _value("--finetune", metavar="full|lora|qlora",
           help="Fine-tune: full (every weight), lora (frozen 16-bit base + rank-r adapters, Hu et al. 2021) or "
                "qlora (frozen 4-bit NF4 base + adapters, Dettmers et al. 2023); --tokens is then the "
                "fine-tuning set."),
]  # fmt: skip
LoraRank = Annotated[
    str | None, _value("--lora-rank", metavar="R", help="LoRA/QLoRA adapter rank, 1 to d_model (default 16).")
]
LoraTargets = Annotated[
    str | None,
    _value("--lora-targets", metavar="all|attention",
           help="Matrices with adapters: all linear layers of each block (default, as QLoRA) or "
                "attention (q, k, v, o)."),
]  # fmt: skip
Epochs = Annotated[
    str | None, _value("--epochs", help="Passes over --tokens (default 1); the run trains tokens × epochs.")
]

# --- the architecture (explicit, or overriding a preset's) ----------------------------------------------------
Layers = Annotated[str | None, _value("--layers", help="Transformer layers (explicit architecture).")]
DModel = Annotated[str | None, _value("--d-model", help="Model width.")]
Heads = Annotated[str | None, _value("--heads", help="Attention heads.")]
KvHeads = Annotated[str | None, _value("--kv-heads", help="Key/value heads (GQA/MQA; default: heads).")]
HeadDim = Annotated[str | None, _value("--head-dim", help="Width of one head (default d_model/heads).")]
Ffn = Annotated[str | None, _value("--ffn", help="FFN hidden size (default 4·d_model).")]
GatedFfn = Annotated[
    bool | None, _switch("--gated-ffn/--plain-ffn", help="SwiGLU (three FFN matrices) or a plain two-matrix FFN.")
]
Vocab = Annotated[str | None, _value("--vocab", help="Vocabulary size.")]
SeqLen = Annotated[str | None, _value("--seq-len", help="Sequence length (also overrides a preset's).")]
TiedEmbeddings = Annotated[
    bool | None, _switch("--tied-embeddings/--untied-embeddings", help="Share input embedding and output head.")
]
Experts = Annotated[str | None, _value("--experts", help="MoE: experts per layer.")]
ActiveExperts = Annotated[str | None, _value("--active-experts", help="MoE: experts each token uses.")]
# the explicit architecture (a preset or a size fixes it): one group, `with_architecture_options`
ARCHITECTURE_OPTIONS = {
    "layers": Layers, "d_model": DModel, "heads": Heads, "kv_heads": KvHeads, "head_dim": HeadDim, "ffn": Ffn,
    "gated_ffn": GatedFfn, "vocab": Vocab, "tied_embeddings": TiedEmbeddings, "experts": Experts,
    "active_experts": ActiveExperts,
}  # fmt: skip
# `size` designs the model itself: its sequence length and vocabulary have defaults of their own
SizedSeqLen = Annotated[str | None, _value("--seq-len", help="Sequence length of the sized model (default 2048).")]
SizedVocab = Annotated[str | None, _value("--vocab", help="Vocabulary of the sized model (default 32000).")]

# --- hardware and devices ----------------------------------------------------------------------------------
# the one default profile (estimate, serve): the most common training GPU in published runs
# (shared/data/calibration_runs.csv)
DEFAULT_HARDWARE = "a100-80gb"
Hardware = Annotated[str, typer.Option("--hardware", "-H", help="Hardware profile id or alias.", metavar="ID")]
HardwareList = Annotated[
    str | None, _value("--hardware", "-H", help="Hardware ids or aliases, comma-separated (default: every profile).")
]
SizedHardware = Annotated[
    str | None,
    _value("--hardware", "-H", help="Hardware id (or, without --devices, a comma-separated list for the planner)."),
]
Devices = Annotated[str | None, _value("--devices", "-n", help="Number of devices, e.g. 256 (required).")]
DevicesPerHardware = Annotated[
    str | None, _value("--devices", "-n", help="Devices per hardware, e.g. 256 (or give --deadline).")
]
SizedDevices = Annotated[str | None, _value("--devices", "-n", help="Device count the budget is spent on.")]
# serve: tensor-parallel devices, found when not given
DevicesToFit = Annotated[
    str | None,
    _value("--devices", "-n", help="Devices to split the model over (tensor parallel). Default: the fewest that fit."),
]
# calibrate: the device count of a logged run (a log does not say it)
DevicesOfRun = Annotated[
    str | None,
    _value("--devices", "-n", help="Devices the measured run used (default: tp·pp·dp·cp when all are given)."),
]
MaxDevices = Annotated[
    str | None,
    _value("--max-devices", help="Largest device count to search (default 4096, or what --deadline implies)."),
]
# serve: one profile; with --plan, the profiles to search and the most devices in all
ServeHardware = Annotated[
    str | None,
    _value("--hardware", "-H", metavar="ID[,ID]",
           help="Hardware profile id or alias (default a100-80gb); with --plan, ids comma-separated to search "
                "(default: every GPU profile with a price)."),
]  # fmt: skip
ServeMaxDevices = Annotated[
    str | None,
    _value("--max-devices", help="With --plan: most devices in all, tensor parallel × replicas (default 64)."),
]

# --- the layout (estimate; `plan` searches them): one flag per field of the layout record -------------------


def _layout(name: str):
    spec = SPEC_BY_NAME[name]
    text = f"{spec.help[0].upper()}{spec.help[1:]} (default: {spec.when_open})."
    flag = "--" + name.replace("_", "-")
    if name == "global_batch":  # one flag, one meaning: serve's --batch is concurrent sequences
        text += " For a measured model (--samples) it counts samples."
    return _value(flag, help=text, metavar="MODE" if name == "recompute" else "N")


# every layout field the CLI offers (flopcast.layout_fields: name, help, what happens when left open)
LAYOUT_OPTIONS = {name: Annotated[str | None, _layout(name)] for name in CLI_LAYOUT_FIELDS}


def option_group(group: str, options: dict):
    """A decorator that gives a command one option per entry of ``options`` (name → Annotated type), in place of
    its ``group`` parameter; the command receives their values as that one dict. Commands then declare a group
    of shared options (the layout, the architecture) by one parameter, and a new member needs no edit in any
    command module.

    typer reads a command's parameters from ``inspect.signature`` and their types from ``__annotations__``, so
    both are rewritten on the wrapper, with the command module's string annotations resolved."""

    def decorate(command):
        signature = inspect.signature(command, eval_str=True)
        params = list(signature.parameters.values())
        at = [p.name for p in params].index(group)
        kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
        added = [inspect.Parameter(name, kind, default=None, annotation=t) for name, t in options.items()]

        @functools.wraps(command)
        def run(**kwargs):
            values = {name: kwargs.pop(name) for name in options}
            return command(**kwargs, **{group: values})

        run.__signature__ = signature.replace(parameters=[*params[:at], *added, *params[at + 1 :]])
        run.__annotations__ = {p.name: p.annotation for p in run.__signature__.parameters.values()}
        run.__annotations__["return"] = signature.return_annotation
        return run

    return decorate


with_layout_options = option_group("layout", LAYOUT_OPTIONS)
with_architecture_options = option_group("architecture", ARCHITECTURE_OPTIONS)


GlobalBatch = LAYOUT_OPTIONS["global_batch"]  # plan, compare and size take the global batch too


# --- price -------------------------------------------------------------------------------------------------
PriceTier = Annotated[
    str | None,
    _value("--price-tier", help="Price tier (on-demand, spot, reserved-1y, ...; default: on-demand where listed).",
           metavar="TIER"),
]  # fmt: skip
PricePerHour = Annotated[
    str | None,
    _value("--price-per-hour", help="Your own price per device-hour, e.g. 2.10 (overrides the tier).", metavar="USD"),
]

# --- the question: objective and limits --------------------------------------------------------------------
Objective = Annotated[str | None, _value("--objective", help="What to minimise: cost, time or energy (default cost).")]
Deadline = Annotated[str | None, _value("--deadline", help="Wall-clock limit, e.g. 30d, 2w, 720h.")]
DeadlineInsteadOfDevices = Annotated[
    str | None,
    _value("--deadline",
           help="Instead of --devices: the fewest devices of each hardware that meet this wall-clock, e.g. 30d."),
]  # fmt: skip
DeadlineBudget = Annotated[
    str | None, _value("--deadline", help="Wall-clock budget, e.g. 30d (needs --hardware and --devices).")
]
Budget = Annotated[str | None, _value("--budget", help="Cost limit, e.g. $2M, 500k.")]
Confidence = Annotated[
    str | None,
    _value("--confidence",
           help="Meet deadlines and budgets at this percentile of the calibrated range: p50 (the estimate, "
                "default), p80 or p90.", metavar="p50|p80|p90"),
]  # fmt: skip
DollarBudget = Annotated[
    str | None,
    _value("--budget", help="Dollar budget, e.g. $2M (on --hardware --devices, or the planner's cheapest plan)."),
]

# --- output (every command) --------------------------------------------------------------------------------
Format = Annotated[OutputFormat, typer.Option("--format", "-f", help="Output format: table, json, markdown or csv.")]
Output = Annotated[
    Path | None,
    typer.Option("--output", "-o", help="Write the result to FILE (atomically) instead of stdout.", dir_okay=False),
]
Force = Annotated[bool, typer.Option("--force", help="Overwrite --output FILE if it exists.")]
# bench: --force also overwrites a saved profile
ForceOutputOrProfile = Annotated[
    bool,
    typer.Option("--force", help="Overwrite --output FILE or an existing profile NAME; allow shadowing a shipped id."),
]
# bench, calibrate: write the result as a hardware profile in the user profile dir
SaveProfile = Annotated[
    str | None,
    _value("--save-profile", metavar="NAME",
           help="Save the result as hardware profile NAME in the user profile dir (then: --hardware NAME)."),
]  # fmt: skip
Profiles = Annotated[
    list[Path] | None,
    typer.Option("--profiles", help="Extra directory of hardware profiles (repeatable; overrides shipped ones)."),
]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Print no progress or notes on stderr.")]
Plot = Annotated[
    Path | None,
    typer.Option("--plot", metavar="FILE.png|svg", dir_okay=False,
                 help='Also draw the result to FILE (.png or .svg; needs matplotlib: pip install "flopcast[plot]").'),
]  # fmt: skip


# --- shell completion (issue 19) ----------------------------------------------------------------------------------
# Callbacks that typer calls while a shell completes a word; each imports what it needs only then, so a normal
# run pays nothing. attach_completion() fits them to the options declared above (and to options a command
# declares itself, such as serve's --weights and schema's KIND).

RECOMPUTE_CHOICES = ("none", "selective", "op", "attention", "full")
OBJECTIVE_CHOICES = ("cost", "time", "energy")
WEIGHT_BITS_CHOICES = ("16", "8", "4")
KV_BITS_CHOICES = ("16", "8")


def _starting(choices, incomplete: str) -> list[str]:
    return [c for c in choices if c.startswith(incomplete.lower())]


def complete_recompute(incomplete: str) -> list[str]:
    return _starting(RECOMPUTE_CHOICES, incomplete)


def complete_objective(incomplete: str) -> list[str]:
    return _starting(OBJECTIVE_CHOICES, incomplete)


def complete_weight_bits(incomplete: str) -> list[str]:
    return _starting(WEIGHT_BITS_CHOICES, incomplete)


def complete_kv_bits(incomplete: str) -> list[str]:
    return _starting(KV_BITS_CHOICES, incomplete)


def complete_runtime(incomplete: str) -> list[str]:
    from flopcast.runtimes import runtime_ids

    return _starting(runtime_ids(), incomplete)


def complete_precision(incomplete: str) -> list[str]:
    from flopcast.estimator.arrays import PRECISIONS

    return _starting(PRECISIONS, incomplete)


def complete_schema_kind(incomplete: str) -> list[str]:
    from flopcast.reports.registry import kinds

    return _starting(kinds(), incomplete)


def _hardware_ids(ctx) -> tuple[list[str], list[str]] | None:
    """Ids (then aliases) of every profile on the search path, with --profiles if already typed; none on error."""
    try:
        from flopcast.hardware import load_catalog

        catalog = load_catalog((ctx.params.get("profiles") if ctx is not None else None) or None)
    except Exception:  # noqa: BLE001 - a broken profile must not break the shell
        return None
    return catalog.ids(), sorted(catalog.aliases)


def _matching_hardware(ctx, incomplete: str) -> list[str]:
    """Ids that start with ``incomplete``; aliases only when no id does (``h100`` → h100-80gb, not five names)."""
    found = _hardware_ids(ctx)
    if not found:
        return []
    ids, aliases = found
    return _starting(ids, incomplete) or _starting(aliases, incomplete)


def complete_hardware(ctx: typer.Context, incomplete: str) -> list[str]:
    return _matching_hardware(ctx, incomplete)


def complete_hardware_list(ctx: typer.Context, incomplete: str) -> list[str]:
    """The last id of a comma-separated list: ``a100-80gb,h1`` → ``a100-80gb,h100-80gb``."""
    done, _, last = incomplete.rpartition(",")
    head = f"{done}," if done else ""
    return [head + pid for pid in _matching_hardware(ctx, last)]


def complete_model(incomplete: str) -> list[str]:
    from flopcast.presets import list_presets

    return _starting([spec.name for spec in list_presets()], incomplete)


def complete_price_tier(incomplete: str) -> list[str]:
    from flopcast.hardware import PRICE_TIERS_KNOWN

    return _starting(PRICE_TIERS_KNOWN, incomplete)


def attach_completion(option, callback):
    """Give an option (an ``Annotated[...]`` alias above, or a bare typer.Option) its completion callback."""
    info = option.__metadata__[0] if hasattr(option, "__metadata__") else option
    info.autocompletion = callback
    return option


for _option, _callback in (
    (LAYOUT_OPTIONS["recompute"], complete_recompute),
    (Objective, complete_objective),
    (Precision, complete_precision),
    (Hardware, complete_hardware),
    (HardwareList, complete_hardware_list),
    (SizedHardware, complete_hardware_list),
    (Model, complete_model),
    (PriceTier, complete_price_tier),
):
    attach_completion(_option, _callback)

# --- storage (estimate, plan) -------------------------------------------------------------------------
Storage = Annotated[
    str | None,
    typer.Option("--storage", metavar="TIER", show_default=False,
                 help="Storage tier (lustre, s3, tectonic, local-nvme). estimate/plan: checkpoint write time, "
                      "Young/Daly interval, storage and egress cost; serve: the weights' load time at start-up."),
]  # fmt: skip
KeepCheckpoints = Annotated[
    str | None,
    typer.Option("--keep-checkpoints", metavar="N", show_default=False,
                 help="Checkpoints kept on the storage tier, for its cost (default 2)."),
]  # fmt: skip
TransferGbps = Annotated[
    str | None,
    typer.Option("--transfer-gbps", metavar="GBPS", show_default=False,
                 help="Rate to move the dataset and the final checkpoint between sites, Gb/s (transfer time)."),
]  # fmt: skip
