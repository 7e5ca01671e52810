"""A Hugging Face ``config.json`` as a model: ``--model path/to/config.json`` (or a directory holding one).

Offline only: the file is read from disk, nothing is downloaded. The families read (``model_type``):
Llama (and Llama 4's text model), Mistral, Mixtral, Qwen2, Qwen3 and Qwen3-MoE, Gemma, Gemma 2, Gemma 3 (its
``text_config``), DeepSeek-V2/V3 (MLA attention, shared experts, first dense layers), Phi-3 (Phi-4 ships as
``phi3``), GPT-NeoX, GPT-2 and BERT. What the config says becomes :class:`~flopcast.models.ModelSpec` fields:
hidden size, layers, heads, KV heads, head_dim, intermediate size (and the experts' ``moe_intermediate_size``),
gated or plain FFN by family, vocabulary, tied embeddings, ``max_position_embeddings`` as ``seq_len``, MoE
experts (``num_local_experts``, ``num_experts``, ``n_routed_experts``), ``num_experts_per_tok``, shared experts,
MLA ranks and the sliding-window layer pattern. What has no parameters (RoPE scaling, soft-capping) or is not
modelled (a vision tower, DeepSeek's multi-token-prediction layer) becomes a note, shown by ``models show`` and
as a warning of the estimate.

Every problem (no such file, not JSON, a missing key, an unknown ``model_type``) is one
:class:`~flopcast.errors.InvalidValue` line: exit 2 in the CLI.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

from flopcast.config_path import CONFIG_NAME, config_warnings, looks_like_config_path
from flopcast.errors import InvalidValue, opt

__all__ = ["config_warnings", "looks_like_config_path"]  # re-exported from flopcast.config_path

# model_type → family reader (below). Gemma 3 and Llama 4 checkpoints wrap the text model's config in
# ``text_config`` (their own model_type is the multimodal one); both spellings are read.
_GATED_DECODERS = (
    "llama", "mistral", "mixtral", "qwen2", "qwen3", "qwen3_moe", "gemma", "gemma2", "gemma3", "gemma3_text",
    "deepseek_v2", "deepseek_v3", "phi3", "llama4", "llama4_text",
)  # fmt: skip
KNOWN_MODEL_TYPES = tuple(sorted((*_GATED_DECODERS, "gpt_neox", "gpt2", "bert")))
_TIED_BY_DEFAULT = {"gemma", "gemma2", "gemma3", "gemma3_text"}  # the config classes' tie_word_embeddings default
_WRAPPED = {"gemma3": "text_config", "llama4": "text_config"}


def _fail(shown: str, problem: str, hint: str | None = None) -> InvalidValue:
    return InvalidValue(
        f"{opt('model')} {shown}: {problem}",
        hint=hint or "give a Hugging Face config.json (or its directory), a preset id or a size such as 7B",
    )


def _config_file(text: str) -> Path:
    path = Path(text.strip()).expanduser()
    if path.is_dir():
        path = path / CONFIG_NAME
        if not path.is_file():
            raise _fail(text, f"the directory holds no {CONFIG_NAME}")
    elif not path.exists():
        raise _fail(text, "no such file")
    elif not path.is_file():
        raise _fail(text, "not a file")
    return path


class _Reader:
    """A config's keys, read with one-line errors that name the file and the key."""

    def __init__(self, doc: dict, shown: str, model_type: str):
        self.doc, self.shown, self.model_type = doc, shown, model_type

    def get(self, key: str, default=None):
        value = self.doc.get(key)
        return default if value is None else value

    def count(self, key: str, default=None, *, zero_ok: bool = False) -> int | None:
        """A whole number ≥ 1 (≥ 0 with ``zero_ok``); ``default`` when absent or null (``...`` = required)."""
        value = self.doc.get(key)
        if value is None:
            if default is ...:
                raise _fail(self.shown, f"the config lacks {key!r}, which a {self.model_type} config needs")
            return default
        if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value) or value < 0:
            raise _fail(self.shown, f"{key} is {value!r}, not a whole number")
        if value == 0 and not zero_ok:
            raise _fail(self.shown, f"{key} is 0")
        return int(value)

    def req(self, key: str) -> int:
        return self.count(key, ...)

    def flag(self, key: str, default: bool) -> bool:
        value = self.doc.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise _fail(self.shown, f"{key} is {value!r}, not true or false")
        return value


def _decoder(r: _Reader, notes: list[str]) -> dict:
    """The fields every gated decoder family shares (Llama's key names)."""
    mt = r.model_type
    d, heads = r.req("hidden_size"), r.req("num_attention_heads")
    fields = {
        "layers": r.req("num_hidden_layers"),
        "d_model": d,
        "heads": heads,
        "ffn": r.req("intermediate_size"),
        "gated_ffn": True,
        "vocab": r.req("vocab_size"),
        "tied_embeddings": r.flag("tie_word_embeddings", mt in _TIED_BY_DEFAULT),
    }
    kv = r.count("num_key_value_heads")
    if kv is not None and kv != heads:
        fields["kv_heads"] = kv
    head_dim = r.count("head_dim")
    if head_dim is not None and not (d % heads == 0 and head_dim == d // heads):
        fields["head_dim"] = head_dim
    if r.flag("attention_bias", False):
        fields["qkv_bias"] = True
        notes.append("attention_bias: Q, K and V biases counted; the output projection's bias (d per layer) is not")
    if r.flag("mlp_bias", False):
        notes.append("mlp_bias: the FFN biases are not counted")
    return fields


def _window_everywhere(r: _Reader, fields: dict) -> None:
    """Mistral, Mixtral, Phi-3: one sliding window (or null) for every layer."""
    window = r.count("sliding_window")
    if window is not None:
        fields["sliding_window"] = window


def _read_llama(r: _Reader, notes: list[str]) -> dict:
    return _decoder(r, notes)


def _read_mistral(r: _Reader, notes: list[str]) -> dict:
    fields = _decoder(r, notes)
    _window_everywhere(r, fields)
    return fields


def _read_mixtral(r: _Reader, notes: list[str]) -> dict:
    fields = _read_mistral(r, notes)
    fields.update(experts=r.req("num_local_experts"), active_experts=r.req("num_experts_per_tok"))
    return fields


_read_phi3 = _read_mistral


def _read_qwen2(r: _Reader, notes: list[str]) -> dict:
    fields = _decoder(r, notes)
    fields["qkv_bias"] = True  # Qwen2 has Q, K, V biases by construction (no config key)
    if r.flag("use_sliding_window", False):
        notes.append("use_sliding_window: Qwen2's per-layer window (max_window_layers) is not recorded")
    return fields


def _read_qwen3(r: _Reader, notes: list[str]) -> dict:
    fields = _decoder(r, notes)
    fields["qk_norm"] = True
    if r.flag("use_sliding_window", False):
        notes.append("use_sliding_window: Qwen3's per-layer window (max_window_layers) is not recorded")
    return fields


def _read_qwen3_moe(r: _Reader, notes: list[str]) -> dict:
    fields = _read_qwen3(r, notes)
    fields.update(
        experts=r.req("num_experts"),
        active_experts=r.req("num_experts_per_tok"),
        moe_ffn=r.req("moe_intermediate_size"),
        moe_layer_interval=r.count("decoder_sparse_step", 1),
    )
    dense = sorted(r.get("mlp_only_layers", []))
    if dense == list(range(len(dense))):
        fields["first_dense_layers"] = len(dense)
    else:
        notes.append(f"mlp_only_layers {dense}: not the first layers; counted as MoE layers")
    return fields


def _read_gemma(r: _Reader, notes: list[str]) -> dict:
    return _decoder(r, notes)


def _read_gemma2(r: _Reader, notes: list[str]) -> dict:
    fields = _decoder(r, notes)
    fields["norms_per_layer"] = 4  # pre- and post-norms around attention and the FFN
    window = r.count("sliding_window")
    if window is not None:
        fields.update(sliding_window=window, local_layers_per_global=1)  # local and global layers alternate
    return fields


def _read_gemma3(r: _Reader, notes: list[str]) -> dict:
    fields = _decoder(r, notes)
    fields.update(norms_per_layer=4, qk_norm=True)
    window = r.count("sliding_window")
    if window is not None:
        types = r.get("layer_types")
        if isinstance(types, list) and types:
            globals_ = [i for i, t in enumerate(types) if t != "sliding_attention"]
            period = globals_[0] + 1 if globals_ else None
            if period and globals_ == list(range(period - 1, len(types), period)):
                fields.update(sliding_window=window, local_layers_per_global=period - 1)
            elif not globals_:
                fields["sliding_window"] = window
            else:
                notes.append("layer_types: an irregular local/global pattern; every layer taken as global")
        else:
            pattern = r.count("sliding_window_pattern", 6)  # Gemma 3's released configs: 5 local, then 1 global
            fields.update(sliding_window=window, local_layers_per_global=pattern - 1)
    return fields


def _read_deepseek(r: _Reader, notes: list[str]) -> dict:
    fields = _decoder(r, notes)
    fields.pop("kv_heads", None)  # MLA: one decompressed K/V per head whatever num_key_value_heads says
    fields.pop("head_dim", None)
    fields.update(
        attention="mla",
        q_lora_rank=r.count("q_lora_rank"),
        kv_lora_rank=r.req("kv_lora_rank"),
        qk_rope_head_dim=r.req("qk_rope_head_dim"),
        qk_nope_head_dim=r.req("qk_nope_head_dim"),
        v_head_dim=r.req("v_head_dim"),
    )
    routed = r.count("n_routed_experts")
    if routed is not None and routed > 1:
        fields.update(
            experts=routed,
            active_experts=r.req("num_experts_per_tok"),
            shared_experts=r.count("n_shared_experts", 0, zero_ok=True),
            moe_ffn=r.req("moe_intermediate_size"),
            first_dense_layers=r.count("first_k_dense_replace", 0, zero_ok=True),
        )
        freq = r.count("moe_layer_freq", 1)
        if freq > 1:
            fields["moe_layer_interval"] = freq
            notes.append(
                f"moe_layer_freq {freq}: counted as every {freq}-th layer from the {freq}-th on; DeepSeek's code "
                "places them from the first (the number of MoE layers may differ by one)"
            )
    mtp = r.count("num_nextn_predict_layers", 0, zero_ok=True)
    if mtp:
        notes.append(f"num_nextn_predict_layers {mtp}: the multi-token-prediction module is not counted")
    return fields


def _read_llama4(r: _Reader, notes: list[str]) -> dict:
    fields = _decoder(r, notes)
    fields.update(
        ffn=r.req("intermediate_size_mlp"),  # the dense layers' FFN
        moe_ffn=r.req("intermediate_size"),  # each expert and the shared expert
        experts=r.req("num_local_experts"),
        active_experts=r.req("num_experts_per_tok"),
        shared_experts=1,
        moe_layer_interval=r.count("interleave_moe_layer_step", 1),
    )
    chunk = r.count("attention_chunk_size")
    if chunk is not None:
        every = r.count("no_rope_layer_interval", 4)
        fields.update(sliding_window=chunk, local_layers_per_global=every - 1)
        notes.append(
            f"chunked attention ({chunk}-token chunks, every {every}th layer global) recorded as a sliding window"
        )
    return fields


def _read_gpt_neox(r: _Reader, notes: list[str]) -> dict:
    return {
        "layers": r.req("num_hidden_layers"),
        "d_model": r.req("hidden_size"),
        "heads": r.req("num_attention_heads"),
        "ffn": r.req("intermediate_size"),
        "vocab": r.req("vocab_size"),
        "tied_embeddings": r.flag("tie_word_embeddings", False),
        "biases": True,
        "layernorm_bias": True,
    }


def _read_gpt2(r: _Reader, notes: list[str]) -> dict:
    d = r.req("n_embd")
    return {
        "layers": r.req("n_layer"),
        "d_model": d,
        "heads": r.req("n_head"),
        "ffn": r.count("n_inner", 4 * d),
        "vocab": r.req("vocab_size"),
        "seq_len": r.req("n_positions"),
        "tied_embeddings": True,
        "learned_positions": True,
        "biases": True,
        "layernorm_bias": True,
    }


def _read_bert(r: _Reader, notes: list[str]) -> dict:
    notes.append("counted: the encoder, embeddings and pooler (BertModel); pre-training heads are not")
    return {
        "layers": r.req("num_hidden_layers"),
        "d_model": r.req("hidden_size"),
        "heads": r.req("num_attention_heads"),
        "ffn": r.req("intermediate_size"),
        "vocab": r.req("vocab_size"),
        "seq_len": r.req("max_position_embeddings"),
        "tied_embeddings": True,
        "learned_positions": True,
        "biases": True,
        "layernorm_bias": True,
        "segment_embeddings": r.count("type_vocab_size", 2, zero_ok=True),
        "embedding_norm": True,
        "final_norm": False,
        "pooler": True,
    }


_READERS = {
    "llama": _read_llama,
    "mistral": _read_mistral,
    "mixtral": _read_mixtral,
    "qwen2": _read_qwen2,
    "qwen3": _read_qwen3,
    "qwen3_moe": _read_qwen3_moe,
    "gemma": _read_gemma,
    "gemma2": _read_gemma2,
    "gemma3": _read_gemma3,
    "gemma3_text": _read_gemma3,
    "deepseek_v2": _read_deepseek,
    "deepseek_v3": _read_deepseek,
    "phi3": _read_phi3,
    "llama4": _read_llama4,
    "llama4_text": _read_llama4,
    "gpt_neox": _read_gpt_neox,
    "gpt2": _read_gpt2,
    "bert": _read_bert,
}
assert set(_READERS) == set(KNOWN_MODEL_TYPES)


def _model_name(path: Path) -> str:
    """``.../llama-3-8b/config.json`` → ``llama-3-8b``; ``.../mixtral.json`` → ``mixtral``."""
    return path.parent.name if path.name == CONFIG_NAME and path.parent.name else path.stem


@functools.lru_cache(maxsize=32)
def _load(resolved: str, shown: str, _stamp: tuple[int, int]):
    from flopcast.model_resolve import _spec
    from flopcast.models import ModelSpec
    from flopcast.presets import PresetDetails

    path = Path(resolved)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise _fail(shown, f"cannot read it ({exc.__class__.__name__})") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _fail(shown, f"not JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(doc, dict):
        raise _fail(shown, "not a model config (expected a JSON object)")
    model_type = doc.get("model_type")
    if model_type is None:
        raise _fail(shown, "the config lacks 'model_type'", hint=f"known model types: {', '.join(KNOWN_MODEL_TYPES)}")
    if model_type not in _READERS:
        raise _fail(
            shown, f"unknown model_type {model_type!r}", hint=f"known model types: {', '.join(KNOWN_MODEL_TYPES)}"
        )
    notes: list[str] = []
    inner_key = _WRAPPED.get(model_type)
    inner = doc.get(inner_key) if inner_key else None
    if inner_key and isinstance(inner, dict):
        doc = {**inner, "model_type": inner.get("model_type", model_type)}
        if any(k.startswith("vision") for k in doc) or "vision_config" in text:
            notes.append("the vision encoder (vision_config) is not counted: the text model only")
    reader = _Reader(doc, shown, model_type)
    fields = _READERS[model_type](reader, notes)
    if "seq_len" not in fields:
        max_positions = reader.count("max_position_embeddings")
        if max_positions is None:
            default = ModelSpec.model_fields["seq_len"].default
            notes.append(f"no max_position_embeddings: seq_len {default} (the default); give seq_len to change it")
        else:
            fields["seq_len"] = max_positions
            notes.append(
                f"seq_len {max_positions} is the config's max_position_embeddings (the longest context, often "
                f"longer than training used): give seq_len to estimate another length"
            )
    scaling = doc.get("rope_scaling")
    if isinstance(scaling, dict):
        kind = scaling.get("rope_type") or scaling.get("type") or "?"
        notes.append(f"rope_scaling ({kind}) ignored: it changes no parameter")
    name = _model_name(path)
    try:
        spec = _spec(name=name, source=f"Hugging Face config.json ({shown})", **fields)
    except InvalidValue as exc:
        raise _fail(shown, exc.raw_message, hint=exc.raw_hint) from None
    return PresetDetails.of_spec(spec, id=name, title=f"{name} ({model_type} config)", notes=notes)


def config_details(text: str):
    """The :class:`~flopcast.presets.PresetDetails` (spec, title, notes) of the config ``text`` names."""
    path = _config_file(text)
    stat = path.stat()
    return _load(str(path.resolve()), text.strip(), (stat.st_mtime_ns, stat.st_size))


def load_hf_config(text: str):
    """The :class:`~flopcast.models.ModelSpec` of the Hugging Face config.json ``text`` names (a file or a
    directory holding one). :class:`~flopcast.errors.InvalidValue` (one line) when it cannot."""
    return config_details(text).spec
