"""Issue 14: context parallelism, expert parallelism, uneven pipeline stages, FP8 and FSDP with pipelines.

Expected figures are derived by hand in the tests (element counts, bytes, link bandwidths from the profiles'
datasheet values) or taken from papers (Dubey et al. 2024, DeepSeek-AI 2024), never from the code under test."""

from __future__ import annotations

import json

import numpy as np
import pytest

from flopcast.estimator.arrays import HardwareArrays, LayoutArrays, ModelArrays, Workload
from flopcast.estimator.core import evaluate
from flopcast.estimator.efficiency import EfficiencyParams
from flopcast.hardware import load_catalog
from flopcast.layout import Layout, LayoutQuery, check_layout
from flopcast.model_resolve import resolve_model
from flopcast.search import enumerate_layouts

PARAMS = EfficiencyParams.load()
H100 = load_catalog().get("h100-80gb")


def _estimate(spec, layout: Layout, precision: str = "bf16", profile=H100):
    hw = HardwareArrays.from_profiles([profile], precision=precision, params=PARAMS)
    work = Workload(tokens=1e12, precision=precision)
    est = evaluate(ModelArrays.from_specs([spec]), hw, layout.arrays(), work, PARAMS)
    return est.row(0)


# --- context parallelism ------------------------------------------------------------------------------------


def test_context_parallelism_halves_activation_memory_at_cp_2():
    """Llama 3 8B, seq 8192, tp 1, no recomputation, bf16, fused attention. One layer keeps per token
    (Korthikanti et al. 2022 with the layer's own widths, 2 B each): attention 2·(4096 + 4096 + 2·1024 + 4096)
    = 28,672 B, SwiGLU MLP 2·4096 + 3·2·14,336 = 94,208 B, two norm inputs 2·2·4096 = 16,384 B: 139,264 B.
    32 layers × 8192 tokens = 36.5 GB on one device; cp 2 holds half of every sequence: 18.3 GB."""
    spec = resolve_model("llama-3-8b")
    assert spec.seq_len == 8192
    per_token_layer = 2 * (4096 + 4096 + 2 * 1024 + 4096) + (2 * 4096 + 3 * 2 * 14336) + 2 * 2 * 4096
    assert per_token_layer == 139_264
    whole = per_token_layer * 32 * 8192
    base = Layout(dp=8, micro_batch=1, global_batch=64, recompute="none")
    one = _estimate(spec, base)
    two = _estimate(spec, base.replace(dp=4, cp=2))
    assert one["activations_bytes"] == pytest.approx(whole, rel=1e-9)
    assert two["activations_bytes"] == pytest.approx(whole / 2, rel=1e-9)


def test_context_parallel_ring_volume_is_hidden_by_long_attention_and_shows_at_short():
    """The K/V ring (3 volumes of cp − 1 steps of the local K, V block per layer) overlaps the layer's
    attention: at 131k tokens it hides completely, at 2k tokens with cp 8 over nodes it cannot."""
    long = resolve_model("llama-3.1-405b", seq_len=131072)
    row = _estimate(long, Layout(tp=8, cp=16, pp=16, dp=8, micro_batch=1, global_batch=128, recompute="full"))
    assert row["cp_comm_seconds"] == 0.0
    short = resolve_model("llama-3-8b", seq_len=2048)
    row = _estimate(short, Layout(tp=1, cp=16, dp=1, micro_batch=1, global_batch=16, recompute="none"))
    assert row["cp_comm_seconds"] > 0.0


def test_estimate_searches_context_parallelism_for_long_sequences(cli):
    out = cli(
        "estimate", "-m", "llama-3.1-405b", "-t", "1T", "-H", "h100-80gb", "--devices", "16384",
        "--seq-len", "131072", "--format", "json",
    )  # fmt: skip
    assert out.exit_code == 0, out.stderr
    assert json.loads(out.stdout)["parallelism"]["cp"] > 1
    short = cli("estimate", "-m", "llama-2-7b", "-t", "1T", "--devices", "64", "--format", "json")
    assert json.loads(short.stdout)["parallelism"]["cp"] == 1  # 4096 tokens: not searched


def test_llama3_405b_128k_stage_layout_of_dubey_et_al_is_expressed_and_fits(cli):
    """Dubey et al. 2024, Table 4, the 128k stage: 16,384 H100s, TP 8, CP 16, PP 16 (126 layers: the fullest
    stage 8), seq 131,072, 16M tokens per batch (128 sequences). The paper ran it, so it must fit in 80 GB."""
    out = cli(
        "estimate", "-m", "llama-3.1-405b", "-t", "1T", "-H", "h100-80gb", "--devices", "16384",
        "--seq-len", "131072", "--tp", "8", "--cp", "16", "--pp", "16", "--global-batch", "128", "--format", "json",
    )  # fmt: skip
    assert out.exit_code == 0, out.stderr
    report = json.loads(out.stdout)
    lay = report["parallelism"]
    assert (lay["tp"], lay["cp"], lay["pp"], lay["dp"]) == (8, 16, 16, 8)
    assert lay["global_batch_tokens"] == 128 * 131072 == 16_777_216
    assert report["memory"]["fits"]
    # table form names the context-parallel degree
    table = cli(
        "estimate", "-m", "llama-3.1-405b", "-t", "1T", "-H", "h100-80gb", "--devices", "16384",
        "--seq-len", "131072", "--tp", "8", "--cp", "16", "--pp", "16", "--global-batch", "128",
    )  # fmt: skip
    assert "cp 16" in table.stdout


# --- expert parallelism -------------------------------------------------------------------------------------


def test_all_to_all_time_matches_a_hand_derivation():
    """Mixtral 8x7B (d 4096, top-2, 32 MoE layers) at seq 4096, tp 1, ep 8 inside one 8-GPU H100 node, bf16.
    One all-to-all moves 2 B × 4096 tokens × 2 experts × 4096 × 1.1 (busiest expert) = 73.8 MB per device, of
    which 7/8 leave it over NVLink at 450 GB/s per direction: 143.5 µs, plus NCCL's 8.4 µs base latency and a
    3.4 µs NVLink hop. 4 all-to-alls per layer (dispatch and combine, forward and backward) × 32 layers ×
    8 micro-batches (global batch 64 over dp 8)."""
    spec = resolve_model("mixtral-8x7b", seq_len=4096)
    bytes_per_rank = 2 * 4096 * 2 * 4096 * 1.1
    one = bytes_per_rank * 7 / 8 / 450e9 + 8.4e-6 + 3.4e-6
    expected = 4 * 32 * 8 * one
    row = _estimate(spec, Layout(dp=8, ep=8, micro_batch=1, global_batch=64, recompute="none"))
    assert row["ep_comm_seconds"] == pytest.approx(expected, rel=1e-9)
    assert _estimate(spec, Layout(dp=8, ep=1, micro_batch=1, global_batch=64))["ep_comm_seconds"] == 0.0


def test_expert_parallelism_shards_the_experts_states():
    """Mixtral 8x7B's routed experts: 32 layers × 8 experts × 3 × 4096 × 14,336 = 45.1 B parameters of its
    46.7 B. With ep 8 each device keeps one expert per layer: the weights (2 B/param, ZeRO 0) drop by
    7/8 of the experts' 2 × 45.1 GB = 78.9 GB."""
    spec = resolve_model("mixtral-8x7b", seq_len=4096)
    experts = 32 * 8 * 3 * 4096 * 14336
    base = Layout(dp=8, micro_batch=1, global_batch=64, zero=0, recompute="full")
    one = _estimate(spec, base)
    eight = _estimate(spec, base.replace(ep=8))
    assert one["weights_bytes"] - eight["weights_bytes"] == pytest.approx(2 * experts * 7 / 8, rel=1e-9)


def test_expert_parallelism_is_searched_for_moe_models_only():
    mixtral = resolve_model("mixtral-8x7b", seq_len=4096)
    cands = enumerate_layouts(mixtral, 64, devices_per_node=8, query=LayoutQuery(global_batch=256))
    assert set(np.unique(cands.ep)) == {1.0, 2.0, 4.0, 8.0}
    assert np.all(np.fmod(cands.dp * cands.cp, cands.ep) == 0)  # the expert group lies inside dp·cp
    dense = enumerate_layouts(resolve_model("llama-2-7b"), 64, devices_per_node=8)
    assert set(np.unique(dense.ep)) == {1.0}


def test_deepseek_v3_counts_of_its_paper():
    """DeepSeek-AI 2024, DeepSeek-V3 Technical Report: 671B total parameters, 37B activated per token."""
    spec = resolve_model("deepseek-v3")
    assert spec.params == pytest.approx(671e9, rel=0.01)
    assert spec.active_params == pytest.approx(37e9, rel=0.02)  # 37.55B: the paper rounds


# --- FP8 ----------------------------------------------------------------------------------------------------


def test_fp8_runs_the_linear_gemms_faster_but_not_the_attention_or_head():
    """On an H100 (fp8 peak 2× bf16) FP8 makes the step faster, but less than 2×: the attention core and the
    head stay in bf16 and the casts add memory traffic."""
    spec = resolve_model("llama-3-8b")
    lay = Layout(tp=1, dp=8, micro_batch=1, global_batch=64, recompute="none")
    bf16 = _estimate(spec, lay, "bf16")
    fp8 = _estimate(spec, lay, "fp8")
    assert bf16["compute_seconds"] / 2 < fp8["compute_seconds"] < bf16["compute_seconds"]


def test_fp8_keeps_weight_copies_and_saves_gemm_inputs_in_fp8():
    """Weights: + 2 B per parameter (the FP8 weight and its transpose). Activations: the GEMM inputs
    (QKV in d, O in q, FFN in d, down-projection in f = 4096 + 4096 + 4096 + 14,336 = 26,624 per token per
    layer) kept at 1 B instead of 2: − 26,624 B per token per layer × 32 layers × 8192 tokens."""
    spec = resolve_model("llama-3-8b")
    lay = Layout(tp=1, dp=8, micro_batch=1, global_batch=64, zero=0, recompute="none")
    bf16 = _estimate(spec, lay, "bf16")
    fp8 = _estimate(spec, lay, "fp8")
    assert fp8["weights_bytes"] - bf16["weights_bytes"] == pytest.approx(2 * spec.params, rel=1e-9)
    saved = (4096 + 4096 + 4096 + 14336) * 32 * 8192
    assert bf16["activations_bytes"] - fp8["activations_bytes"] == pytest.approx(saved, rel=1e-9)


def test_fp8_on_hardware_without_an_fp8_peak_is_one_line(cli, one_line_error):
    out = cli("estimate", "-m", "llama-2-7b", "-t", "1T", "-H", "a100-80gb", "--devices", "8", "--precision", "fp8")
    one_line_error(out, 2, "publishes no fp8 peak")


# --- FSDP with pipelines, uneven interleaving ------------------------------------------------------------------


def test_fsdp_with_pipeline_stages_costs_what_zero_2_costs():
    """torchtitan keeps a stage's weights gathered through the step under pipelining (reshard_after_forward
    off): per step one gather and per micro-batch a reduce-scatter, i.e. ZeRO-2's traffic and memory."""
    spec = resolve_model("llama-2-13b")
    lay = Layout(tp=1, pp=4, dp=16, micro_batch=1, global_batch=256, zero=3, recompute="full")
    three, two = _estimate(spec, lay), _estimate(spec, lay.replace(zero=2))
    assert three["step_seconds"] == pytest.approx(two["step_seconds"], rel=1e-12)
    assert three["memory_bytes"] == pytest.approx(two["memory_bytes"], rel=1e-12)
    assert _estimate(spec, lay.replace(pp=1, dp=64))["zero3_buffer_bytes"] > 0  # plain FSDP gathers per layer


def test_interleaving_works_with_uneven_stages_as_llama3_ran_them():
    """126 layers on 16 stages: the fullest holds 8, so 2, 4 or 8 virtual stages fit (the first and last
    chunks one layer short); 3 does not divide 8."""
    spec = resolve_model("llama-3.1-405b")
    check_layout(spec, 16384, LayoutQuery(tp=8, pp=16, dp=128, interleave=4))
    from flopcast.errors import InvalidLayout

    with pytest.raises(InvalidLayout, match="8 layers of the fullest"):
        check_layout(spec, 16384, LayoutQuery(tp=8, pp=16, dp=128, interleave=3))


# --- bad input: one line, exit 2 ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["-m", "llama-2-7b", "--devices", "64", "--cp", "3"], ["--cp 3", "2·cp = 6"]),
        (["-m", "mixtral-8x7b", "--devices", "64", "--ep", "3"], ["--ep 3", "8 routed experts"]),
        (["-m", "llama-2-7b", "--devices", "64", "--ep", "2"], ["--ep 2", "dense"]),
        (["-m", "mixtral-8x7b", "--devices", "4", "--ep", "8"], ["--ep 8", "--devices 4"]),
        (["-m", "mixtral-8x7b", "--devices", "64", "--dp", "2", "--ep", "4", "--tp", "8"], ["dp·cp = 2"]),
        (["-m", "llama-2-7b", "--devices", "64", "--cp", "2", "-H", "v100-32gb"], ["--cp 2", "fused"]),
    ],
)
def test_bad_context_and_expert_options_are_one_line(cli, one_line_error, args, fragments):
    one_line_error(cli("estimate", "-t", "1T", *args), 2, *fragments)


def test_plan_takes_the_new_degrees_and_reproduces_them():
    """plan's best block reproduces with every layout field (cp and ep included) in its flags."""
    from flopcast.api import plan

    report = plan(model="mixtral-8x7b", tokens="100B", hardware="h100-80gb", max_devices=64, seq_len=4096)
    best = report.best
    assert best is not None
    assert best.parallelism.ep >= 1 and best.parallelism.cp == 1
    arrays = LayoutArrays.of(**{k: [getattr(best.parallelism, k)] for k in ("tp", "pp", "dp", "cp", "ep")})
    assert int(arrays.devices[0]) == best.inputs.devices


# --- HSDP: shard within a group, replicate across --------------------------------------------------------------


def test_hsdp_shards_the_states_within_the_group_only():
    """Llama 2 7B under ZeRO-3 on 64 data-parallel ranks: full sharding keeps 2·P/64 bytes of 16-bit weights per
    device; a shard group of 8 (one node) keeps 2·P/8 and replicates them across the 8 groups."""
    spec = resolve_model("llama-2-7b")
    full = Layout(dp=64, micro_batch=1, global_batch=512, zero=3, recompute="full")
    hybrid = full.replace(shard_group=8)
    assert _estimate(spec, full)["weights_bytes"] == pytest.approx(2 * spec.params / 64, rel=1e-9)
    assert _estimate(spec, hybrid)["weights_bytes"] == pytest.approx(2 * spec.params / 8, rel=1e-9)
    assert _estimate(spec, hybrid)["optimizer_bytes"] == pytest.approx(12 * spec.params / 8, rel=1e-9)


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--dp", "64", "--shard-group", "3"], ["--shard-group 3", "dp·cp = 64"]),
        (["--zero", "0", "--shard-group", "8"], ["--shard-group 8", "ZeRO stage 0"]),
    ],
)
def test_bad_shard_groups_are_one_line(cli, one_line_error, args, fragments):
    one_line_error(cli("estimate", "-m", "llama-2-7b", "-t", "1T", "--devices", "64", *args), 2, *fragments)


def test_shard_group_reaches_the_json_and_the_flags(cli):
    out = cli(
        "estimate", "-m", "llama-2-7b", "-t", "1T", "--devices", "64", "--zero", "3", "--shard-group", "8",
        "--format", "json",
    )  # fmt: skip
    assert out.exit_code == 0, out.stderr
    assert json.loads(out.stdout)["parallelism"]["shard_group"] == 8
    assert "--shard-group 8" in Layout(dp=64, zero=3, shard_group=8).flags()


def test_a_measured_collective_latency_replaces_ncclls_model_inside_a_node():
    """A profile measured by ``bench --collectives`` (collective_latency_s = 1 ms) adds, per tensor-parallel
    all-reduce of an 8-GPU group, 1 ms less NCCL's modelled 8.4 µs + 2·7·3.4 µs: 4 all-reduces per layer ×
    32 layers × 8 micro-batches of Llama 2 7B at tp 8 (global batch 64 over dp 8)."""
    spec = resolve_model("llama-2-7b")
    measured = H100.model_copy(update={"collective_latency_s": 1e-3})
    lay = Layout(tp=8, dp=8, micro_batch=1, global_batch=64, recompute="none")
    base, slow = _estimate(spec, lay), _estimate(spec, lay, profile=measured)
    shift = 1e-3 - (8.4e-6 + 2 * 7 * 3.4e-6)
    assert slow["tp_comm_seconds"] - base["tp_comm_seconds"] == pytest.approx(4 * 32 * 8 * shift, rel=1e-9)
