"""Parsing and checking a fine-tuning request: ``finetune`` (full, lora, qlora), ``lora_rank``,
``lora_targets`` and ``epochs`` (the physics: flopcast.estimator.finetune).

Bad input is one line: a rank that is not a whole number in [1, d_model] (a rank-r update of a d × d matrix
has rank at most d; Hu et al. 2021 Sec. 4.1 take r ≪ d), a rank or targets without LoRA or QLoRA, LoRA with
fp8 training (the FP8 recipe's weight casts are modelled for trained weights only), QLoRA outside 16-bit
compute (Dettmers et al. 2023 compute in bf16 from the 4-bit storage) or on hardware that the 4-bit kernels
(bitsandbytes: CUDA and ROCm) do not run on.
"""

from __future__ import annotations

from flopcast.errors import ConflictingOptions, InvalidValue, opt
from flopcast.units import parse_int

# bitsandbytes' NF4 kernels: NVIDIA (CUDA) and AMD (ROCm) GPUs
QLORA_GPU_VENDORS = ("NVIDIA", "AMD")
QLORA_PRECISIONS = ("bf16", "fp16")


def parse_epochs(epochs) -> int:
    """Passes over the token budget: a whole number ≥ 1 (None: 1)."""
    return 1 if epochs is None else parse_int(epochs, what=opt("epochs"))


def parse_finetune(finetune, lora_rank=None, lora_targets=None, *, spec, precision: str):
    """A :class:`~flopcast.estimator.finetune.Finetune`, or None for training (no ``finetune``)."""
    from flopcast.estimator.finetune import (
        DEFAULT_LORA_RANK,
        DEFAULT_LORA_TARGETS,
        FINETUNE_MODES,
        LORA_TARGETS,
        Finetune,
    )

    mode = None if finetune is None else str(getattr(finetune, "value", finetune)).strip().lower()
    if mode is not None and mode not in FINETUNE_MODES:
        raise InvalidValue(
            f"{opt('finetune')}: unknown mode {finetune!r}", hint=f"use one of {', '.join(FINETUNE_MODES)}"
        )
    adapters = mode in ("lora", "qlora")
    if not adapters and (lora_rank is not None or lora_targets is not None):
        given = opt("lora_rank") if lora_rank is not None else opt("lora_targets")
        raise ConflictingOptions(
            f"{given} without adapters" + (f" ({opt('finetune')} {mode} trains every weight)" if mode else ""),
            hint=f"add {opt('finetune')} lora or {opt('finetune')} qlora, or drop {given}",
        )
    if mode is None:
        return None
    if getattr(spec, "measured", False):
        raise ConflictingOptions(
            f"{opt('finetune')} with the measured model {spec.name}",
            hint=f"fine-tuning plans transformer language models; drop {opt('finetune')} to train {spec.name}",
        )
    if not adapters:
        return Finetune(mode, 0, DEFAULT_LORA_TARGETS)
    rank = DEFAULT_LORA_RANK if lora_rank is None else parse_int(lora_rank, what=opt("lora_rank"))
    if rank > spec.d_model:
        raise InvalidValue(
            f"{opt('lora_rank')} {rank}: larger than the model width d_model = {spec.d_model}",
            hint=f"give a rank from 1 to {spec.d_model}; 8 to 64 is usual (QLoRA used 64)",
        )
    targets = DEFAULT_LORA_TARGETS if lora_targets is None else str(getattr(lora_targets, "value", lora_targets))
    targets = targets.strip().lower()
    if targets not in LORA_TARGETS:
        raise InvalidValue(
            f"{opt('lora_targets')}: unknown target set {lora_targets!r}", hint=f"use one of {', '.join(LORA_TARGETS)}"
        )
    if precision == "fp8":
        raise ConflictingOptions(
            f"{opt('finetune')} {mode} with {opt('precision')} fp8: adapter fine-tuning is modelled in 16-bit mixed "
            "precision or fp32",
            hint=f"use {opt('precision')} bf16",
        )
    if mode == "qlora" and precision not in QLORA_PRECISIONS:
        raise ConflictingOptions(
            f"{opt('finetune')} qlora with {opt('precision')} {precision}: QLoRA stores the base in 4 bits and "
            "computes in bf16 or fp16",
            hint=f"use {opt('precision')} bf16 (or fp16), or {opt('finetune')} lora",
        )
    return Finetune(mode, rank, targets)


def qlora_hardware_reason(profile) -> str | None:
    """Why QLoRA cannot run on ``profile`` (a HardwareProfile), or None."""
    kind, vendor = getattr(profile, "kind", None), getattr(profile, "vendor", None)
    if kind == "gpu" and vendor in QLORA_GPU_VENDORS:
        return None
    return f"QLoRA's 4-bit NF4 kernels (bitsandbytes) run on NVIDIA and AMD GPUs; {profile.id} is a {vendor} {kind}"


def check_finetune_hardware(ft, profile) -> None:
    """Raise when ``ft`` cannot run on ``profile`` (QLoRA off NVIDIA/AMD GPUs)."""
    if ft is None or ft.mode != "qlora":
        return
    why = qlora_hardware_reason(profile)
    if why is not None:
        raise InvalidValue(
            f"{opt('finetune')} qlora: {why}", hint=f"use {opt('finetune')} lora, or an NVIDIA or AMD GPU"
        )
