"""The fine-tuning block of an estimate report (estimator/finetune.py has the model and its sources)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class FinetuneInfo(BaseModel):
    """What a fine-tuning run trains, what stays frozen, and what it costs against a full training step."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    mode: str = Field(description="full (every weight trained), lora or qlora (frozen base, low-rank adapters)")
    lora_rank: int | None = Field(None, description="r of the adapters B·A (null for full fine-tuning)")
    lora_targets: str | None = Field(
        None, description="all (attention and MLP linear layers) or attention (q, k, v, o)"
    )
    epochs: int = Field(description="passes over the fine-tuning set")
    dataset_tokens: float = Field(description="tokens in the fine-tuning set (--tokens)")
    tokens_processed: float = Field(description="dataset_tokens × epochs: what the run trains on")
    trainable_params: float = Field(
        description="parameters with gradients and optimizer states (adapters: r·(d_in + d_out) per adapted matrix)"
    )
    trainable_fraction: float = Field(description="trainable_params / the model's parameters")
    trainable_params_per_device: float = Field(description="on the fullest device, before ZeRO sharding")
    base_weight_bits_per_param: float = Field(
        description="frozen linear weights: 16, or NF4 4 + 0.127 of constants (QLoRA)"
    )
    frozen_weights_bytes: float = Field(description="per device, of memory.breakdown.weights_bytes")
    adapter_weights_bytes: float = Field(description="per device, of memory.breakdown.weights_bytes")
    dequant_buffer_bytes: float = Field(
        description="QLoRA: the bf16 copy of the weight being multiplied, of weights_bytes"
    )
    flops_per_token_full_training: float = Field(
        description="model FLOPs per token of a full training step, for comparison"
    )
    flops_ratio_to_full_training: float = Field(
        description="flops.per_token / flops_per_token_full_training: (4N + 6N_a)/(6N) plus attention"
    )
    paged_optimizer_modelled: bool = Field(
        False, description="QLoRA's paged optimizer (host offload on spikes) is not modelled"
    )
    notes: list[str] = Field(default_factory=list)


def finetune_info(work, row: dict) -> FinetuneInfo | None:
    """The block for ``work`` (request.TrainingWorkload) from the core's row; None for training."""
    from flopcast.estimator.arrays import ModelArrays
    from flopcast.estimator.finetune import QLORA_WEIGHT_BYTES_PER_PARAM, adapter_arrays
    from flopcast.estimator.flops import model_flops_per_token

    ft, spec = work.finetune, work.spec
    if ft is None:
        return None
    m = ModelArrays.from_specs([spec])
    full = float(model_flops_per_token(m)[0])
    if ft.frozen:
        a = adapter_arrays(m, ft.rank, ft.targets)
        trainable = float(spec.layers * a.layer_params[0])
    else:
        trainable = float(spec.params)
    notes = []
    if ft.frozen:
        notes.append(
            "frozen base: no gradients or optimizer states for it; the backward computes activation gradients only"
        )
        notes.append("data parallelism all-reduces only the adapters' gradients; ZeRO 1-2 shard only their states")
    if ft.quantised:
        notes.append(
            "QLoRA: layer linear weights in NF4 (blocks of 64, double-quantised constants); embedding, head and norms "
            "in bf16; each weight dequantised to bf16 per matmul (a memory-bound pass, counted in compute)"
        )
        notes.append("paged optimizer not modelled: the adapters' optimizer states stay on the device")
    return FinetuneInfo(
        mode=ft.mode,
        lora_rank=ft.rank if ft.frozen else None,
        lora_targets=ft.targets if ft.frozen else None,
        epochs=work.epochs,
        dataset_tokens=work.tokens,
        tokens_processed=work.tokens_processed,
        trainable_params=trainable,
        trainable_fraction=trainable / spec.params,
        trainable_params_per_device=row["trainable_params_per_device"],
        base_weight_bits_per_param=8.0 * QLORA_WEIGHT_BYTES_PER_PARAM if ft.quantised else 16.0,
        frozen_weights_bytes=row["frozen_weights_bytes"],
        adapter_weights_bytes=row["adapter_weights_bytes"],
        dequant_buffer_bytes=row["dequant_buffer_bytes"],
        flops_per_token_full_training=full,
        flops_ratio_to_full_training=row["model_flops_per_token"] / full,
        notes=notes,
    )
