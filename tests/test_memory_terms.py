"""The memory terms of issue 13, each against a hand derivation written here."""

from __future__ import annotations

import numpy as np
import pytest

import flopcast
from flopcast.estimator.arrays import ModelArrays
from flopcast.estimator.memory import memory_per_device
from flopcast.estimator.recompute import RECOMPUTE_NAMES, recomputed_linear_fraction
from flopcast.models import ModelSpec

# Llama-3-8B widths (Dubey et al. 2024, Table 3): d 4096, 32 heads, 8 KV heads, FFN 14336, vocab 128256.
L8 = ModelSpec(name="l8", layers=32, d_model=4096, heads=32, kv_heads=8, ffn=14336, gated_ffn=True, vocab=128256,
               seq_len=8192)  # fmt: skip


def _mem(spec, **kw):
    m = ModelArrays.from_specs([spec])
    code = RECOMPUTE_NAMES.index(kw.pop("recompute", "none"))
    args = dict(
        tp=np.array(1.0), pp=np.array(1.0), dp=np.array(1.0), micro_batch=np.array(1.0), micro_batches=np.array(1.0),
        zero=np.array(0.0), recompute=np.array(float(code)), interleave=np.array(1.0), fused_attention=np.array(1.0),
        precision="bf16", runtime=0.0,
    )  # fmt: skip
    args.update(kw)
    return memory_per_device(m, **args)


def test_the_loss_holds_12_bytes_per_vocabulary_entry_per_token():
    """bf16 logits 2 + fp32 log-softmax 4 + fp32 gradient 4 + its bf16 cast 2 = 12 B; Llama-3-8B at 8192
    tokens: 12 × 8192 × 128256 = 12.6 GB (Korthikanti's 4 B would say 4.2 GB)."""
    mem = _mem(L8)
    assert float(mem.logits_bytes[0]) == pytest.approx(12 * 8192 * 128256)


def test_full_recompute_rebuilds_one_layer_during_the_backward():
    """Full recompute keeps 2·d per token per layer (bf16); the re-run layer holds everything else of one layer:
    2·(4d + 2q + 2kv + 3f) − 2d = 2·(4·4096 + 2·4096 + 2·1024 + 3·14336) − 8192 = 131,072 B per token
    (no dropout)."""
    spec = L8.model_copy(update={"vocab": 256})  # a small vocabulary: the re-run layer, not the loss, binds
    mem = _mem(spec, recompute="full")
    assert float(mem.activations_bytes[0]) == pytest.approx(32 * 2 * 4096 * 8192)
    assert float(mem.recompute_working_bytes[0]) == pytest.approx(131_072 * 8192)


def test_op_recompute_keeps_the_odd_matmuls_and_the_attention_output():
    """torchtitan's per-op policy on a Llama layer: the input (d), Q (q), V (kv), W1 (f), W2 (d) and the attention
    output (q) plus 4 B of log-sum-exp per head: 2·(4096 + 4096 + 1024 + 14336 + 4096 + 4096) + 4·32 = 63,616 B
    per token per layer; it recomputes K, O and W3: (4096·1024 + 4096·4096 + 4096·14336) / all matmuls."""
    mem = _mem(L8, recompute="op")
    assert float(mem.activations_bytes[0]) == pytest.approx(32 * 63_616 * 8192)
    total = 4096 * 4096 * 2 + 2 * 4096 * 1024 + 3 * 4096 * 14336
    frac = recomputed_linear_fraction(ModelArrays.from_specs([L8]), np.array(3.0))
    assert float(frac[0]) == pytest.approx((4096 * 1024 + 4096 * 4096 + 4096 * 14336) / total)


def test_transient_gradients_are_absent_at_the_loss_and_main_grads_are_not():
    """bf16 grads are PyTorch .grad tensors (freed between steps); fp32 main grads are a persistent buffer.
    One micro-batch: at the loss the bf16 run holds no gradients, the fp32-main-grad run 4 B/param."""
    transient = _mem(L8, grad_dtype="bf16")
    persistent = _mem(L8, grad_dtype="fp32")
    params = float(transient.params_per_device[0])
    assert float(transient.gradients_bytes[0]) == 0.0
    assert float(persistent.gradients_bytes[0]) == pytest.approx(4 * params)
    # with gradient accumulation the bf16 gradients exist from the first backward on
    accumulating = _mem(L8, grad_dtype="bf16", micro_batches=np.array(4.0))
    assert float(accumulating.gradients_bytes[0]) == pytest.approx(2 * params)


def test_zero3_defaults_to_16_bytes_per_parameter_sharded():
    """ZeRO-3 (DeepSpeed 2 + 2 + 12, FSDP2 4 + 4 + 8): 16 B per parameter over dp = 64 ranks."""
    mem = _mem(L8, zero=np.array(3.0), dp=np.array(64.0), micro_batches=np.array(2.0))
    params = float(mem.params_per_device[0])
    states = float(mem.weights_bytes[0] + mem.gradients_bytes[0] + mem.optimizer_bytes[0])
    assert states == pytest.approx(16 * params / 64)


def test_the_optimizer_step_is_the_peak_when_activations_are_small():
    """A 1-token-per-step toy: the activations are tiny, so the peak is states + all gradients."""
    tiny = L8.model_copy(update={"seq_len": 1, "vocab": 256})
    mem = _mem(tiny, grad_dtype="bf16")
    params = float(mem.params_per_device[0])
    assert float(mem.peak_at_optimizer_step[0]) == 1.0
    assert float(mem.allocated_bytes[0]) == pytest.approx(16 * params)


def test_runtime_allowance_by_device_kind():
    """A GPU: 0.5 GB CUDA context + one NCCL communicator per parallel group of more than one device
    (4 MiB × 16 channels × 2 directions = 128 MiB each) + 10% of what churns; a CPU: nothing."""
    gpu = _mem(L8, runtime=1.0, tp=np.array(8.0), dp=np.array(4.0))
    assert float(gpu.runtime_context_bytes[0]) == pytest.approx(0.5e9)
    assert float(gpu.communicator_bytes[0]) == pytest.approx(2 * 4 * 2**20 * 16 * 2)
    churn = float(gpu.activations_bytes[0] + gpu.logits_bytes[0] + gpu.recompute_working_bytes[0])
    assert float(gpu.fragmentation_bytes[0]) == pytest.approx(0.10 * churn)
    cpu = _mem(L8, runtime=0.0, tp=np.array(8.0), dp=np.array(4.0))
    assert float(cpu.total_bytes[0]) == float(cpu.allocated_bytes[0])


def test_cpu_estimates_carry_no_gpu_allowance():
    r = flopcast.estimate(model="125M", tokens="1B", hardware="epyc-9654", devices=1, precision="fp32")
    b = r.memory.breakdown
    assert b.runtime_context_bytes == b.communicator_bytes == b.fragmentation_bytes == 0.0
    assert r.memory.per_device_bytes == r.memory.allocated_bytes


def test_dropout_masks_only_for_models_trained_with_dropout():
    """One mask byte per element, two per layer (attention and MLP output): 2·d bytes per token per layer."""
    plain = _mem(L8)
    dropped = _mem(L8.model_copy(update={"dropout": True}))
    extra = float(dropped.activations_bytes[0] - plain.activations_bytes[0])
    assert extra == pytest.approx(32 * 2 * 4096 * 8192)


def test_grad_dtype_must_be_a_float_type():
    from flopcast.errors import InvalidValue

    with pytest.raises(InvalidValue, match="not a gradient float type"):
        flopcast.estimate(model="7B", tokens="1T", devices=8, grad_dtype="int8")


def test_unknown_recompute_mode_suggests_the_names():
    from flopcast.errors import InvalidLayout

    with pytest.raises(InvalidLayout) as info:
        flopcast.estimate(model="7B", tokens="1T", devices=8, recompute="selectve")
    assert "selective" in str(info.value.hint)


def test_uneven_pipeline_stages_hold_the_ceiling_of_layers_per_stage():
    """Llama 3 ran 126 layers on 16 stages (Dubey et al. 2024, Sec. 3.3.2): the fullest stage holds ⌈126/16⌉ = 8
    layers, as many as a 128-layer model's stages — so its first stage's weights are the same."""
    kw = dict(tokens="15T", hardware="h100-80gb", devices=2048, tp=8, pp=16, dp=16, zero=1, recompute="full",
              micro_batch=1, global_batch=256)  # fmt: skip
    from flopcast.presets import get_preset

    spec = get_preset("llama-3.1-405b")
    l405 = flopcast.estimate(model=spec, **kw)
    padded = flopcast.estimate(model=spec.model_copy(update={"layers": 128}), **kw)
    assert l405.parallelism.pp == 16
    assert l405.memory.breakdown.weights_bytes == pytest.approx(padded.memory.breakdown.weights_bytes)
