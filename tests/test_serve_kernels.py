"""`serve --compute fp8|fp4` (W8A8 / W4A4 prefill and decode GEMMs), against hand derivations.

A small dense model on a made-up profile whose bandwidth is huge, so every prefill is compute bound and its
time is FLOPs / rate; the runtime is bare (no fixed cost) and the matmul efficiency fixed, so the time can be
written down by hand: linear GEMMs at the format's peak, the attention core and the head at the 16-bit peak.
"""

from __future__ import annotations

import json

import pytest

from flopcast.errors import InvalidValue
from flopcast.hardware import HardwareProfile, load_catalog
from flopcast.models import ModelSpec
from flopcast.runtimes import RuntimeProfile
from flopcast.serving import ServeRequest, estimate_serving

L, D, H, F, V = 4, 1024, 8, 4096, 1000
SMALL = ModelSpec(name="small", layers=L, d_model=D, heads=H, ffn=F, gated_ffn=True, vocab=V, seq_len=65536)
# by hand: per layer Q, K, V, O (kv_heads = heads: 4·d²) + gated FFN (3·d·f); the head V·d
LAYER_PARAMS = 4 * D * D + 3 * D * F
HEAD_PARAMS = V * D
PEAK16, PEAK8, PEAK4 = 1e15, 2e15, 4e15
ETA = 0.5
BARE = RuntimeProfile(
    id="bare", name="test", kind="gpu", bandwidth_fraction={16: 1.0, 8: 1.0, 4: 1.0}, kernels_per_layer=0,
    kernels_outside_layers=0, launch_seconds_per_kernel=0.0, gap_seconds_per_kernel=0.0, seconds_per_forward=0.0,
    stream_fraction=1.0, compute_formats=("bf16", "fp8", "fp4"),
)  # fmt: skip


def _profile(**peaks) -> HardwareProfile:
    return HardwareProfile.model_validate(
        dict(id="test-gpu", name="t", kind="gpu", peak_flops_per_s={"bf16": PEAK16, **peaks}, memory_bytes=80e9,
             memory_bandwidth_bytes_per_s=1e18, devices_per_node=8, intra_node_bandwidth_bytes_per_s=100e9,
             inter_node_bandwidth_bytes_per_s=10e9, sources=["test"], prices_usd_per_device_hour={})
    )  # fmt: skip


def _serve(profile, compute="bf16", weights=16, prompt=2048, **kw):
    req = ServeRequest(runtime=kw.pop("runtime", BARE), compute=compute, weights_bits=weights, prompt_tokens=prompt,
                       output_tokens=64, devices=1, matmul_efficiency=kw.pop("eta", ETA), **kw)  # fmt: skip
    return estimate_serving(SMALL, profile, req)


def _hand_prefill(prompt: int, linear_peak: float) -> float:
    # FLOPs per prompt token (PaLM App. B): 2 per linear parameter, QKᵀ and A·V 4·d·(attended) per layer with
    # (P + 1)/2 tokens attended under the causal mask, the head 2·V·d
    linear = prompt * L * 2 * LAYER_PARAMS
    attention = prompt * L * 4 * D * (prompt + 1) / 2
    head = prompt * 2 * HEAD_PARAMS
    return linear / (linear_peak * ETA) + (attention + head) / (PEAK16 * ETA)


def test_the_counts_the_hand_derivation_uses():
    assert SMALL.matmul_params == L * LAYER_PARAMS + HEAD_PARAMS


@pytest.mark.parametrize("prompt", [512, 2048, 8192])
def test_fp8_prefill_is_flops_over_the_fp8_peak_by_hand(prompt):
    report = _serve(_profile(fp8=PEAK8), compute="fp8", weights=8, prompt=prompt)
    assert report.weights_bits == 8 and report.chosen.compute_dtype == "fp8"
    assert report.hardware.compute_dtype == "fp8" and report.hardware.peak_flops_per_s == PEAK8
    assert report.prefill.seconds == pytest.approx(_hand_prefill(prompt, PEAK8), rel=1e-9)
    # the other columns stay weight-only: 16-bit and 4-bit weights multiply at the 16-bit peak
    for v in report.variants:
        if v.weights_bits != 8:
            assert v.compute_dtype == "bf16"
            assert v.prefill.seconds == pytest.approx(_hand_prefill(prompt, PEAK16), rel=1e-9)


def test_bf16_is_unchanged_by_the_compute_option():
    plain = _serve(_profile(fp8=PEAK8), weights=8)
    assert plain.chosen.compute_dtype == "bf16"
    assert plain.prefill.seconds == pytest.approx(_hand_prefill(2048, PEAK16), rel=1e-9)


def test_fp4_on_hardware_with_an_fp4_peak():
    report = _serve(_profile(fp8=PEAK8, fp4=PEAK4), compute="fp4", weights=4, prompt=4096)
    assert report.chosen.compute_dtype == "fp4"
    assert report.prefill.seconds == pytest.approx(_hand_prefill(4096, PEAK4), rel=1e-9)
    # under fp4 the 8-bit column is weight-only (W8A16), not W8A8
    eight = next(v for v in report.variants if v.weights_bits == 8)
    assert eight.compute_dtype == "bf16"


def test_ttft_ratio_bf16_over_fp8_on_an_h100_is_the_peak_ratio_on_the_linear_share():
    # Llama-3.1-8B shape on one H100 (fp8 1,978.9 TFLOP/s dense, bf16 989.4: the profile's datasheet peaks), the
    # fitted GEMM curve (the same η in both: same tokens per pass), a bare runtime: at 2k-token prompts
    # the prefill is compute bound, so TTFT_bf16 / TTFT_fp8 = (F/P16) / (F_lin/P8 + F_rest/P16)
    h100 = load_catalog().get("h100-80gb")
    p16, p8 = h100.peak_flops_per_s.bf16, h100.peak_flops_per_s.fp8
    model = ModelSpec(name="l3-8b", layers=32, d_model=4096, heads=32, kv_heads=8, ffn=14336, gated_ffn=True,
                      vocab=128256, seq_len=131072)  # fmt: skip
    prompt = 2048
    layer = 2 * 4096 * 4096 + 2 * 4096 * 1024 + 3 * 4096 * 14336  # Q, O, K, V (8 KV heads of 128), gated FFN
    lin = 32 * 2 * layer
    rest = 32 * 4 * 4096 * (prompt + 1) / 2 + 2 * 128256 * 4096
    ratio = ((lin + rest) / p16) / (lin / p8 + rest / p16)
    assert 1.75 < ratio < 1.9  # close to the 2× peak ratio: attention core and head are ~11% of the FLOPs
    runs = {}
    for compute, bits in (("bf16", 16), ("fp8", 8)):
        req = ServeRequest(runtime=BARE, compute=compute, weights_bits=bits, prompt_tokens=prompt, output_tokens=64,
                           devices=1)  # fmt: skip
        runs[compute] = estimate_serving(model, h100, req)
        assert runs[compute].prefill.bound == "compute"
    assert runs["bf16"].prefill.seconds / runs["fp8"].prefill.seconds == pytest.approx(ratio, rel=1e-6)


def test_decode_under_fp8_changes_only_with_the_bytes_at_a_small_batch():
    # batch 1 decode on an H100 is memory bound: the W8A8 column's step equals the W8A16 column's (same bytes)
    h100 = load_catalog().get("h100-80gb")
    fp8 = _serve(h100, compute="fp8", weights=8, eta=None)
    w8a16 = _serve(h100, weights=8, eta=None)
    assert fp8.decode.bound == w8a16.decode.bound == "memory"
    assert fp8.decode.seconds_per_token == pytest.approx(w8a16.decode.seconds_per_token, rel=1e-12)


@pytest.mark.parametrize(
    "kw, fragments",
    [
        (dict(compute="fp8", weights=8), ("publishes no fp8", "bf16")),
        (dict(compute="fp4", weights=4), ("publishes no fp4", "fp8")),
        (dict(compute="fp8", weights=16), ("W8A8", "weights")),
        (dict(compute="fp7"), ("unknown compute format",)),
    ],
)
def test_bad_compute_is_refused(kw, fragments):
    profile = _profile() if "fp8" in fragments[0] else _profile(fp8=PEAK8)
    with pytest.raises(InvalidValue) as info:
        _serve(profile, **kw)
    for f in fragments:
        assert f in info.value.one_line()


def test_a_runtime_without_fp8_kernels_is_refused(one_line_error, cli):
    r = cli("serve", "-m", "llama-3.1-8b", "-H", "h100-80gb", "--compute", "fp8", "--runtime", "llama.cpp")
    line = one_line_error(r, 2, "--compute fp8", "llama.cpp has no fp8", "--runtime vllm")
    assert "sglang" in line


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["-H", "a100-80gb", "--compute", "fp8"], "a100-80gb publishes no fp8"),
        (["-H", "h100-80gb", "--compute", "fp4"], "h100-80gb publishes no fp4"),
        (["-H", "h100-80gb", "--compute", "fp8", "--weights", "4"], "not 4-bit"),
        (["-H", "h100-80gb", "--compute", "int2"], "unknown compute format"),
        # --plan searches the formats it is given (tests/test_serve_plan.py); an unknown one is still refused
        (["-H", "h100-80gb", "--compute", "fp6", "--plan", "--request-rate", "2", "--ttft", "1s"], "unknown compute"),
    ],
)
def test_cli_bad_compute_is_one_line_exit_2(one_line_error, cli, args, fragment):
    one_line_error(cli("serve", "-m", "llama-3.1-8b", *args), 2, fragment)


def test_cli_fp8_json_and_table(cli):
    r = cli("serve", "-m", "llama-3.1-8b", "-H", "h100-80gb", "--compute", "fp8", "-f", "json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["inputs"]["compute"] == "fp8" and doc["weights_bits"] == 8  # --weights defaults to the format's
    assert doc["hardware"]["compute_dtype"] == "fp8"
    assert [v["compute_dtype"] for v in doc["variants"]] == ["bf16", "fp8", "bf16"]
    import jsonschema

    jsonschema.validate(doc, json.loads(cli("schema", "serve").stdout))
    table = cli("serve", "-m", "llama-3.1-8b", "-H", "b200-180gb", "--compute", "fp4", "-f", "markdown")
    assert table.exit_code == 0, table.stderr
    assert "fp4 (W4A4)" in table.stdout and "fp4 peak 9,000 TFLOP/s" in table.stdout
