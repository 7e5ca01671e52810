"""Collective latency (NCCL's cost model), ZeRO-3 at scale, the interleaved pipeline schedule, and the rules the
layout search follows. Every expected figure is worked out by hand below."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flopcast.estimator.arrays import HardwareArrays, LayoutArrays, ModelArrays, Workload
from flopcast.estimator.comms import point_to_point_seconds, ring_bandwidth_bytes_per_s, ring_group
from flopcast.estimator.core import evaluate
from flopcast.estimator.efficiency import EfficiencyParams
from flopcast.hardware import load_catalog
from flopcast.layout import LayoutQuery, default_global_batch
from flopcast.models import ModelSpec
from flopcast.search import enumerate_layouts

US = 1e-6
# DGX A100 (hardware_profiles/a100-80gb.yaml): 8 GPUs per node, NVLink 300 GB/s, one 25 GB/s HDR NIC per GPU.
A100_NODE = dict(devices_per_node=8, intra_node_bandwidth_bytes_per_s=300e9, inter_node_bandwidth_bytes_per_s=25e9)
GPT3 = ModelSpec(name="gpt3-175b", layers=96, d_model=12288, heads=96, vocab=51200, seq_len=2048)


def _group(n, stride=1):
    return ring_group(
        np.array([float(n)]),
        np.array([float(stride)]),
        A100_NODE["devices_per_node"],
        A100_NODE["intra_node_bandwidth_bytes_per_s"],
        A100_NODE["inter_node_bandwidth_bytes_per_s"],
    )


# --- NCCL latency model (NVIDIA/nccl src/graph/tuning.cc, Simple protocol) ------------------------------
def test_ring_all_gather_latency_over_1536_ranks_by_hand():
    """1536 ranks on 192 nodes: n − 1 = 1535 steps, N − 1 = 191 of them cross the network.
    8.4 µs base + (1535 − 191) × 3.4 µs NVLink + 191 × 14 µs network = 8.4 + 4569.6 + 2674 = 7252.0 µs."""
    g = _group(1536)
    assert float(g.nodes[0]) == 192 and float(g.bandwidth_bytes_per_s[0]) == 200e9  # 8 NICs × 25 GB/s
    assert float(g.gather_latency_s[0]) == pytest.approx(7252.0 * US, rel=1e-12)
    # the bandwidth term: (n − 1)/n · 1e8 B / 200 GB/s on top of the latency
    assert float(g.gather_seconds(1e8)[0]) == pytest.approx(1535 / 1536 * 1e8 / 200e9 + 7252.0 * US, rel=1e-12)


def test_all_reduce_inside_a_node_is_a_ring_by_hand():
    """8 ranks on NVLink, 100 MB: ring latency 8.4 + 2·7·3.4 = 56.0 µs; bandwidth 2·7/8·1e8 B / 300 GB/s
    = 583.33 µs; total 639.33 µs (a tree would pay 2·7·28 = 392 µs of latency alone). One rank: nothing."""
    t = float(_group(8).all_reduce_seconds(1e8)[0])
    assert t == pytest.approx(56.0 * US + 2 * 7 / 8 * 1e8 / 300e9, rel=1e-12)
    assert float(_group(1).all_reduce_seconds(1e8)[0]) == 0.0


def test_small_all_reduces_take_nccls_ll_protocol_by_hand():
    """8 ranks on NVLink (300 GB/s). LL: 6.6 µs base + 2·7 steps × 0.6 µs = 15.0 µs of latency at a quarter of
    the bandwidth; Simple: 56.0 µs at all of it. 16 KiB (a decode token's all-reduce, d = 8192 in bf16): LL
    15.0 + 4·(2·7/8·16384/300e9) = 15.38 µs. The two cross where 41 µs = 3 · 2·7/8 · bytes / 300 GB/s:
    2.343 MB; above it Simple wins."""
    small = 16384
    ll = 15.0 * US + 4 * 2 * 7 / 8 * small / 300e9
    assert float(_group(8).all_reduce_seconds(small)[0]) == pytest.approx(ll, rel=1e-12)
    crossover = 41.0e-6 / (3 * 2 * 7 / 8 / 300e9)
    simple = lambda b: 56.0 * US + 2 * 7 / 8 * b / 300e9  # noqa: E731
    assert float(_group(8).all_reduce_seconds(crossover * 1.01)[0]) == pytest.approx(simple(crossover * 1.01))
    assert float(_group(8).all_reduce_seconds(crossover * 0.99)[0]) < simple(crossover * 0.99)


def test_group_bandwidth_follows_the_nodes_it_spans_by_hand():
    """DGX A100: 8 ranks adjacent stay on NVLink (300 GB/s, one node); 16 adjacent ranks span 2 nodes with
    8 members each, so 8 NICs × 25 GB/s = 200 GB/s; 2 ranks 8 apart (pipeline neighbours over tp 8) have one
    member per node: 25 GB/s on 2 nodes."""
    assert float(_group(8).bandwidth_bytes_per_s[0]) == 300e9 and float(_group(8).nodes[0]) == 1
    assert float(_group(16).bandwidth_bytes_per_s[0]) == 200e9 and float(_group(16).nodes[0]) == 2
    assert float(_group(2, stride=8).bandwidth_bytes_per_s[0]) == 25e9 and float(_group(2, stride=8).nodes[0]) == 2
    assert float(ring_bandwidth_bytes_per_s(2.0, 8.0, 8, 300e9, 25e9)) == 25e9


def test_point_to_point_adds_one_ring_step_of_latency_by_hand():
    """1 MB over 25 GB/s = 40 µs; across nodes + 8.4 µs base + 14 µs network hop; inside a node + 8.4 + 3.4."""
    assert float(point_to_point_seconds(1e6, 25e9)) == pytest.approx(40.0 * US)
    assert float(point_to_point_seconds(1e6, 25e9, True)) == pytest.approx((40.0 + 8.4 + 14.0) * US)
    assert float(point_to_point_seconds(1e6, 25e9, False)) == pytest.approx((40.0 + 8.4 + 3.4) * US)


def test_all_reduce_at_scale_takes_the_tree_by_hand():
    """1 MB over 1536 ranks (192 nodes of 8). Ring: 2·1535 = 3070 steps, 2·192 = 384 across nodes:
    8.4 + (3070 − 384)·3.4 + 384·14 = 14,516.8 µs, + 2·(1535/1536)·1e6/200e9 s. Tree: 2·((8 − 1) + log2⌊192⌋=7)·28
    = 784 µs, + (2/0.92)·1e6/200e9 s = 794.87 µs. NCCL takes the faster: the tree."""
    ring = 14516.8 * US + 2 * 1535 / 1536 * 1e6 / 200e9
    tree = 784.0 * US + 2 / 0.92 * 1e6 / 200e9
    assert float(_group(1536).all_reduce_seconds(1e6)[0]) == pytest.approx(min(ring, tree), rel=1e-12)
    assert tree < ring


def test_zero3_pays_one_ring_latency_per_layer_and_collective():
    """ZeRO-3, GPT-3 175B, no tensor/pipeline parallelism, one sequence per device (m = 1), full recompute:
    per micro-batch 3 all-gathers (forward, recomputed forward, backward) + 1 reduce-scatter per layer.
    Going from 384 to 1536 devices keeps the bandwidth (8 NICs per node) and adds, per collective,
    ring latency 7252.0 − 1808.8 µs (384 ranks, 48 nodes: 8.4 + 336·3.4 + 47·14 = 1808.8 µs), so
    4 × 96 × 5443.2 µs = 2.0902 s, plus the (n − 1)/n bandwidth term 4·2·P/200e9·(1/384 − 1/1536)."""
    catalog = load_catalog()
    hw = HardwareArrays.from_profiles([catalog.get("a100-80gb")])
    params = EfficiencyParams.load().with_values(dp_overlap=0.0)  # nothing hidden: exposed = total
    m = ModelArrays.from_specs([GPT3])
    lay = LayoutArrays.of(
        tp=[1, 1], pp=[1, 1], dp=[384, 1536], micro_batch=[1, 1], global_batch=[384, 1536], zero=[3, 3], recompute=[2]
    )
    est = evaluate(m, hw, lay, Workload(tokens=1e9), params)
    p = float(GPT3.params)  # one stage holds every parameter
    by_hand = 4 * 96 * (7252.0 - 1808.8) * US + 4 * 2 * p / 200e9 * (1 / 384 - 1 / 1536)
    assert float(est.dp_comm_exposed_seconds[1] - est.dp_comm_exposed_seconds[0]) == pytest.approx(by_hand, rel=1e-9)


# --- the interleaved schedule (Narayanan et al. 2021, Sec. 2.2.2) ----------------------------------------
def test_interleaving_divides_the_bubble_and_multiplies_the_sends():
    """Bubble (p − 1)/v × one micro-batch's time, for v× the pipeline sends; compute unchanged."""
    hw = HardwareArrays.from_profiles([load_catalog().get("a100-80gb")])
    v = np.array([1.0, 2.0, 4.0])
    lay = LayoutArrays.of(tp=8, pp=8, dp=1, micro_batch=1, global_batch=64, zero=0, recompute=1, interleave=v)
    est = evaluate(ModelArrays.from_specs([GPT3]), hw, lay, Workload(tokens=1e9))
    assert np.allclose(est.compute_seconds, est.compute_seconds[0])
    assert np.allclose(est.pp_comm_seconds / est.pp_comm_seconds[0], v)
    per_micro_batch = (est.compute_seconds + est.tp_comm_seconds + est.pp_comm_seconds) / 64
    assert np.allclose(est.bubble_seconds, (8 - 1) / v * per_micro_batch)
    assert est.step_seconds[2] < est.step_seconds[1] < est.step_seconds[0]


SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(
    layers=st.sampled_from([12, 24, 32, 40, 80, 96, 105]),
    devices=st.sampled_from([8, 64, 512, 2048]),
    global_batch=st.sampled_from([None, 512, 1536]),
)
def test_enumerated_layouts_follow_the_frameworks_rules(layers, devices, global_batch):
    """v divides the layers of a stage, v > 1 only with pp > 1 and a multiple of pp micro-batches (Megatron-LM),
    ZeRO-2/3 never paired with a pipeline (DeepSpeed's pipeline engine refuses it), and without a given
    global batch every pipeline gets at least p micro-batches."""
    model = ModelSpec(layers=layers, d_model=4096, heads=32, vocab=32000, seq_len=2048)
    c = enumerate_layouts(model, devices, devices_per_node=8, query=LayoutQuery(global_batch=global_batch))
    micro_batches = c.global_batch / (c.dp * c.micro_batch)
    per_stage = np.ceil(layers / c.pp)
    assert np.all(np.fmod(per_stage, c.interleave) == 0) and np.all((c.interleave >= 1) & (c.interleave <= 8))
    interleaved = c.interleave > 1
    assert np.all(c.pp[interleaved] > 1) and np.all(np.fmod(micro_batches[interleaved], c.pp[interleaved]) == 0)
    assert np.all((c.pp == 1) | (c.zero <= 1))
    if global_batch is None:
        assert np.all(micro_batches >= c.pp)
    # every (layout, v) pair appears once
    rows = np.stack(c, axis=1)
    assert len(np.unique(rows, axis=0)) == len(rows)


def test_a_fixed_zero_stage_and_pipeline_are_respected():
    model = ModelSpec(layers=32, d_model=4096, heads=32, vocab=32000, seq_len=2048)
    c = enumerate_layouts(model, 64, devices_per_node=8, query=LayoutQuery(pp=4, zero=3, global_batch=512))
    assert len(c.tp) and np.all(c.pp == 4) and np.all(c.zero == 3)


def test_default_global_batch_is_a_power_of_two_of_sequences():
    """The published batch sizes count M as 2^20 tokens: GPT-3 125M used 0.5M tokens = 256 × 2048 (Brown et al.
    2020, Table 2.1), 1.3B 1M = 512 × 2048, 6.7B 2M = 1024 × 2048; LLaMA 4M = 2048 × 2048 and Llama 2 4M =
    1024 × 4096 (Touvron et al. 2023a/b)."""
    assert default_global_batch(125e6, 2048) == 256
    assert default_global_batch(1.3e9, 2048) == 512
    assert default_global_batch(6.7e9, 2048) == 1024
    assert default_global_batch(65e9, 2048) == 2048
    assert default_global_batch(70e9, 4096) == 1024


# --- CLI -------------------------------------------------------------------------------------------------
GPT3_ARGS = ["estimate", "--model", "gpt3-175b", "--tokens", "300B", "--devices", "1024", "--format", "json"]


def test_interleave_is_reported_and_can_be_fixed(cli):
    doc = json.loads(cli(*GPT3_ARGS, "--pp", "8", "--interleave", "4").stdout)
    assert doc["parallelism"]["interleave"] == 4 and doc["inputs"]["interleave"] == 4
    searched = json.loads(cli(*GPT3_ARGS, "--pp", "8").stdout)["parallelism"]
    assert 1 <= searched["interleave"] <= 8 and 12 % searched["interleave"] == 0  # 96 layers / 8 stages


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--pp", "8", "--interleave", "5"], ["--interleave 5", "12 layers"]),
        (["--pp", "1", "--interleave", "2"], ["--interleave 2", "--pp"]),
        (["--interleave", "0"], ["--interleave"]),
    ],
)
def test_bad_interleave_is_one_line_exit_2(cli, one_line_error, args, fragments):
    one_line_error(cli(*GPT3_ARGS, *args), 2, *fragments)


def test_pipeline_stages_are_balanced_around_the_head():
    """BLOOM-like: 70 layers on 12 stages, a layer takes 1, the 250k-vocabulary head 1.1. ⌈70/12⌉ = 6 layers
    plus the head on the last stage take 7.1; moving two layers off it leaves 4 + 1.1 = 5.1 there and
    ⌈66/11⌉ = 6 on the others: the slowest stage takes 6, a factor 6/7.1. With 96 layers on 8 stages
    (Megatron-LM's even split) and a small head (0.2), moving a layer only overloads another stage
    (⌈85/7⌉ = 13 > 12.2): no change. One stage: nothing to balance."""
    from flopcast.estimator.timing import stage_balance

    got = stage_balance(np.array([70.0, 96.0, 70.0]), np.array([12.0, 8.0, 1.0]), 1.0, np.array([1.1, 0.2, 1.1]))
    assert got == pytest.approx([6 / 7.1, 1.0, 1.0])
