"""The request layer: what the user typed (strings or numbers) → validated objects the search and the core take.

Every front door (``flopcast.estimate / plan / compare / size``, ``--sweep``) parses through here, once:

* :func:`training_workload` — model (preset, size, explicit architecture or a ModelSpec), tokens, precision
  and forced MFU → :class:`TrainingWorkload`;
* :func:`layout_query` — the layout options → a :class:`~flopcast.layout.LayoutQuery`;
* :func:`resolve_hardware` / :func:`resolve_hardware_list` — ids, aliases or profile objects;
* :func:`price_for` — THE price rule (below) and :func:`priced_hardware` — a profile with its core arrays for
  one precision and price;
* :func:`hardware_warnings` — the warnings every estimate of a hardware shares.

The price rule: ``price_per_hour`` given → that price ("custom"); a tier given → that tier's price, and a
tier the profile does not list is an error naming the tiers it lists; else the on-demand price; else the
cheapest listed tier, with a warning; else no price (cost is null), with a warning.

Messages name options with :func:`flopcast.errors.opt`, so the CLI shows its flags and the library its keywords.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from flopcast.errors import ConflictingOptions, InvalidValue, opt
from flopcast.layout import LayoutQuery
from flopcast.layout_fields import LAYOUT_FIELDS
from flopcast.units import parse_count, parse_int, parse_usd

ARCHITECTURE_KEYS = (
    "layers",
    "d_model",
    "heads",
    "kv_heads",
    "head_dim",
    "ffn",
    "gated_ffn",
    "vocab",
    "tied_embeddings",
    "experts",
    "active_experts",
)
DEFAULT_TIER = "on-demand"
# Memory a plan leaves free on every device, as a fraction of its capacity: what the estimate does not count
# (allocator fragmentation, reserved-but-unallocated blocks, transient peaks) and what a run needs to survive
# a longer sequence or a larger batch. 10% is the margin vLLM leaves by default (EngineArgs
# gpu_memory_utilization = 0.9) and the order of PyTorch's reserved-minus-allocated gap; a stated policy, not a
# measurement. 0 restores "fits in the whole device".
DEFAULT_MEMORY_HEADROOM_FRACTION = 0.10
MAX_MEMORY_HEADROOM_FRACTION = 0.9  # exclusive: a headroom of 90% or more leaves nothing to plan with
CUSTOM_TIER = "custom"


# --- numbers -------------------------------------------------------------------------------------------------


def optional_int(value, name: str, *, allow_zero: bool = False) -> int | None:
    return None if value is None else parse_int(value, what=opt(name), allow_zero=allow_zero)


def required(value, name: str, example: str):
    if value is None:
        raise InvalidValue(f"{opt(name)}: no value given", hint=f"e.g. {opt(name)} {example}")
    return value


def parse_mfu(value) -> float | None:
    """A model-FLOPs utilisation in (0, 1]; ``"45%"`` is accepted."""
    if value is None:
        return None
    text = str(value).strip()
    scale = 1.0
    if text.endswith("%"):
        text, scale = text[:-1], 0.01
    number = parse_count(text, what=opt("mfu")) * scale
    if not 0 < number <= 1:
        raise InvalidValue(f"{opt('mfu')}: {value!r} is not a fraction in (0, 1]", hint="give e.g. 0.45 or 45%")
    return number


def parse_memory_headroom(value) -> float:
    """A fraction of device memory kept free, in [0, 0.9); ``"10%"`` is accepted; None → the default."""
    if value is None:
        return DEFAULT_MEMORY_HEADROOM_FRACTION
    text = str(value).strip()
    scale = 0.01 if text.endswith("%") else 1.0
    number = parse_count(text.rstrip("%") if scale != 1.0 else text, what=opt("memory_headroom"), allow_zero=True)
    number *= scale
    if not 0 <= number < MAX_MEMORY_HEADROOM_FRACTION:
        raise InvalidValue(
            f"{opt('memory_headroom')}: {value!r} is not a fraction in [0, {MAX_MEMORY_HEADROOM_FRACTION:g})",
            hint="give e.g. 0.1 or 10%; 0 plans on the whole device",
        )
    return number


def parse_precision(precision) -> str:
    """The one precision check: a training precision the core knows."""
    from flopcast.estimator.arrays import PRECISIONS

    text = "bf16" if precision is None else str(precision).strip().lower()
    if text not in PRECISIONS:
        raise InvalidValue(
            f"{opt('precision')}: unknown precision {precision!r}", hint=f"use one of {', '.join(PRECISIONS)}"
        )
    return text


def parse_grad_dtype(grad_dtype, precision: str = "bf16") -> str | None:
    """The gradient dtype: a float type at least as wide as 16 bits (None: the precision's convention)."""
    from flopcast.estimator.memory import GRAD_DTYPE_BYTES, default_grad_dtype

    if grad_dtype is None:
        return None
    text = str(getattr(grad_dtype, "value", grad_dtype)).strip().lower()
    if text in ("auto", ""):
        return None
    if text not in GRAD_DTYPE_BYTES:
        raise InvalidValue(
            f"{opt('grad_dtype')}: {grad_dtype!r} is not a gradient float type",
            hint=f"use one of {', '.join(GRAD_DTYPE_BYTES)} (default for {precision}: {default_grad_dtype(precision)})",
        )
    return text


def layout_query(**options) -> LayoutQuery:
    """The layout options (keywords: the layout record's fields and ``max_tp``; None = searched) as a
    :class:`LayoutQuery`: counts parsed, the recompute mode lower-cased. Range rules: ``check_layout``."""
    parsed = {}
    for name, value in options.items():
        if name not in LayoutQuery._fields:
            raise InvalidValue(f"unknown layout option {name!r}", hint=f"layout options are {', '.join(LAYOUT_FIELDS)}")
        if value is None:
            continue
        if name == "recompute":
            parsed[name] = str(getattr(value, "value", value)).strip().lower()
        else:
            parsed[name] = optional_int(value, name, allow_zero=name in ("zero", "shard_group"))
    return LayoutQuery(**parsed)


def split_options(options: dict) -> tuple[dict, dict]:
    """Keyword options → (layout options, architecture options); any other name is an error."""
    layout = {k: v for k, v in options.items() if k in LAYOUT_FIELDS}
    architecture = {k: v for k, v in options.items() if k not in layout}
    unknown = sorted(set(architecture) - set(ARCHITECTURE_KEYS))
    if unknown:
        raise InvalidValue(
            f"unknown option(s) {', '.join(unknown)}",
            hint=f"layout options are {', '.join(LAYOUT_FIELDS)}; architecture options {', '.join(ARCHITECTURE_KEYS)}",
        )
    return layout, architecture


# --- the model and the workload ----------------------------------------------------------------------------


class TrainingWorkload(NamedTuple):
    """What is trained: the model, its label as the user named it, tokens, precision, a forced MFU."""

    spec: object  # ModelSpec
    label: str
    tokens: float
    precision: str
    mfu: float | None
    memory_headroom: float = DEFAULT_MEMORY_HEADROOM_FRACTION
    grad_dtype: str | None = None  # None: the precision's convention (estimator.memory.default_grad_dtype)
    finetune: object = None  # estimator.finetune.Finetune (full, lora, qlora); None: training
    epochs: int = 1  # passes over ``tokens`` (a fine-tuning set's size)

    @property
    def tokens_processed(self) -> float:
        return self.tokens * self.epochs

    def core(self):
        """The core's Workload (its tokens: every epoch's)."""
        from flopcast.estimator.arrays import Workload

        return Workload(
            self.tokens_processed, self.precision, self.mfu, self.memory_headroom, self.grad_dtype, self.finetune
        )


def resolve_model(model, seq_len=None, architecture: dict | None = None):
    """A ModelSpec from a preset id, a size (``7B``), a ModelSpec, or (model None) an architecture."""
    from flopcast.model_resolve import resolve_model as from_options
    from flopcast.models import ModelSpec

    architecture = {k: v for k, v in (architecture or {}).items() if v is not None}
    unknown = sorted(set(architecture) - set(ARCHITECTURE_KEYS))
    if unknown:
        raise InvalidValue(
            f"unknown option(s) {', '.join(unknown)}", hint=f"architecture options are {', '.join(ARCHITECTURE_KEYS)}"
        )
    if isinstance(model, ModelSpec):
        if architecture:
            raise ConflictingOptions(
                "a ModelSpec together with architecture options", hint="put the architecture into the ModelSpec"
            )
        return (
            model if seq_len is None else model.model_copy(update={"seq_len": parse_int(seq_len, what=opt("seq_len"))})
        )
    return from_options(model, seq_len=seq_len, **architecture)


def training_workload(
    *,
    model=None,
    tokens=None,
    seq_len=None,
    precision="bf16",
    mfu=None,
    memory_headroom=None,
    architecture=None,
    grad_dtype=None,
    finetune=None,
    lora_rank=None,
    lora_targets=None,
    epochs=None,
):
    """Parse the model and token options (bad values raise one-line errors). ``finetune`` (full, lora,
    qlora) with ``lora_rank`` and ``lora_targets``: estimator/finetune.py; ``epochs`` multiplies ``tokens``."""
    from flopcast.finetune_request import parse_epochs, parse_finetune

    n_tokens = parse_count(required(tokens, "tokens", "2T"), what=opt("tokens"))
    prec = parse_precision(precision)
    grads = parse_grad_dtype(grad_dtype, prec)
    forced = parse_mfu(mfu)
    headroom = parse_memory_headroom(memory_headroom)
    n_epochs = parse_epochs(epochs)
    spec = resolve_model(model, seq_len, architecture)
    tune = parse_finetune(finetune, lora_rank, lora_targets, spec=spec, precision=prec)
    label = str(model) if isinstance(model, str) else spec.name
    return TrainingWorkload(spec, label, n_tokens, prec, forced, headroom, grads, tune, n_epochs)


def refuse_measured(work: TrainingWorkload, question: str) -> None:
    """A measured model (CNN, ViT, DLRM, ``--torch-model``) is planned one device count at a time by ``estimate``
    with ``--samples``; the searches (``question``: plan, compare, a sweep) take transformers. One line, exit 2."""
    if getattr(work.spec, "measured", False):
        name = work.spec.name
        raise InvalidValue(
            f"{name} is a measured model: {question} searches transformer models only",
            hint=f"estimate it one device count at a time, with {opt('samples')} and {opt('devices')}",
        )


# --- hardware and prices -------------------------------------------------------------------------------------


def _dirs(profiles) -> list[Path]:
    if profiles is None:
        return []
    return [Path(profiles)] if isinstance(profiles, str | Path) else [Path(p) for p in profiles]


def resolve_hardware(hardware, profiles=None):
    """A HardwareProfile from an id/alias (searching ``profiles`` dirs too) or a profile object."""
    from flopcast.hardware import HardwareProfile, load_catalog

    if isinstance(hardware, HardwareProfile):
        return hardware
    if hardware is None or not str(hardware).strip():
        raise InvalidValue(
            f"{opt('hardware')}: no hardware given",
            hint=f"e.g. {opt('hardware')} a100-80gb (see `flopcast hardware list`)",
        )
    return load_catalog(_dirs(profiles)).get(str(hardware))


def resolve_hardware_list(text, profiles=None) -> list:
    """Profiles named in ``a,b,c`` or a list (ids, aliases or profile objects; unknown → exit 2 with a
    suggestion), or every visible profile when ``text`` is None. Duplicates are dropped."""
    from flopcast.hardware import load_catalog

    catalog = load_catalog(_dirs(profiles))
    if text is None:
        return [catalog.get(pid) for pid in catalog.ids()]
    names = str(text).split(",") if isinstance(text, str) else list(text) if isinstance(text, list | tuple) else [text]
    out, seen = [], set()
    for name in names:
        if hasattr(name, "peak_flops_per_s"):  # a HardwareProfile object (library use)
            profile = name
        else:
            if not str(name).strip():
                raise InvalidValue(
                    f"{opt('hardware')}: empty name in {text!r}",
                    hint="give ids separated by commas, e.g. a100-80gb,h100-80gb",
                )
            profile = catalog.get(str(name))
        if profile.id not in seen:
            seen.add(profile.id)
            out.append(profile)
    return out


class Price(NamedTuple):
    """The price a run is costed at (None when the profile lists none and none was given)."""

    usd_per_device_hour: float | None
    tier: str | None
    date: str | None
    warnings: tuple[str, ...] = ()

    @property
    def custom(self) -> bool:
        return self.tier == CUSTOM_TIER


def price_for(profile, tier: str | None = None, price_per_hour=None) -> Price:
    """THE price rule (module docstring)."""
    tiers = profile.prices_usd_per_device_hour
    if price_per_hour is not None:
        return Price(parse_usd(price_per_hour, what=opt("price_per_hour")), CUSTOM_TIER, None)
    if tier is not None:
        if tier not in tiers:
            listed = ", ".join(sorted(tiers)) if tiers else "none"
            raise InvalidValue(
                f"{opt('price_tier')} {tier}: {profile.id} has no such price (tiers listed: {listed})",
                hint=f"choose a listed tier or give {opt('price_per_hour')}",
            )
        return Price(tiers[tier].usd_per_device_hour, tier, tiers[tier].date)
    if DEFAULT_TIER in tiers:
        return Price(tiers[DEFAULT_TIER].usd_per_device_hour, DEFAULT_TIER, tiers[DEFAULT_TIER].date)
    if tiers:
        name, price = min(tiers.items(), key=lambda kv: kv[1].usd_per_device_hour)
        return Price(
            price.usd_per_device_hour,
            name,
            price.date,
            (f"{profile.id} lists no on-demand price; costed at its {name} tier",),
        )
    return Price(None, None, None, (f"{profile.id} lists no price: cost omitted (give a price per device-hour)",))


def check_price_tier(price_tier: str | None, profiles: list) -> None:
    """A tier that none of the selected profiles lists is a typo, not a constraint: exit 2."""
    if price_tier is None or any(price_tier in p.prices_usd_per_device_hour for p in profiles):
        return
    listed = sorted({t for p in profiles for t in p.prices_usd_per_device_hour})
    raise InvalidValue(
        f"{opt('price_tier')} {price_tier}: no selected hardware lists it",
        hint=f"use one of {', '.join(listed)}" if listed else "the selected hardware lists no prices",
    )


class PricedHardware(NamedTuple):
    """A profile, its core arrays for one training precision and price, and that price."""

    profile: object
    arrays: object  # HardwareArrays, one row
    price: Price
    precision: str  # asked for
    precision_used: str  # whose peak is used (bf16 falls back to fp16 on V100)

    @property
    def calibrated(self) -> bool:
        return bool(self.arrays.calibrated[0] > 0.5)


def priced_hardware(profile, *, precision: str, params, tier: str | None = None, price_per_hour=None) -> PricedHardware:
    """Raises InvalidValue when the profile has no peak for ``precision`` or does not list ``tier``."""
    from flopcast.estimator.arrays import HardwareArrays, precision_used, training_peak

    training_peak(profile, precision)  # raises with the peaks it publishes
    price = price_for(profile, tier, price_per_hour)
    hw = HardwareArrays.from_profiles(
        [profile], precision=precision, tier=None, price_per_hour=price.usd_per_device_hour, params=params
    )
    return PricedHardware(profile, hw, price, precision, precision_used(profile, precision))


def unsearchable_reason(profile, *, precision: str, tier: str | None) -> str | None:
    """Why ``plan`` cannot search this profile (no peak for the precision, no price in the tier), or None."""
    from flopcast.estimator.arrays import training_peak

    try:
        training_peak(profile, precision)
    except InvalidValue:
        return f"publishes no {precision} peak"
    if tier is not None and tier not in profile.prices_usd_per_device_hour:
        listed = ", ".join(sorted(profile.prices_usd_per_device_hour)) or "none"
        return f"lists no {tier} price (tiers: {listed})"
    return None


def check_context_parallel_kernel(hw, query) -> None:
    """Context parallelism needs a fused attention kernel (Megatron-LM runs it only through Transformer Engine's
    fused attention; torchtitan's ring attention through SDPA's flash and memory-efficient kernels): refuse
    ``cp`` > 1 on hardware without one (efficiency.fused_attention_supported)."""
    import numpy as np

    from flopcast.errors import InvalidLayout

    if (query.cp or 1) > 1 and not np.asarray(hw.arrays.fused_attention).ravel()[0] > 0.5:
        raise InvalidLayout(
            f"{opt('cp')} {query.cp}: context parallelism needs a fused (FlashAttention-style) attention kernel, "
            f"which {hw.profile.id} does not run",
            hint=f"drop {opt('cp')}, or choose hardware of compute capability 8.0 or newer",
        )


def hardware_warnings(hw: PricedHardware, max_devices: int) -> list[str]:
    """The warnings every estimate on ``hw`` shares: price, precision fallback, uncalibrated family, a
    missing inter-node bandwidth (when ``max_devices`` spans nodes), a missing power figure."""
    from flopcast.estimator.arrays import FALLBACK_INTER_NODE_BANDWIDTH_BYTES_PER_S

    p = hw.profile
    out = list(hw.price.warnings)
    if hw.precision_used != hw.precision:
        out.append(
            f"{p.id} has no {hw.precision} peak; using its {hw.precision_used} peak (mixed precision in "
            f"{hw.precision_used})"
        )
    if not hw.calibrated:
        family = getattr(p, "family", None)
        named = f"hardware family ({family})" if family else "hardware family"
        out.append(
            f"no published runs of {p.id}'s {named} were used to fit the efficiency model; its P10–P90 range is wider"
        )
    if max_devices > p.devices_per_node and p.inter_node_bandwidth_bytes_per_s is None:
        fallback = FALLBACK_INTER_NODE_BANDWIDTH_BYTES_PER_S
        out.append(
            f"{p.id} publishes no inter-node bandwidth; assumed {fallback / 1e9:.1f} GB/s per device "
            f"({fallback * 8 / 1e9:.0f} Gb/s)"
        )
    if p.power_watts is None:
        out.append(f"{p.id} publishes no power figure; no energy or CO2 estimate")
    return out
