"""ModelSpec's MoE-with-shared-experts, dense/MoE interleaving, MLA attention, sliding-window layers and the
smaller counting fields (norms_per_layer, qk_norm, qkv_bias): every count by hand from the released configs."""

import pytest

from flopcast.errors import InvalidValue
from flopcast.models import ModelSpec, _spec
from flopcast.presets import get_preset, list_presets
from flopcast.serving_memory import kv_cache_bytes_per_token, quantized_params


def test_deepseek_v3_by_hand():
    # Released config deepseek-ai/DeepSeek-V3: hidden 7168, 61 layers, 128 heads, q_lora_rank 1536,
    # kv_lora_rank 512, qk_nope 128, qk_rope 64, v_head 128, dense FFN 18432 (first 3 layers), experts of 2048:
    # 256 routed (top-8) + 1 shared, vocabulary 129280, untied.
    d, h = 7168, 128
    q = d * 1536 + 1536 + 1536 * h * (128 + 64)  # q_a_proj, q_a_layernorm, q_b_proj
    kv = d * (512 + 64) + 512 + 512 * h * (128 + 128)  # kv_a_proj_with_mqa, kv_a_layernorm, kv_b_proj
    o = h * 128 * d
    attention = q + kv + o
    norms = 2 * d
    dense_layer = attention + 3 * d * 18432 + norms
    expert = 3 * d * 2048
    moe_layer = attention + (256 + 1) * expert + d * 256 + norms
    embeddings = 2 * 129280 * d + d  # + final norm
    spec = get_preset("deepseek-v3")
    assert spec.attention_params_per_layer == attention
    assert (spec.dense_layers, spec.moe_layers) == (3, 58)
    assert spec.params == 3 * dense_layer + 58 * moe_layer + embeddings
    active_moe_layer = attention + (8 + 1) * expert + d * 256 + norms
    assert spec.active_params == 3 * dense_layer + 58 * active_moe_layer + embeddings
    assert spec.params == pytest.approx(671e9, rel=0.001)  # DeepSeek-V3 report: 671B total
    assert spec.active_params == pytest.approx(37e9, rel=0.02)  # ... 37B activated per token
    # MLA caches the 512-wide latent and the 64-wide shared rotary key: 576 elements per token per layer.
    assert spec.kv_cache_width == 576
    assert kv_cache_bytes_per_token(spec, 16) == 61 * 576 * 2
    # The matmuls leave out MLA's two latent norms (and the other norms, and the input embedding).
    latent_norms = 1536 + 512
    assert spec.matmul_params == (
        61 * (attention - latent_norms) + 3 * 3 * d * 18432 + 58 * (9 * expert + d * 256) + 129280 * d
    )


def test_deepseek_v2_lite_has_no_query_compression():
    # deepseek-ai/DeepSeek-V2-Lite: hidden 2048, 16 heads, q_lora_rank null → q_proj 2048 × 16·192.
    spec = get_preset("deepseek-v2-lite")
    q = 2048 * 16 * 192
    kv = 2048 * 576 + 512 + 512 * 16 * 256
    assert spec.attention_params_per_layer == q + kv + 16 * 128 * 2048
    assert (spec.dense_layers, spec.moe_layers, spec.shared_experts) == (1, 26, 2)
    assert spec.params == pytest.approx(15.7e9, rel=0.001)  # DeepSeek-V2 paper: 15.7B
    assert spec.matmul_params == pytest.approx(2.4e9, rel=0.03)  # ... 2.4B activated (no embedding lookup)


def test_llama_4_maverick_interleaves_dense_and_moe_layers_with_a_shared_expert():
    # meta-llama/Llama-4-Maverick-17B-128E text_config: 48 layers, interleave_moe_layer_step 2 → layers 2, 4, ..
    # 48 (1-based) MoE with 128 routed experts of 8192 (top-1) + 1 shared; the other 24 dense with FFN 16384.
    d = 5120
    attention = 2 * d * 5120 + 2 * d * 1024
    expert, dense_ffn, norms = 3 * d * 8192, 3 * d * 16384, 2 * d
    moe_layer = attention + 129 * expert + d * 128 + norms
    dense_layer = attention + dense_ffn + norms
    outside = 2 * 202048 * d + d
    spec = get_preset("llama-4-maverick")
    assert (spec.moe_layers, spec.dense_layers) == (24, 24)
    assert spec.params == 24 * moe_layer + 24 * dense_layer + outside
    active = 24 * (attention + 2 * expert + d * 128 + norms) + 24 * dense_layer + outside
    assert spec.active_params == active
    assert spec.active_params == pytest.approx(17e9, rel=0.02)  # Meta: 17B active
    assert sum(spec.param_breakdown().values()) == spec.params
    assert sum(spec.param_breakdown(active=True).values()) == spec.active_params


def test_llama_4_scout_every_layer_moe_and_chunked_attention_recorded():
    spec = get_preset("llama-4-scout")
    assert (spec.moe_layers, spec.dense_layers, spec.shared_experts) == (48, 0, 1)
    assert spec.active_params == pytest.approx(17e9, rel=0.02)
    assert (spec.local_attention_layers, spec.global_attention_layers) == (36, 12)  # 3 chunked : 1 global


def test_moe_layer_placement_rule():
    base = {"layers": 10, "d_model": 64, "heads": 1, "experts": 4, "active_experts": 1}
    assert ModelSpec(**base).moe_layers == 10
    assert ModelSpec(**base, first_dense_layers=3).moe_layers == 7
    assert ModelSpec(**base, moe_layer_interval=2).moe_layers == 5  # layers 1, 3, 5, 7, 9 (0-based)
    assert ModelSpec(**base, moe_layer_interval=3, first_dense_layers=3).moe_layers == 2  # layers 5 and 8


def test_moe_layers_average_into_the_mean_layer():
    spec = get_preset("deepseek-v3")
    assert spec.params_per_layer * spec.layers == pytest.approx(spec.non_embedding_params - 7168)


def test_gemma_norms_and_sliding_pattern():
    # Gemma 2 9B: 4 RMSNorms of 3584 per layer; 21 local (4096 window) + 21 global layers.
    g2 = get_preset("gemma-2-9b")
    assert g2.param_breakdown()["norms"] == 42 * 4 * 3584 + 3584
    assert (g2.local_attention_layers, g2.global_attention_layers) == (21, 21)
    # Gemma 3 27B: plus q_norm and k_norm of head_dim 128; 62 layers, every 6th global → 10 global, 52 local.
    g3 = get_preset("gemma-3-27b")
    assert g3.param_breakdown()["norms"] == 62 * (4 * 5376 + 2 * 128) + 5376
    assert (g3.local_attention_layers, g3.global_attention_layers) == (52, 10)
    # A 32K context: local layers cache 1024 tokens, global ones all 32768.
    per_token = 2 * 16 * 128
    assert g3.kv_cache_elements_per_sequence(32768) == per_token * (10 * 32768 + 52 * 1024)
    assert g3.kv_cache_elements_per_sequence(512) == per_token * 62 * 512


def test_mistral_every_layer_local():
    spec = get_preset("mistral-7b")
    assert (spec.local_attention_layers, spec.global_attention_layers) == (32, 0)
    assert spec.kv_cache_elements_per_sequence(8192) == 32 * 2 * 1024 * 4096


def test_qwen_qkv_bias_and_qk_norm_by_hand():
    # Qwen2.5-7B: biases on Q (3584) and K, V (512 each) only.
    spec = get_preset("qwen2.5-7b")
    assert spec.attention_params_per_layer == 2 * 3584 * 3584 + 2 * 3584 * 512 + 3584 + 2 * 512
    assert spec.params == 7_615_616_512  # the safetensors total of Qwen/Qwen2.5-7B
    assert get_preset("qwen3-8b").params == 8_190_735_360  # ... of Qwen/Qwen3-8B (q_norm, k_norm of 128)


def test_qwen3_moe_active():
    spec = get_preset("qwen3-30b-a3b")
    assert spec.expert_ffn_size == 768 and spec.moe_layers == 48
    assert spec.active_params == pytest.approx(3.3e9, rel=0.02)  # Qwen: 3.3B activated


@pytest.mark.parametrize("preset", [s.name for s in list_presets()])
def test_every_preset_breakdown_sums_and_matmuls_fit_inside(preset):
    spec = get_preset(preset)
    assert sum(spec.param_breakdown().values()) == spec.params
    assert sum(spec.param_breakdown(active=True).values()) == spec.active_params
    assert spec.matmul_params <= spec.active_params + spec.vocab * spec.d_model
    assert spec.block_matmul_params(active=True) <= spec.block_matmul_params()


def test_uniform_models_count_as_before():
    # The counting refactor keeps the old formula where layers are uniform (Mixtral, Llama 2).
    m = get_preset("mixtral-8x7b")
    assert quantized_params(m) == 32 * (m.attention_params_per_layer + 8 * m.ffn_params_per_expert)
    assert quantized_params(m, active=True) == 32 * (m.attention_params_per_layer + 2 * m.ffn_params_per_expert)
    assert m.params_per_layer * 32 + 2 * 32000 * 4096 + 4096 == m.params
    llama = get_preset("llama-2-7b")
    assert kv_cache_bytes_per_token(llama, 16) == 2 * 32 * 32 * 128 * 2


@pytest.mark.parametrize(
    ("fields", "needle"),
    [
        ({"shared_experts": 1}, "shared_experts needs experts > 1"),
        ({"moe_layer_interval": 2}, "moe_layer_interval needs experts > 1"),
        ({"experts": 4, "active_experts": 1, "first_dense_layers": 2}, "no MoE layer"),
        ({"attention": "mla", "kv_lora_rank": 64}, "attention mla needs qk_rope_head_dim"),
        ({"kv_lora_rank": 64}, "kv_lora_rank needs attention mla"),
        (
            {"attention": "mla", "kv_lora_rank": 8, "qk_rope_head_dim": 8, "qk_nope_head_dim": 8, "v_head_dim": 8,
             "kv_heads": 1},
            "leave head_dim and kv_heads out",
        ),
        ({"local_layers_per_global": 1}, "needs sliding_window"),
    ],
)  # fmt: skip
def test_invalid_new_fields_are_one_line(fields, needle):
    with pytest.raises(InvalidValue) as info:
        _spec(layers=2, d_model=64, heads=2, **fields)
    assert needle in info.value.one_line() and "\n" not in info.value.one_line()
