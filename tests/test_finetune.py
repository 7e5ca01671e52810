"""Fine-tuning (--finetune full|lora|qlora): adapter counts, FLOPs, memory and time, each checked against a
hand derivation written out here (Hu et al. 2021, LoRA; Dettmers et al. 2023, QLoRA), and the bad input."""

from __future__ import annotations

import json

import pytest

from flopcast.api import estimate

# Llama 3.1 70B (Meta's config.json): 80 layers, d 8192, 64 heads of 128, 8 KV heads, SwiGLU FFN 28672,
# vocabulary 128256, untied head.
L70, D70, KV70, F70, V70 = 80, 8192, 8 * 128, 28672, 128256
# one layer's linear weights: q and o d×d, k and v d×kv, gate/up/down d×f
LINEAR_LAYER_70 = 2 * D70 * D70 + 2 * D70 * KV70 + 3 * D70 * F70  # 855,638,016
HEAD_70 = V70 * D70
N_70 = L70 * LINEAR_LAYER_70 + HEAD_70  # PaLM's N: layer matmuls + head = 69,501,714,432


def adapters_per_layer(r, d, q, kv, f, mlp=True):
    """r·(d_in + d_out) per adapted matrix: q d→q, k d→kv, v d→kv, o q→d; gate, up d→f, down f→d."""
    attention = r * ((d + q) + (d + kv) + (d + kv) + (q + d))
    return attention + (3 * r * (d + f) if mlp else 0)


def qlora_70b(**kw):
    args = dict(model="llama-3.1-70b", tokens="10M", hardware="h100-80gb", devices=1, finetune="qlora", lora_rank=16)
    return estimate(**{**args, **kw})


@pytest.fixture(scope="module")
def q70():
    return qlora_70b()


def test_adapter_count_is_r_times_d_in_plus_d_out_per_matrix(q70):
    # 16·(16384 + 9216 + 9216 + 16384) = 819,200 attention + 3·16·36864 = 1,769,472 MLP, per layer
    assert adapters_per_layer(16, D70, D70, KV70, F70) == 2_588_672
    assert q70.finetune.trainable_params == 80 * 2_588_672 == 207_093_760
    assert q70.finetune.trainable_fraction == pytest.approx(207_093_760 / q70.model.params)
    attention_only = qlora_70b(lora_targets="attention")
    assert attention_only.finetune.trainable_params == 80 * 819_200
    assert attention_only.finetune.lora_targets == "attention"


def test_qlora_70b_fits_one_80gb_gpu_with_its_breakdown(q70):
    """The issue's 'done when': a fit verdict with its breakdown."""
    m, f = q70.memory, q70.finetune
    assert m.fits and m.per_device_bytes <= 0.9 * 80e9
    # NF4 with double quantisation: 4 + 8/64 + 32/(64·256) bits = 4.127 (Dettmers et al. 2023 Sec. 3: 0.127 bits)
    bits = 4 + 8 / 64 + 32 / (64 * 256)
    assert round(bits - 4, 3) == 0.127 and f.base_weight_bits_per_param == pytest.approx(bits)
    # frozen: the layers' linear weights in NF4, the rest (embedding, head, norms) in bf16
    frozen = L70 * LINEAR_LAYER_70 * bits / 8 + 2 * (q70.model.params - L70 * LINEAR_LAYER_70)
    assert f.frozen_weights_bytes == pytest.approx(frozen, rel=1e-9)
    assert 39e9 < frozen < 40e9  # vs 141 GB of bf16 weights
    # adapters: bf16 weights 2 B, fp32 main grads 4 B, Adam 12 B per adapter parameter
    assert f.adapter_weights_bytes == pytest.approx(2 * 207_093_760)
    assert m.breakdown.optimizer_bytes == pytest.approx(12 * 207_093_760)
    assert m.breakdown.gradients_bytes == pytest.approx(4 * 207_093_760)
    # the bf16 copy of the largest weight (gate/up, d×f) being multiplied
    assert f.dequant_buffer_bytes == pytest.approx(2 * D70 * F70)
    assert m.breakdown.weights_bytes == pytest.approx(
        f.frozen_weights_bytes + f.adapter_weights_bytes + f.dequant_buffer_bytes
    )
    # checkpointing, as QLoRA trained: a checkpointed layer keeps its bf16 input, 2·d bytes per token
    assert q70.parallelism.recompute == "full"
    assert m.breakdown.activations_bytes == pytest.approx(L70 * 2 * D70 * 8192 * q70.parallelism.micro_batch)
    assert not f.paged_optimizer_modelled
    assert any("paged optimizer not modelled" in n for n in f.notes)


def test_lora_70b_in_bf16_does_not_fit_one_gpu():
    """A second method: the same job with a 16-bit frozen base needs 2 B × 70.6B = 141 GB of weights."""
    r = qlora_70b(finetune="lora")
    assert not r.memory.fits
    assert r.finetune.frozen_weights_bytes == pytest.approx(2 * r.model.params)


def test_lora_flops_are_4n_plus_6na_plus_attention(q70):
    """Forward 2N + 2N_a, backward 2N (activation gradients only) + 4N_a; attention 12·L·(H·Q)·T unchanged."""
    n_a = 207_093_760
    attention = 12 * L70 * D70 * 8192
    assert q70.model.matmul_params == N_70
    assert q70.flops.per_token == pytest.approx(4 * N_70 + 6 * n_a + attention, rel=1e-12)
    full = 6 * N_70 + attention
    assert q70.finetune.flops_per_token_full_training == pytest.approx(full, rel=1e-12)
    assert q70.finetune.flops_ratio_to_full_training == pytest.approx((4 * N_70 + 6 * n_a + attention) / full)
    # hardware FLOPs add the recomputed forward of the layers (2·N_layers + 2·N_a + 4·L·H·Q·T), not the head
    recomputed = 2 * L70 * LINEAR_LAYER_70 + 2 * n_a + attention / 3
    assert q70.flops.hardware_per_token == pytest.approx(q70.flops.per_token + recomputed, rel=1e-12)
    # MFU counts the model FLOPs (executed once, without recomputation)
    peak = q70.hardware.peak_flops_per_s
    assert q70.efficiency.mfu == pytest.approx(q70.flops.per_token * q70.throughput.tokens_per_second / peak)


def test_full_finetune_is_training_and_epochs_multiply_tokens():
    base = dict(model="llama-3.1-8b", tokens="100M", hardware="h100-80gb", devices=8)
    plain = json.loads(estimate(**base).to_json())
    full = json.loads(estimate(**base, finetune="full").to_json())
    for section in ("flops", "memory", "time", "efficiency", "parallelism"):
        assert full[section] == plain[section], section
    assert full["finetune"]["trainable_params"] == full["model"]["params"]
    assert full["finetune"]["flops_ratio_to_full_training"] == 1.0
    assert plain["finetune"] is None and plain["inputs"]["epochs"] == 1
    three = estimate(**base, finetune="full", epochs=3)
    assert three.finetune.tokens_processed == 3 * three.finetune.dataset_tokens == 3e8
    assert three.flops.total == pytest.approx(3 * full["flops"]["total"])
    assert three.time.training_seconds == pytest.approx(3 * full["time"]["training_seconds"])


FIXED_8B = dict(tp=1, pp=1, dp=1, micro_batch=1, global_batch=8, zero=0, recompute="full")
LINEAR_LAYER_8B = 2 * 4096 * 4096 + 2 * 4096 * 1024 + 3 * 4096 * 14336  # 218,103,808 (Llama 3.1 8B)


def test_qlora_dequantisation_pass_per_matmul():
    """QLoRA = LoRA + a memory-bound pass per frozen weight per matmul call: read 4.127 bits, write 2 B of
    bf16. With full recomputation each weight is used 3 times per micro-batch (forward, activation gradient,
    recomputed forward): 3 × 2.516 B × linear parameters per layer × 32 layers ÷ bandwidth, per micro-batch."""
    base = dict(model="llama-3.1-8b", tokens="1M", hardware="h100-80gb", devices=1, lora_rank=16, **FIXED_8B)
    lora, qlora = estimate(**base, finetune="lora"), estimate(**base, finetune="qlora")
    per_param = (4 + 0.126953125) / 8 + 2
    bandwidth = lora.hardware.memory_bandwidth_bytes_per_s
    expected = 8 * 32 * 3 * per_param * LINEAR_LAYER_8B / bandwidth  # 8 micro-batches
    got = qlora.time.step_breakdown.compute_seconds - lora.time.step_breakdown.compute_seconds
    assert got == pytest.approx(expected, rel=1e-9)
    assert qlora.flops.per_token == lora.flops.per_token


def test_lora_step_costs_less_than_full_training_on_the_same_layout():
    base = dict(model="llama-3.1-8b", tokens="1M", hardware="h100-80gb", devices=1, **FIXED_8B)
    full, lora = estimate(**base), estimate(**base, finetune="lora", lora_rank=16)
    ratio = lora.flops.per_token / full.flops.per_token
    assert 0.66 < ratio < 0.75  # (4N + 6N_a + attention)/(6N + attention), N_a ≈ 0.5% of N
    assert lora.time.step_breakdown.compute_seconds < full.time.step_breakdown.compute_seconds
    # the optimizer reads and writes 30 B per trainable parameter (timing.ADAM_STEP_BYTES_PER_PARAM): adapters only
    n_a = 32 * adapters_per_layer(16, 4096, 4096, 1024, 14336)
    assert lora.finetune.trainable_params == n_a
    assert lora.time.step_breakdown.optimizer_seconds == pytest.approx(
        30 * n_a / lora.hardware.memory_bandwidth_bytes_per_s
    )


def test_data_parallel_and_zero_carry_only_the_adapters():
    """dp 8, ZeRO 1: the optimizer states (12 B) of the adapters are sharded 8 ways, the frozen bf16 base is
    whole on every device; the gradient all-reduce is the adapters' (far shorter than full training's)."""
    base = dict(model="llama-3.1-8b", tokens="100M", hardware="h100-80gb", devices=8, tp=1, pp=1, dp=8,
                micro_batch=1, global_batch=64, recompute="full")  # fmt: skip
    lora = estimate(**base, zero=1, finetune="lora", lora_rank=16)
    full = estimate(**base, zero=1)
    n_a = lora.finetune.trainable_params
    assert lora.memory.breakdown.optimizer_bytes == pytest.approx(12 * n_a / 8)
    assert lora.finetune.frozen_weights_bytes == pytest.approx(2 * lora.model.params)
    assert lora.time.step_breakdown.optimizer_seconds < 0.01 * full.time.step_breakdown.optimizer_seconds
    # ZeRO-3 shards the frozen weights too (FSDP): 1/8 of them per device
    z3 = estimate(**base, zero=3, finetune="lora", lora_rank=16)
    assert z3.finetune.frozen_weights_bytes == pytest.approx(2 * lora.model.params / 8)


def test_the_gradient_all_reduce_is_the_adapters():
    """Rank 4 on attention only: N_a = 32 · 4 · (2·(4096 + 4096) + 2·(4096 + 1024)) = 3,407,872 parameters,
    below one 40M-parameter bucket, so the whole all-reduce is exposed: a ring over 8 GPUs of NVLink,
    2·(n − 1)/n · 2 B · N_a / bw + NCCL's latency (base 8.4 µs + 2·(n − 1) hops of 3.4 µs)."""
    from flopcast.hardware import load_catalog

    n_a = 32 * 4 * (2 * (4096 + 4096) + 2 * (4096 + 1024))
    r = estimate(model="llama-3.1-8b", tokens="100M", hardware="h100-80gb", devices=8, tp=1, pp=1, dp=8,
                 micro_batch=1, global_batch=64, recompute="full", zero=0, finetune="lora", lora_rank=4,
                 lora_targets="attention")  # fmt: skip
    assert r.finetune.trainable_params == n_a == 3_407_872
    bw = load_catalog([]).get("h100-80gb").intra_node_bandwidth_bytes_per_s
    expected = 2 * 7 / 8 * 2 * n_a / bw + 8.4e-6 + 2 * 7 * 3.4e-6
    assert r.time.step_breakdown.dp_comm_exposed_seconds == pytest.approx(expected, rel=1e-9)


def test_tensor_parallel_splits_the_frozen_weights():
    base = dict(model="llama-3.1-8b", tokens="10M", hardware="h100-80gb", devices=2, pp=1, micro_batch=1,
                global_batch=8, zero=0, recompute="full", finetune="lora", lora_rank=16)  # fmt: skip
    tp1, tp2 = estimate(**base, tp=1, dp=2), estimate(**base, tp=2, dp=1)
    assert tp2.finetune.frozen_weights_bytes == pytest.approx(tp1.finetune.frozen_weights_bytes / 2)
    assert tp2.finetune.trainable_params_per_device == pytest.approx(tp1.finetune.trainable_params_per_device / 2)


def test_plan_with_lora_searches_multi_gpu_layouts():
    from flopcast.api import plan

    r = plan(model="llama-3.1-70b", tokens="100M", hardware="h100-80gb,tpu-v5p", max_devices=16, finetune="qlora",
             lora_rank=16, objective="time")  # fmt: skip
    assert r.feasible and r.best.finetune.mode == "qlora" and r.inputs.finetune == "qlora"
    assert "tpu-v5p" in r.search.hardware_skipped and "NVIDIA and AMD GPUs" in r.search.hardware_skipped["tpu-v5p"]
    lora = plan(model="llama-3.1-8b", tokens="100M", hardware="h100-80gb", max_devices=16, finetune="lora")
    assert lora.feasible and lora.best.finetune.lora_rank == 16 and lora.best.memory.fits


@pytest.mark.parametrize(
    ("extra", "fragments"),
    [
        (["--finetune", "lora", "--lora-rank", "0"], ["--lora-rank"]),
        (["--finetune", "lora", "--lora-rank", "-4"], ["--lora-rank"]),
        (["--finetune", "lora", "--lora-rank", "1.5"], ["--lora-rank"]),
        (["--finetune", "qlora", "--lora-rank", "16384"], ["--lora-rank 16384", "d_model = 8192"]),
        (["--lora-rank", "16"], ["--lora-rank without adapters", "--finetune lora"]),
        (["--finetune", "full", "--lora-rank", "16"], ["--finetune full trains every weight"]),
        (["--lora-targets", "all"], ["--lora-targets"]),
        (["--finetune", "lora", "--lora-targets", "mlp"], ["--lora-targets", "all, attention"]),
        (["--finetune", "adapter"], ["--finetune", "full, lora, qlora"]),
        (["--finetune", "qlora", "--precision", "fp32"], ["QLoRA", "bf16"]),
        (["--finetune", "lora", "--precision", "fp8"], ["fp8", "--precision bf16"]),
        (["--finetune", "qlora", "-H", "tpu-v5p"], ["NVIDIA and AMD GPUs", "--finetune lora"]),
        (["--finetune", "qlora", "-H", "m2-ultra-192gb"], ["NVIDIA and AMD GPUs"]),
        (["--epochs", "0"], ["--epochs"]),
        (["--finetune", "lora", "--sweep", "devices=8..64"], ["--sweep with fine-tuning options"]),
    ],
)
def test_bad_finetune_input_is_one_line_exit_2(cli, one_line_error, extra, fragments):
    args = ["estimate", "-m", "llama-3.1-70b", "-t", "10M", "-n", "8", *extra]
    if "--sweep" in extra:
        args.remove("-n")
        args.remove("8")
    one_line_error(cli(*args), 2, *fragments)


def test_a_measured_model_is_not_fine_tuned(cli, one_line_error):
    result = cli("estimate", "-m", "resnet-50", "--samples", "1.28e8", "-n", "8", "--finetune", "lora")
    one_line_error(result, 2, "--finetune with the measured model resnet-50", "drop --finetune")


def test_cli_table_and_json_show_the_finetune_block(cli):
    args = ["estimate", "--model", "llama-3.1-70b", "--finetune", "qlora", "--lora-rank", "16", "--hardware",
            "h100-80gb", "--devices", "1", "--tokens", "10M"]  # fmt: skip
    table = cli(*args)
    assert table.exit_code == 0, table.stderr
    assert "Fine-tuning: qlora" in table.stdout and "4.127-bit NF4" in table.stdout and "fits" in table.stdout
    doc = json.loads(cli(*args, "-f", "json").stdout)
    assert doc["schema_version"] == "2.2"
    assert doc["inputs"]["finetune"] == "qlora" and doc["inputs"]["lora_rank"] == 16
    assert doc["finetune"]["trainable_params"] == 207_093_760 and doc["memory"]["fits"] is True
