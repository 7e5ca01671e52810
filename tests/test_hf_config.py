"""--model path/to/config.json: Hugging Face configs (tests/fixtures/hf, written from the published architectures)
read into the same spec as the matching preset, or to the published count where there is no preset."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flopcast.cli import app
from flopcast.errors import ConflictingOptions, InvalidValue, flag_style
from flopcast.hf_config import (
    KNOWN_MODEL_TYPES,
    config_details,
    config_warnings,
    load_hf_config,
    looks_like_config_path,
)
from flopcast.models import resolve_model
from flopcast.presets import get_preset, preset_details

FIXTURES = Path(__file__).parent / "fixtures" / "hf"
# What a config does not say (or says differently) and a preset records: names, sources, published figures and
# the training sequence length (a config gives its longest context, max_position_embeddings).
NOT_ARCHITECTURE = {"name", "source", "published_params", "published_active_params", "seq_len"}


def _architecture(spec) -> dict:
    return {k: v for k, v in spec.model_dump().items() if k not in NOT_ARCHITECTURE}


@pytest.mark.parametrize(
    ("fixture", "preset"),
    [
        ("llama-3-8b", "llama-3-8b"),
        ("mixtral-8x7b", "mixtral-8x7b"),
        ("deepseek-v3", "deepseek-v3"),
        ("gemma-2-9b", "gemma-2-9b"),
        ("qwen2.5-7b", "qwen2.5-7b"),
    ],
)
def test_config_gives_the_preset(fixture, preset):
    spec = load_hf_config(str(FIXTURES / fixture / "config.json"))
    expected = get_preset(preset)
    assert _architecture(spec) == _architecture(expected)
    assert (spec.params, spec.active_params, spec.matmul_params) == (
        expected.params,
        expected.active_params,
        expected.matmul_params,
    )
    assert spec.name == fixture and spec.published_params is None and "config.json" in spec.source


def test_gpt2_by_hand_and_published():
    # GPT-2 small (openai-community/gpt2): tokens 50257·768 = 38,597,376 + positions 1024·768 = 786,432; per layer
    # attention 4·768² + 4·768 = 2,362,368, MLP 2·768·3072 + 3072 + 768 = 4,722,432, two LayerNorms 3,072 →
    # 7,087,872 × 12 = 85,054,464; final LayerNorm 1,536; head tied.
    spec = load_hf_config(str(FIXTURES / "gpt2"))
    assert spec.params == 38_597_376 + 786_432 + 85_054_464 + 1_536 == 124_439_808
    assert spec.params == pytest.approx(124e6, rel=0.01)  # HF openai-community/gpt2 model card: 124M params
    assert spec.seq_len == 1024 and spec.learned_positions and spec.tied_embeddings


def test_bert_base_by_hand_and_published():
    # BERT-Base (google-bert/bert-base-uncased), BertModel: word 30522·768 = 23,440,896, positions 512·768 = 393,216,
    # segments 2·768 = 1,536, embedding LayerNorm 1,536; per layer attention 4·768² + 4·768 = 2,362,368, FFN
    # 2·768·3072 + 3072 + 768 = 4,722,432, two LayerNorms 3,072 → 7,087,872 × 12 = 85,054,464; pooler 768² + 768.
    spec = load_hf_config(str(FIXTURES / "bert-base-uncased" / "config.json"))
    assert spec.params == 23_440_896 + 393_216 + 1_536 + 1_536 + 85_054_464 + 590_592 == 109_482_240
    assert spec.params == pytest.approx(110e6, rel=0.01)  # Devlin et al. 2019, §3: BERT-Base 110M
    assert not spec.final_norm and spec.pooler and spec.segment_embeddings == 2


def test_seq_len_is_max_position_embeddings_with_a_note():
    details = config_details(str(FIXTURES / "qwen2.5-7b"))
    assert details.spec.seq_len == 131072
    assert any("max_position_embeddings" in n for n in details.notes)


def test_rope_scaling_and_mtp_are_notes():
    notes = config_details(str(FIXTURES / "deepseek-v3" / "config.json")).notes
    assert any("rope_scaling (yarn) ignored" in n for n in notes)
    assert any("multi-token-prediction" in n for n in notes)


def test_resolve_model_routes_paths_and_keeps_the_preset_rules():
    path = str(FIXTURES / "llama-3-8b" / "config.json")
    assert resolve_model(path) == load_hf_config(path)
    assert resolve_model(str(FIXTURES / "llama-3-8b")).params == get_preset("llama-3-8b").params  # a directory
    longer = resolve_model(path, seq_len="4k")
    assert longer.seq_len == 4000 and longer.params == get_preset("llama-3-8b").params
    with pytest.raises(ConflictingOptions) as info:
        resolve_model(path, layers=4)
    assert "a config.json fixes the architecture" in info.value.hint
    assert info.value.one_line(flag_style).startswith("--model llama-3-8b together with --layers")


def test_preset_ids_and_sizes_are_not_paths():
    for text in ("llama-2-7b", "7B", "meta-llama/Llama-2-70b-hf", "mixtral"):
        assert not looks_like_config_path(text)
    assert looks_like_config_path("somewhere/config.json") and looks_like_config_path(str(FIXTURES / "gpt2"))


def test_preset_details_reads_a_config():
    details = preset_details(str(FIXTURES / "gemma-2-9b"))
    assert details.spec.sliding_window == 4096 and details.spec.local_layers_per_global == 1


def _write(tmp_path, doc, name="config.json") -> str:
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return str(path)


def _llama(**changes) -> dict:
    doc = json.loads((FIXTURES / "llama-3-8b" / "config.json").read_text())
    doc.update(changes)
    return {k: v for k, v in doc.items() if v is not ...}


@pytest.mark.parametrize(
    ("doc", "needle"),
    [
        ("{not json", "not JSON (Expecting property name"),
        ("[1, 2]", "not a model config"),
        (_llama(model_type="mamba"), "unknown model_type 'mamba'"),
        (_llama(model_type=...), "lacks 'model_type'"),
        (_llama(hidden_size=...), "lacks 'hidden_size', which a llama config needs"),
        (_llama(num_hidden_layers=2.5), "num_hidden_layers is 2.5, not a whole number"),
        (_llama(tie_word_embeddings="yes"), "tie_word_embeddings is 'yes', not true or false"),
        (_llama(num_key_value_heads=7), "kv_heads 7 must divide heads 32"),
    ],
)
def test_bad_configs_are_one_line_invalid_value(tmp_path, doc, needle):
    path = _write(tmp_path, doc)
    with pytest.raises(InvalidValue) as info:
        resolve_model(path)
    line = info.value.one_line()
    assert needle in line and "\n" not in line and "--" not in line and line.startswith(f"model {path}: ")


def test_unknown_model_type_lists_the_known_ones(tmp_path):
    with pytest.raises(InvalidValue) as info:
        load_hf_config(_write(tmp_path, _llama(model_type="mamba")))
    assert all(t in info.value.hint for t in KNOWN_MODEL_TYPES)


def test_missing_file_and_directory_without_config(tmp_path):
    with pytest.raises(InvalidValue, match="no such file"):
        resolve_model(str(tmp_path / "absent.json"))
    with pytest.raises(InvalidValue, match="holds no config.json"):
        load_hf_config(str(tmp_path))


def test_a_changed_file_is_read_again(tmp_path):
    path = _write(tmp_path, _llama())
    assert load_hf_config(path).layers == 32
    Path(path).write_text(json.dumps(_llama(num_hidden_layers=16, intermediate_size=14337)))
    assert load_hf_config(path).layers == 16


def test_other_families_read(tmp_path):
    # Llama 4 Scout's text_config (meta-llama/Llama-4-Scout-17B-16E) gives the llama-4-scout preset.
    scout = {
        "model_type": "llama4",
        "vision_config": {"hidden_size": 1408, "num_hidden_layers": 34},
        "text_config": {
            "model_type": "llama4_text", "hidden_size": 5120, "num_hidden_layers": 48, "num_attention_heads": 40,
            "num_key_value_heads": 8, "head_dim": 128, "intermediate_size": 8192, "intermediate_size_mlp": 16384,
            "num_local_experts": 16, "num_experts_per_tok": 1, "interleave_moe_layer_step": 1, "vocab_size": 202048,
            "attention_chunk_size": 8192, "no_rope_layer_interval": 4, "max_position_embeddings": 10485760,
            "tie_word_embeddings": False, "rope_scaling": {"rope_type": "llama3", "factor": 16.0},
        },
    }  # fmt: skip
    details = config_details(_write(tmp_path, scout, "scout.json"))
    assert _architecture(details.spec) == _architecture(get_preset("llama-4-scout"))
    assert any("vision encoder" in n for n in details.notes)
    # Qwen3-30B-A3B (Qwen/Qwen3-30B-A3B) gives the qwen3-30b-a3b preset.
    qwen = {
        "model_type": "qwen3_moe", "hidden_size": 2048, "num_hidden_layers": 48, "num_attention_heads": 32,
        "num_key_value_heads": 4, "head_dim": 128, "intermediate_size": 6144, "moe_intermediate_size": 768,
        "num_experts": 128, "num_experts_per_tok": 8, "decoder_sparse_step": 1, "mlp_only_layers": [],
        "vocab_size": 151936, "max_position_embeddings": 40960, "tie_word_embeddings": False,
    }  # fmt: skip
    assert _architecture(load_hf_config(_write(tmp_path, qwen, "qwen3.json"))) == _architecture(
        get_preset("qwen3-30b-a3b")
    )
    # Pythia-70M (EleutherAI/pythia-70m, gpt_neox) gives the pythia-70m count exactly.
    neox = {
        "model_type": "gpt_neox", "hidden_size": 512, "num_hidden_layers": 6, "num_attention_heads": 8,
        "intermediate_size": 2048, "vocab_size": 50304, "max_position_embeddings": 2048, "tie_word_embeddings": False,
    }  # fmt: skip
    assert load_hf_config(_write(tmp_path, neox, "neox.json")).params == 70_426_624  # Pythia Table 1


def test_estimate_warnings_carry_the_notes():
    assert config_warnings("llama-2-7b") == [] and config_warnings(None) == []
    warnings = config_warnings(str(FIXTURES / "deepseek-v3"))
    assert any(w.startswith("model config: rope_scaling") for w in warnings)


# --- CLI ---------------------------------------------------------------------------------------------------

runner = CliRunner()


def test_cli_estimate_with_a_config():
    path = str(FIXTURES / "llama-3-8b" / "config.json")
    result = runner.invoke(app, ["estimate", "--model", path, "--tokens", "1T", "--devices", "64", "-f", "json"])
    assert result.exit_code == 0, result.output
    assert "max_position_embeddings" in result.stdout  # the note reaches the report's warnings


def test_cli_models_show_a_config():
    result = runner.invoke(app, ["models", "show", str(FIXTURES / "mixtral-8x7b" / "config.json"), "-f", "json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["params"] == get_preset("mixtral-8x7b").params and doc["notes"]


def test_cli_bad_config_is_one_line_exit_2(tmp_path):
    path = _write(tmp_path, _llama(model_type="mamba"))
    result = runner.invoke(app, ["estimate", "--model", path, "--tokens", "1T", "--devices", "8"])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "unknown model_type 'mamba'" in lines[0] and "--model" in lines[0]
