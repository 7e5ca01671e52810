"""Model presets, the size → shape rule and --model resolution, against published counts and hand calculations.

Every expected parameter count below is written here with its source (paper + table, or model card), never
read from the presets file and never copied from the code's output.
"""

import json
import math
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from flopcast.cli import app
from flopcast.errors import ConflictingOptions, InvalidValue, RuntimeFailure, UnknownModel, flag_style
from flopcast.model_resolve import resolve_model
from flopcast.model_sizes import shape_for_size
from flopcast.models import ModelSpec
from flopcast.presets import PresetDetails, _Registry, _registry, get_preset, list_presets, preset_details

PRESET_TOLERANCE = 0.01  # DESIGN §3: presets reproduce published counts within 1%
SIZE_TOLERANCE = 0.02  # the size rule promises 2%

# (preset, published total parameters, where it is published)
PUBLISHED_PARAMS = [
    # Brown et al. 2020, "Language Models are Few-Shot Learners": Table 2.1 prints 175.0B for the largest model,
    # Appendix D Table D.1 lists "Params (M)" for all eight (Table 2.1 rounds the small ones, e.g. 350M).
    ("gpt3-175b", 175.0e9, "Brown et al. 2020, Table 2.1"),
    ("gpt3-175b", 174_600e6, "Brown et al. 2020, Table D.1"),
    ("gpt3-125m", 125e6, "Brown et al. 2020, Table D.1"),
    ("gpt3-350m", 356e6, "Brown et al. 2020, Table D.1"),
    ("gpt3-760m", 760e6, "Brown et al. 2020, Table D.1"),
    ("gpt3-1.3b", 1_320e6, "Brown et al. 2020, Table D.1"),
    ("gpt3-2.7b", 2_650e6, "Brown et al. 2020, Table D.1"),
    ("gpt3-6.7b", 6_660e6, "Brown et al. 2020, Table D.1"),
    ("gpt3-13b", 12_850e6, "Brown et al. 2020, Table D.1"),
    # Touvron et al. 2023a, "LLaMA", Table 2.
    ("llama-7b", 6.7e9, "LLaMA Table 2"),
    ("llama-13b", 13.0e9, "LLaMA Table 2"),
    ("llama-33b", 32.5e9, "LLaMA Table 2"),
    ("llama-65b", 65.2e9, "LLaMA Table 2"),
    # Llama 2: Hugging Face model pages' safetensors totals (the paper only says 7B/13B/70B).
    ("llama-2-7b", 6.74e9, "HF meta-llama/Llama-2-7b-hf"),
    ("llama-2-13b", 13.0e9, "Touvron et al. 2023b, Table 1"),
    ("llama-2-70b", 68_976_648_192, "HF meta-llama/Llama-2-70b-hf"),
    # Llama 3: HF model pages (8.03B, 70.6B); Dubey et al. 2024 Table 3 (405B).
    ("llama-3-8b", 8.03e9, "HF meta-llama/Meta-Llama-3-8B"),
    ("llama-3-70b", 70.6e9, "HF meta-llama/Meta-Llama-3-70B"),
    ("llama-3-405b", 405e9, "Dubey et al. 2024, Table 3"),
    # BERT paper §3 says 340M, rounded: the encoder+embeddings+pooler count to 335.1M (1.4% below 340M, outside
    # 1%). The most precise published figure found: the HF model card google-bert/bert-large-uncased, "336M".
    ("bert-large", 336e6, "HF google-bert/bert-large-uncased model card"),
    # Biderman et al. 2023, "Pythia", Table 1: exact totals.
    ("pythia-70m", 70_426_624, "Pythia Table 1"),
    ("pythia-160m", 162_322_944, "Pythia Table 1"),
    ("pythia-410m", 405_334_016, "Pythia Table 1"),
    ("pythia-1b", 1_011_781_632, "Pythia Table 1"),
    ("pythia-1.4b", 1_414_647_808, "Pythia Table 1"),
    ("pythia-2.8b", 2_775_208_960, "Pythia Table 1"),
    ("pythia-6.9b", 6_857_302_016, "Pythia Table 1"),
    ("pythia-12b", 11_846_072_320, "Pythia Table 1"),
    ("gpt-neox-20b", 20_556_201_984, "EleutherAI/gpt-neox-20b model card"),
    ("mpt-7b", 6.7e9, "MosaicML 2023, Introducing MPT-7B"),
    ("opt-175b", 175e9, "Zhang et al. 2022, OPT, Table 1"),
    ("bloom-176b", 176_247_271_424, "BigScience 2022, BLOOM, Table 3"),
    ("palm-540b", 540.35e9, "Chowdhery et al. 2022, PaLM, Table 1"),
    # Mistral AI, "Mixtral of experts" (Dec 2023): 46.7B total, 12.9B used per token.
    ("mixtral-8x7b", 46.7e9, "Mistral AI announcement"),
    # Llama 3.1/3.2/3.3: HF model pages (8.03B, 70.6B) and Meta's Llama 3.2 model card (1.23B, 3.21B).
    ("llama-3.1-8b", 8.03e9, "HF meta-llama/Llama-3.1-8B"),
    ("llama-3.1-70b", 70.6e9, "HF meta-llama/Llama-3.1-70B"),
    ("llama-3.2-1b", 1.23e9, "Meta, Llama 3.2 model card"),
    ("llama-3.2-3b", 3.21e9, "Meta, Llama 3.2 model card"),
    ("llama-3.3-70b", 70.6e9, "HF meta-llama/Llama-3.3-70B-Instruct"),
    # Meta, "The Llama 4 herd" (April 2025): Scout 109B total, Maverick 400B total (both 17B active). The
    # totals are of the multimodal checkpoints: see BEYOND_THE_TEXT_MODEL for Scout's vision encoder.
    ("llama-4-scout", 109e9, "Meta 2025, The Llama 4 herd"),
    ("llama-4-maverick", 400e9, "Meta 2025, The Llama 4 herd"),
    ("mistral-7b", 7.24e9, "HF mistralai/Mistral-7B-v0.1"),
    ("mistral-7b", 7.3e9, "Mistral AI, Mistral 7B announcement"),
    ("mixtral-8x22b", 141e9, "Mistral AI 2024, Cheaper, Better, Faster, Stronger"),
    # Qwen: the HF model cards' "Number of Parameters".
    ("qwen2.5-7b", 7.61e9, "HF Qwen/Qwen2.5-7B model card"),
    ("qwen2.5-72b", 72.7e9, "HF Qwen/Qwen2.5-72B model card"),
    ("qwen3-8b", 8.2e9, "HF Qwen/Qwen3-8B model card"),
    ("qwen3-30b-a3b", 30.5e9, "HF Qwen/Qwen3-30B-A3B model card"),
    # DeepSeek-AI 2024: DeepSeek-V2 paper (V2-Lite 15.7B), DeepSeek-V3 Technical Report (671B, without MTP).
    ("deepseek-v2-lite", 15.7e9, "DeepSeek-V2 paper, DeepSeek-V2-Lite"),
    ("deepseek-v3", 671e9, "DeepSeek-V3 Technical Report"),
    # Gemma: HF google/gemma-2-9b (9.24B); Gemma 3 report Table 1, 27B: 1,416M embedding + 25,600M non-embedding
    # (the 417M vision encoder listed beside them is not part of the language model).
    ("gemma-2-9b", 9.24e9, "HF google/gemma-2-9b"),
    ("gemma-3-27b", 1_416e6 + 25_600e6, "Gemma 3 Technical Report, Table 1"),
    # Phi: Phi-3 report (3.8B); HF microsoft/phi-4 (14.7B; the Phi-4 report rounds to 14B).
    ("phi-3-mini", 3.8e9, "Abdin et al. 2024, Phi-3 Technical Report"),
    ("phi-4", 14.7e9, "HF microsoft/phi-4"),
]

# Published totals of multimodal checkpoints that hold more than the text model flopcast counts: the part left
# out, computed here by hand from the released config, closes the gap to within 1%.
#   Llama 4 vision_config (meta-llama/Llama-4-Scout-17B-16E): a ViT of 34 layers, width 1408, MLP 5632, with biases
#   and LayerNorms with bias (per layer 4·1408² + 4·1408 attention, 2·1408·5632 + 5632 + 1408 MLP, 4·1408 norms),
#   14×14 RGB patches, 577 positions; then the multi-modal projector 4096 → 5120. (The pixel-shuffle adapter,
#   about 40M more, is left out: the check holds without it.)
_VIT_LAYER = 4 * 1408**2 + 4 * 1408 + 2 * 1408 * 5632 + 5632 + 1408 + 4 * 1408
LLAMA_4_VISION = 34 * _VIT_LAYER + 3 * 14 * 14 * 1408 + 577 * 1408 + 4096 * 5120
BEYOND_THE_TEXT_MODEL = {"llama-4-scout": LLAMA_4_VISION}


@pytest.mark.parametrize(("preset", "published", "source"), PUBLISHED_PARAMS)
def test_preset_reproduces_published_count_within_1_percent(preset, published, source):
    spec = get_preset(preset)
    counted = spec.params + BEYOND_THE_TEXT_MODEL.get(preset, 0)
    assert counted == pytest.approx(published, rel=PRESET_TOLERANCE), source


def test_a_count_outside_1_percent_is_explained_in_the_notes():
    for preset, left_out in BEYOND_THE_TEXT_MODEL.items():
        spec = get_preset(preset)
        assert abs(spec.params / spec.published_params - 1) > PRESET_TOLERANCE  # still needed, or drop the entry
        assert 0.5e9 < left_out < 1.0e9  # Scout: about 0.85B of vision encoder
        assert any("vision encoder" in note for note in preset_details(preset).notes)


def test_every_preset_is_checked_against_a_figure_written_in_this_test():
    checked = {name for name, _, _ in PUBLISHED_PARAMS}
    assert {s.name for s in list_presets()} <= checked


def test_the_presets_file_agrees_with_its_own_published_counts():
    for spec in list_presets():
        assert spec.published_params is not None and spec.source, spec.name
        counted = spec.params + BEYOND_THE_TEXT_MODEL.get(spec.name, 0)
        assert counted == pytest.approx(spec.published_params, rel=PRESET_TOLERANCE), spec.name


def test_required_presets_exist():
    for preset in ("gpt3-175b", "llama-2-7b", "llama-2-70b", "llama-3-8b", "bert-large", "mixtral-8x7b"):
        assert get_preset(preset).name == preset


def test_exact_counts_by_hand():
    # Llama 2 70B: per layer 2·8192² (Q,O) + 2·8192·1024 (K,V: 8 KV heads × 128) = 150,994,944;
    # SwiGLU 3·8192·28672 = 704,643,072; two RMSNorms 2·8192 = 16,384 → 855,654,400 × 80 = 68,452,352,000;
    # untied embeddings 2·32000·8192 = 524,288,000; final norm 8192 → 68,976,648,192 (= the HF count).
    assert get_preset("llama-2-70b").params == 68_976_648_192
    # Pythia-70M: embeddings 2·50304·512 = 51,511,296; per layer 4·512² + 4·512 (QKV+O biases) = 1,050,624,
    # FFN 2·512·2048 + 2048 + 512 = 2,099,712, two LayerNorms with bias 2048 → 3,152,384 × 6 = 18,914,304;
    # final LayerNorm 1024 → 70,426,624 (Pythia Table 1, exactly).
    assert get_preset("pythia-70m").params == 70_426_624
    # BERT-Large (BertModel): word 30522·1024 = 31,254,528 + positions 512·1024 = 524,288 + segments 2·1024 = 2,048
    # + embedding LayerNorm 2,048; per layer attention 4·1024² + 4·1024 = 4,198,400, FFN 2·1024·4096 + 4096 + 1024
    # = 8,393,728, two LayerNorms 4,096 → 12,596,224 × 24 = 302,309,376; pooler 1024² + 1024 = 1,049,600.
    assert get_preset("bert-large").params == 31_254_528 + 524_288 + 2_048 + 2_048 + 302_309_376 + 1_049_600


def test_mixtral_total_and_active_by_hand_and_published():
    spec = get_preset("mixtral-8x7b")
    attention = 2 * 4096 * 4096 + 2 * 4096 * 1024  # Q,O + K,V with 8 KV heads of 128
    expert = 3 * 4096 * 14336  # one SwiGLU expert
    router, norms = 4096 * 8, 2 * 4096
    outside = 2 * 32000 * 4096 + 4096  # untied embeddings + final norm
    assert spec.params == 32 * (attention + 8 * expert + router + norms) + outside
    assert spec.active_params == 32 * (attention + 2 * expert + router + norms) + outside
    assert spec.params == pytest.approx(46.7e9, rel=PRESET_TOLERANCE)  # Mistral AI: 46.7B total
    assert spec.active_params == pytest.approx(12.9e9, rel=PRESET_TOLERANCE)  # ... 12.9B per token
    assert spec.active_params < spec.params


@pytest.mark.parametrize("preset", ["mixtral-8x7b", "bert-large", "gpt3-175b", "palm-540b", "bloom-176b"])
def test_breakdown_sums_to_the_total(preset):
    spec = get_preset(preset)
    assert sum(spec.param_breakdown().values()) == spec.params
    assert sum(spec.param_breakdown(active=True).values()) == spec.active_params


def test_dense_models_have_active_equal_to_total():
    assert get_preset("llama-2-7b").active_params == get_preset("llama-2-7b").params


# --- size → shape rule -------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", ["7B", "13B", "70B", "350M", "1.3B", "125M", "175B", "1T"])
def test_size_rule_within_2_percent(size):
    target = {"7B": 7e9, "13B": 13e9, "70B": 70e9, "350M": 350e6, "1.3B": 1.3e9, "125M": 125e6, "175B": 175e9,
              "1T": 1e12}[size]  # fmt: skip
    spec = resolve_model(size)
    assert abs(spec.params / target - 1) <= SIZE_TOLERANCE
    assert spec.published_params is None and spec.name.startswith("size-")


def _llama_ffn(d_model: int) -> int:
    """LLaMA's SwiGLU width: 2/3 of 4·d, rounded up to a multiple of 256 (Touvron et al. 2023a, released code)."""
    return 256 * math.ceil(int(2 * 4 * d_model / 3) / 256)


def test_llama_ffn_rule_reproduces_published_widths():
    # LLaMA Table 2 models' FFN widths: 11008 (d 4096), 13824 (5120), 17920 (6656), 22016 (8192).
    assert [_llama_ffn(d) for d in (4096, 5120, 6656, 8192)] == [11008, 13824, 17920, 22016]


def test_size_rule_shapes_follow_the_documented_conventions():
    for size in (1e9, 7e9, 70e9, 400e9):
        spec = shape_for_size(size)
        assert spec.d_model % 128 == 0 and spec.dim_head == 128  # d_head 128 from d_model 1024 on
        assert spec.gated_ffn and spec.ffn == _llama_ffn(spec.d_model)
        assert spec.vocab == 32000 and not spec.tied_embeddings  # LLaMA's vocabulary, untied
        ratio = spec.d_model / spec.layers
        assert 128 / 2 <= ratio <= 128 * 2  # within a factor 2 of the GPT-3 ratio (64 → 128 above 6.7B)
        if spec.d_model >= 4096:
            assert spec.heads % 8 == 0  # tensor parallelism within an 8-device node divides the heads
    small = shape_for_size(125e6)
    assert small.d_model % 64 == 0 and small.dim_head == 64  # GPT-3 Small's d_head below d_model 1024


def test_size_rule_is_monotone_and_deterministic():
    sizes = [10 ** (8 + i * 0.01) for i in range(400)]  # 100M .. 1T, 1% apart
    counts = [shape_for_size(n).params for n in sizes]
    assert counts == sorted(counts)
    for n, count in zip(sizes, counts, strict=True):
        assert abs(count / n - 1) <= SIZE_TOLERANCE
    assert shape_for_size(7e9) == shape_for_size(7e9)


def test_size_accepts_lower_case_suffix_and_vocab_and_seq_len():
    assert resolve_model("7b") == resolve_model("7B")
    spec = resolve_model("7B", vocab="50257", seq_len=4096)
    assert spec.vocab == 50257 and spec.seq_len == 4096
    assert abs(spec.params / 7e9 - 1) <= SIZE_TOLERANCE


def test_size_too_small_for_the_vocabulary_is_refused():
    # 2·32000·64 = 4.1M parameters of embeddings alone at the narrowest width: 1M cannot be built.
    with pytest.raises(InvalidValue, match="1M"):
        resolve_model("1M")


def test_unreadable_size_is_invalid_value():
    with pytest.raises(InvalidValue, match="7X"):
        resolve_model("7X")


# --- resolution rules --------------------------------------------------------------------------------------


def test_preset_ids_are_case_insensitive_and_aliases_work():
    assert resolve_model("LLaMA-2-7B").name == "llama-2-7b"
    assert resolve_model("llama2-7b").name == "llama-2-7b"  # dashes ignored where unambiguous
    assert resolve_model("Llama_3_8B").name == "llama-3-8b"
    assert resolve_model("mixtral").name == "mixtral-8x7b"
    assert resolve_model("gpt3").name == "gpt3-175b"
    assert resolve_model("meta-llama/Llama-2-70b-hf").name == "llama-2-70b"


def test_dots_keep_similar_ids_apart():
    assert resolve_model("gpt3-1.3b").name == "gpt3-1.3b"
    assert resolve_model("gpt3-13b").name == "gpt3-13b"


def test_every_alias_resolves_to_its_preset():
    for spec in list_presets():
        for alias in preset_details(spec.name).aliases:
            assert get_preset(alias).name == spec.name


def test_ambiguous_compact_alias_is_refused_with_both_candidates():
    tiny = ModelSpec(layers=1, d_model=64, heads=1)
    registry = _Registry.of_details(
        [
            PresetDetails.of_spec(tiny, id="foo-1b", title="a"),
            PresetDetails.of_spec(tiny, id="foo1-b", title="b"),
        ]
    )
    with pytest.raises(UnknownModel, match="ambiguous") as info:
        registry.lookup("foo1b")
    assert "foo-1b" in info.value.hint and "foo1-b" in info.value.hint


def test_unknown_preset_suggests_the_closest_ids():
    with pytest.raises(UnknownModel) as info:
        resolve_model("llama-2-7")
    assert "llama-2-7b" in info.value.hint
    assert "\n" not in info.value.one_line()


def test_preset_with_an_architecture_flag_conflicts():
    with pytest.raises(ConflictingOptions) as info:
        resolve_model("llama-2-7b", layers=10)
    assert info.value.message == "model llama-2-7b together with layers"  # the library names its keywords ...
    assert info.value.one_line(flag_style).startswith("--model llama-2-7b together with --layers (")  # the CLI flags
    assert "seq_len" in info.value.hint and "--seq-len" in info.value.one_line(flag_style)
    with pytest.raises(ConflictingOptions, match="kv_heads, gated_ffn") as info:
        resolve_model("llama-2-7b", kv_heads=8, gated_ffn=True)
    assert "--kv-heads, --gated-ffn" in info.value.one_line(flag_style)


def test_size_with_an_architecture_flag_conflicts():
    with pytest.raises(ConflictingOptions) as info:
        resolve_model("7B", layers="10")
    assert info.value.message == "model 7B together with layers"
    assert info.value.one_line(flag_style).startswith("--model 7B together with --layers (")
    with pytest.raises(ConflictingOptions, match="experts"):
        resolve_model("7B", experts=8, active_experts=2)


def test_preset_seq_len_override_keeps_the_count_without_learned_positions():
    spec = resolve_model("llama-2-7b", seq_len="8k")
    assert spec.seq_len == 8000 and spec.params == get_preset("llama-2-7b").params
    assert spec.published_params == 6.74e9  # the count did not change, so the published figure still applies


def test_preset_overrides_that_change_the_count_drop_the_published_figures():
    base = get_preset("gpt3-175b")
    longer = resolve_model("gpt3-175b", seq_len=4096)
    assert longer.params - base.params == (4096 - 2048) * 12288  # GPT-3 learns one 12288-wide row per position
    assert longer.published_params is None
    bigger = resolve_model("llama-2-7b", vocab=32768)
    assert bigger.params - get_preset("llama-2-7b").params == 2 * 768 * 4096  # untied: input and output rows
    assert bigger.published_params is None


def test_explicit_architecture_requires_layers_d_model_heads():
    with pytest.raises(InvalidValue, match="heads missing") as info:
        resolve_model(layers=32, d_model=4096)
    assert info.value.one_line(flag_style).startswith("incomplete architecture: --heads missing")
    with pytest.raises(InvalidValue, match="no model given"):
        resolve_model()


def test_explicit_architecture_with_string_values():
    spec = resolve_model(layers="32", d_model="4096", heads="32", ffn="11008", gated_ffn=True, vocab="32000")
    assert spec.params == get_preset("llama-2-7b").params and spec.name == "custom"


def test_explicit_moe_reproduces_mixtral():
    spec = resolve_model(
        layers=32, d_model=4096, heads=32, kv_heads=8, ffn=14336, gated_ffn=True, vocab=32000, experts=8,
        active_experts=2,
    )  # fmt: skip
    mixtral = get_preset("mixtral-8x7b")
    assert (spec.params, spec.active_params) == (mixtral.params, mixtral.active_params)


def test_moe_needs_active_experts_and_active_needs_experts():
    with pytest.raises(InvalidValue, match="experts 8 needs active_experts") as info:
        resolve_model(layers=2, d_model=256, heads=2, experts=8)
    assert info.value.one_line(flag_style).startswith("--experts 8 needs --active-experts")
    with pytest.raises(InvalidValue, match="active_experts 2 needs experts") as info:
        resolve_model(layers=2, d_model=256, heads=2, active_experts=2)
    assert info.value.one_line(flag_style).startswith("--active-experts 2 needs --experts")


@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        ({"layers": 2, "d_model": 1000, "heads": 16}, "not divisible by heads"),
        ({"layers": 2, "d_model": 1024, "heads": 16, "kv_heads": 5}, "kv_heads 5 must divide heads 16"),
        ({"layers": 2, "d_model": 1024, "heads": 16, "experts": 2, "active_experts": 4}, "exceeds experts"),
        ({"layers": "abc", "d_model": 1024, "heads": 16}, "layers: cannot read"),
        ({"layers": 2, "d_model": 1024, "heads": 16, "gated_ffn": "maybe"}, "gated_ffn: cannot read"),
        ({"layers": 0, "d_model": 1024, "heads": 16}, "layers: 0 is zero"),
    ],
)
def test_invalid_architecture_is_one_line_invalid_value(flags, needle):
    with pytest.raises(InvalidValue) as info:
        resolve_model(**flags)
    assert needle in info.value.one_line() and "--" not in info.value.one_line()
    assert "\n" not in info.value.one_line()


def test_head_dim_allows_width_not_divisible_by_heads():
    # PaLM style: d_model 18432 with 48 heads of 256 (attention width 12288 ≠ d_model).
    spec = resolve_model(layers=1, d_model=18432, heads=48, head_dim=256, kv_heads=1)
    assert spec.attn_width == 12288 and spec.kv_width == 256


def test_tensor_parallel_divisibility_is_not_checked_here():
    assert resolve_model(layers=2, d_model=7 * 128, heads=7).heads == 7  # layout's job, not the model's


def test_a_broken_presets_file_is_a_runtime_failure(tmp_path, monkeypatch):
    import flopcast.presets as models

    bad = tmp_path / "model_presets.yaml"
    bad.write_text("presets:\n  - id: x\n    layers: 0\n    d_model: 64\n    heads: 1\n")
    monkeypatch.setattr(models, "PRESETS_FILE", bad)
    with pytest.raises(RuntimeFailure, match="preset #1"):
        _ = models._registry.__wrapped__().lookup("x").spec  # uncached: the real cache is left alone


def test_presets_load_once():
    assert _registry() is _registry()
    assert list_presets()[0] is list_presets()[0]


# --- CLI ---------------------------------------------------------------------------------------------------

runner = CliRunner()


def test_cli_models_list_json_has_every_preset_with_counts():
    result = runner.invoke(app, ["models", "list", "--format", "json"])
    assert result.exit_code == 0, result.output
    docs = json.loads(result.stdout)
    by_id = {d["id"]: d for d in docs}
    assert by_id["llama-2-70b"]["params"] == 68_976_648_192
    assert by_id["mixtral-8x7b"]["active_params"] < by_id["mixtral-8x7b"]["params"]
    assert len(docs) == len(list_presets())


def test_cli_models_list_csv_and_markdown():
    csv_text = runner.invoke(app, ["models", "list", "-f", "csv"]).stdout
    assert csv_text.splitlines()[0] == (
        "id,params,active params,layers,d_model,heads,kv_heads,ffn,gated,vocab,seq_len,source"
    )
    assert any(line.startswith("pythia-12b,11846072320,") for line in csv_text.splitlines())
    markdown = runner.invoke(app, ["models", "list", "-f", "markdown"]).stdout
    assert "| llama-3-405b |" in markdown


def test_cli_models_show_breakdown_and_published_deviation():
    result = runner.invoke(app, ["models", "show", "Mixtral", "-f", "json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["id"] == "mixtral-8x7b" and sum(doc["breakdown"].values()) == doc["params"]
    assert abs(doc["deviation_from_published"]) < PRESET_TOLERANCE
    table = runner.invoke(app, ["models", "show", "bert-large"])
    assert table.exit_code == 0 and "pooler" in table.stdout and "Devlin" in table.stdout


def test_cli_models_show_a_size():
    result = runner.invoke(app, ["models", "show", "7B", "-f", "json"])
    assert result.exit_code == 0, result.output
    assert abs(json.loads(result.stdout)["params"] / 7e9 - 1) <= SIZE_TOLERANCE


def test_cli_unknown_model_is_one_line_exit_2_with_suggestion():
    result = runner.invoke(app, ["models", "show", "llama-2-7"])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "unknown model 'llama-2-7'" in lines[0] and "llama-2-7b" in lines[0]
    assert result.stdout == ""


def test_cli_output_refuses_to_overwrite_without_force(tmp_path):
    target = tmp_path / "m.json"
    target.write_text("keep")
    result = runner.invoke(app, ["models", "show", "llama-2-7b", "-f", "json", "-o", str(target)])
    assert result.exit_code == 2 and target.read_text() == "keep"
    result = runner.invoke(app, ["models", "show", "llama-2-7b", "-f", "json", "-o", str(target), "--force"])
    assert result.exit_code == 0 and json.loads(target.read_text())["id"] == "llama-2-7b"


def test_real_subprocess_models_show():
    proc = subprocess.run(
        [sys.executable, "-m", "flopcast", "models", "show", "gpt3-175b", "--format", "json"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert math.isclose(json.loads(proc.stdout)["params"], 175e9, rel_tol=PRESET_TOLERANCE)


def test_the_presets_text_index_agrees_with_a_full_parse_of_the_file():
    """The start-up path reads ids and aliases from the file's text and parses one entry; a full YAML parse
    (a second method) must give the same presets, aliases and fields."""
    import yaml

    from flopcast.presets import PRESETS_FILE, _text_index

    text = PRESETS_FILE.read_text(encoding="utf-8")
    index = _text_index(text)
    assert index is not None, "the shipped file no longer has the layout the index reads"
    full = yaml.safe_load(text)["presets"]
    assert [pid for pid, _, _ in index] == [str(e["id"]).lower() for e in full]
    assert [aliases for _, aliases, _ in index] == [tuple(e.get("aliases") or ()) for e in full]
    for (_, _, chunk), entry in zip(index, full, strict=True):
        assert yaml.safe_load(chunk) == [entry]


def test_a_presets_file_in_another_yaml_layout_still_loads(tmp_path, monkeypatch):
    import flopcast.presets as models

    odd = tmp_path / "model_presets.yaml"
    odd.write_text(
        "presets:\n- {id: tiny, aliases: [small-one], layers: 2, d_model: 64, heads: 2, vocab: 100, seq_len: 32}\n"
    )
    monkeypatch.setattr(models, "PRESETS_FILE", odd)
    registry = models._registry.__wrapped__()
    assert registry.lookup("small-one").spec.layers == 2
