"""Model architecture: the spec, its parameter counts, the shipped presets and how ``--model`` resolves (DESIGN §3).

Parameters (decoder-only transformer, as the GPT-3, Llama and PaLM papers count them):
  embeddings  V·d (input) + V·d (output head) unless tied
  per layer   2·d·(heads·head_dim)            Q and O projections
              2·d·(kv_heads·head_dim)         K and V projections (GQA/MQA when kv_heads < heads)
              3·d·ffn (gated, SwiGLU) or 2·d·ffn (plain) per expert
              + attention/FFN biases where ``biases`` (GPT-2/3, BERT, Pythia)
              + 2 norms of d (×2 for LayerNorm's bias)
  final norm  d (×2 with LayerNorm bias) unless ``final_norm`` is off (post-LN BERT)
  position    s·d when ``learned_positions`` (GPT-3, BERT)
MoE: every expert's FFN counts toward total parameters (memory); only ``active_experts`` of them
toward active parameters (FLOPs), plus the router d·experts per layer.
Encoder extras, off by default: ``segment_embeddings`` (BERT's token types, n·d), ``embedding_norm`` (a norm
right after the embeddings: BERT, BLOOM) and ``pooler`` (BERT's d×d + d dense layer on the first token).

A model is given (``resolve_model``) as a preset id (:mod:`flopcast.presets`), as a size (``7B``, ``350M``:
:func:`flopcast.model_sizes.shape_for_size` picks the shape), or as an explicit architecture.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, PositiveInt, ValidationError, model_validator

from flopcast.errors import ConflictingOptions, InvalidValue, opt
from flopcast.units import parse_count, parse_int

MAX_MODEL_PARAMS = 1e15  # a sanity bound on any model (a quadrillion parameters): keeps every estimate finite


class ModelSpec(BaseModel):
    """A decoder-only (or encoder-only, for BERT) transformer. Widths in elements, not bytes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "custom"
    layers: PositiveInt
    d_model: PositiveInt
    heads: PositiveInt
    kv_heads: PositiveInt | None = None  # None = heads (multi-head attention)
    head_dim: PositiveInt | None = None  # None = d_model / heads
    ffn: PositiveInt | None = None  # None = 4·d_model
    gated_ffn: bool = False
    vocab: PositiveInt = 50257
    seq_len: PositiveInt = 2048
    tied_embeddings: bool = False
    learned_positions: bool = False
    biases: bool = False
    layernorm_bias: bool = False
    experts: PositiveInt = 1
    active_experts: PositiveInt = 1
    segment_embeddings: NonNegativeInt = 0  # BERT token-type (segment) embedding rows: 2
    embedding_norm: bool = False  # a norm after the embeddings (BERT, BLOOM)
    final_norm: bool = True  # a norm before the output head (pre-LN decoders); post-LN BERT has none
    pooler: bool = False  # BERT's pooler: a d×d dense layer with bias on the first token
    published_params: float | None = Field(default=None, gt=0)
    published_active_params: float | None = Field(default=None, gt=0)  # MoE: published params used per token
    source: str | None = None

    @model_validator(mode="after")
    def _check(self) -> ModelSpec:
        if self.head_dim is None and self.d_model % self.heads:
            raise ValueError(
                f"d_model {self.d_model} is not divisible by heads {self.heads}; "
                "make d_model a multiple of heads or give head_dim"
            )
        if self.n_kv_heads > self.heads or self.heads % self.n_kv_heads:
            raise ValueError(f"kv_heads {self.n_kv_heads} must divide heads {self.heads}")
        if self.active_experts > self.experts:
            raise ValueError(f"active_experts {self.active_experts} exceeds experts {self.experts}")
        return self

    # --- derived shape -------------------------------------------------------------------------
    @property
    def n_kv_heads(self) -> int:
        return self.kv_heads if self.kv_heads is not None else self.heads

    @property
    def dim_head(self) -> int:
        return self.head_dim if self.head_dim is not None else self.d_model // self.heads

    @property
    def attn_width(self) -> int:
        """heads·head_dim: the width of Q and of the attention output (= d_model unless head_dim is set)."""
        return self.heads * self.dim_head

    @property
    def kv_width(self) -> int:
        return self.n_kv_heads * self.dim_head

    @property
    def ffn_size(self) -> int:
        return self.ffn if self.ffn is not None else 4 * self.d_model

    # --- parameter counts ----------------------------------------------------------------------
    @property
    def _norm_params_per_norm(self) -> int:
        return self.d_model * (2 if self.layernorm_bias else 1)

    @property
    def attention_params_per_layer(self) -> int:
        d = self.d_model
        weights = 2 * d * self.attn_width + 2 * d * self.kv_width
        bias = (self.attn_width + 2 * self.kv_width + d) if self.biases else 0
        return weights + bias

    @property
    def ffn_params_per_expert(self) -> int:
        d, f = self.d_model, self.ffn_size
        weights = (3 if self.gated_ffn else 2) * d * f
        bias = ((2 if self.gated_ffn else 1) * f + d) if self.biases else 0
        return weights + bias

    @property
    def router_params_per_layer(self) -> int:
        return self.d_model * self.experts if self.experts > 1 else 0

    @property
    def pooler_params(self) -> int:
        """BERT's pooler: d×d weights + d bias (0 without ``pooler``)."""
        return self.d_model * self.d_model + self.d_model if self.pooler else 0

    @property
    def _outside_layer_norms(self) -> int:
        """Norm parameters outside the layers: the final norm and the embedding norm, where present."""
        return self._norm_params_per_norm * (int(self.final_norm) + int(self.embedding_norm))

    @property
    def embedding_params(self) -> int:
        """Input embedding + untied output head + learned positions + segment embeddings."""
        v, d = self.vocab, self.d_model
        emb = v * d * (1 if self.tied_embeddings else 2)
        return emb + (self.seq_len * d if self.learned_positions else 0) + self.segment_embeddings * d

    def _layer_params(self, experts: int) -> int:
        return (
            self.attention_params_per_layer
            + experts * self.ffn_params_per_expert
            + self.router_params_per_layer
            + 2 * self._norm_params_per_norm
        )

    @property
    def params_per_layer(self) -> int:
        """Parameters of one transformer layer, every expert counted."""
        return self._layer_params(self.experts)

    @property
    def non_embedding_params(self) -> int:
        """All parameters except embeddings/head/positions (total over experts)."""
        return self.layers * self._layer_params(self.experts) + self._outside_layer_norms + self.pooler_params

    @property
    def params(self) -> int:
        """Total parameters (what memory holds)."""
        return self.non_embedding_params + self.embedding_params

    @property
    def active_non_embedding_params(self) -> int:
        return self.layers * self._layer_params(self.active_experts) + self._outside_layer_norms + self.pooler_params

    @property
    def active_params(self) -> int:
        return self.active_non_embedding_params + self.embedding_params

    @property
    def matmul_params(self) -> int:
        """PaLM's N (Chowdhery et al. 2022, App. B: 6·N + 12·L·H·Q·T FLOPs per training token): the weights that
        take part in a matmul per token, i.e. every layer's active matmuls (attention projections with their
        biases, the active experts' FFN, the router) plus the output head (V·d, a matmul even when tied).
        Not counted: the input embedding and positions (lookups), norms (elementwise) and BERT's pooler (first
        token only). ``ModelArrays`` (estimator/arrays.py) takes this figure (and derives a layer's share from it)."""
        active_layer = (
            self.attention_params_per_layer
            + self.active_experts * self.ffn_params_per_expert
            + self.router_params_per_layer
        )
        return self.layers * active_layer + self.vocab * self.d_model

    def param_breakdown(self, active: bool = False) -> dict[str, int]:
        """Parameters by part; the values sum to :attr:`params` (or :attr:`active_params` when ``active``).

        Keys: token_embedding (V·d + segment rows), position_embedding, output_head (V·d when untied),
        attention, ffn (every expert, or only the active ones), router, norms, pooler.
        """
        v, d, n = self.vocab, self.d_model, self.layers
        experts = self.active_experts if active else self.experts
        return {
            "token_embedding": v * d + self.segment_embeddings * d,
            "position_embedding": self.seq_len * d if self.learned_positions else 0,
            "output_head": 0 if self.tied_embeddings else v * d,
            "attention": n * self.attention_params_per_layer,
            "ffn": n * experts * self.ffn_params_per_expert,
            "router": n * self.router_params_per_layer,
            "norms": n * 2 * self._norm_params_per_norm + self._outside_layer_norms,
            "pooler": self.pooler_params,
        }


# ============================================================================================================
# Resolution of --model and the architecture flags
# ============================================================================================================

# The architecture options, each as messages name it (:func:`~flopcast.errors.opt`: a keyword here, a flag in the CLI).
FLAG_NAMES = {
    name: opt(name)
    for name in (
        "layers", "d_model", "heads", "kv_heads", "head_dim", "ffn", "gated_ffn", "vocab", "seq_len",
        "tied_embeddings", "experts", "active_experts",
    )
}  # fmt: skip
_BOOL_FLAGS = ("gated_ffn", "tied_embeddings")
# What a preset or a size leaves to the user: the run's sequence length and the vocabulary rows.
OVERRIDABLE_WITH_MODEL = ("vocab", "seq_len")
_REQUIRED_ARCHITECTURE = ("layers", "d_model", "heads")
_TRUE_WORDS, _FALSE_WORDS = {"true", "yes", "on", "1"}, {"false", "no", "off", "0"}
_SIZE_SUFFIX = re.compile(r"(?P<body>.*?\d\.?)\s*(?P<suffix>[kKmMgGbBtTpP])")


def _parse_bool(value: object, flag: str) -> bool:
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower()
    if word in _TRUE_WORDS or word in _FALSE_WORDS:
        return word in _TRUE_WORDS
    raise InvalidValue(f"{flag}: cannot read {value!r} as yes/no", hint="give true or false")


def looks_like_size(text: str) -> bool:
    """True when ``--model`` text is a size (starts with a digit: ``7B``, ``1.3e9``) rather than a preset id."""
    return bool(text) and (text[0].isdigit() or (text[0] == "." and text[1:2].isdigit()))


def parse_model_size(text: str) -> float:
    """``7B``, ``7b``, ``350M``, ``1.3e9`` → parameters. The suffix is case-insensitive here (``m`` is million)."""
    match = _SIZE_SUFFIX.fullmatch(text.strip())
    normal = (
        text.strip() if match is None else match["body"] + ("k" if match["suffix"] in "kK" else match["suffix"].upper())
    )
    try:
        return parse_count(normal, what=opt("model"))
    except InvalidValue as exc:
        raise InvalidValue(
            exc.raw_message, hint="give a preset id (`flopcast models list`) or a size such as 7B, 350M or 1.3e9"
        ) from None


def _spec(**fields) -> ModelSpec:
    """Build a ModelSpec; a validation failure becomes one :class:`InvalidValue` line naming the flag."""
    try:
        spec = ModelSpec(**fields)
    except ValidationError as exc:
        err = exc.errors()[0]
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        loc = err.get("loc") or ()
        where = FLAG_NAMES.get(str(loc[0]), str(loc[0])) + ": " if loc else ""
        raise InvalidValue(
            f"invalid model architecture: {where}{msg}",
            hint="`flopcast models show llama-2-7b` shows a valid architecture",
        ) from None
    if spec.params > MAX_MODEL_PARAMS:  # the same sanity bound as a size: keeps every estimate finite and fast
        raise InvalidValue(
            f"invalid model architecture: {spec.params:.3g} parameters, more than {MAX_MODEL_PARAMS:.0e}",
            hint=f"check {opt('layers')}, {opt('d_model')}, {opt('ffn')}, {opt('vocab')} and {opt('experts')}",
        )
    return spec


def _flags(names: list[str]) -> str:
    return ", ".join(FLAG_NAMES[n] for n in names)


def resolve_model(
    model: str | None = None,
    *,
    layers=None,
    d_model=None,
    heads=None,
    kv_heads=None,
    head_dim=None,
    ffn=None,
    gated_ffn=None,
    vocab=None,
    seq_len=None,
    tied_embeddings=None,
    experts=None,
    active_experts=None,
) -> ModelSpec:
    """The :class:`ModelSpec` that ``--model`` and the architecture flags describe. ``None`` = flag not given.

    Numeric flags may be ints or strings (``4k``, ``32000``: parsed with :func:`~flopcast.units.parse_int`);
    ``gated_ffn`` / ``tied_embeddings`` are booleans. The rules:

    * a preset id or alias (any case) → that preset; only ``seq_len`` and ``vocab`` may change it, any other
      architecture flag is :class:`ConflictingOptions`. An override that changes the parameter count drops
      the published counts (they no longer describe the model).
    * a size (``7B``, ``350M``, ``1.3e9``) → :func:`shape_for_size`; ``seq_len``/``vocab`` feed the rule,
      any other architecture flag is :class:`ConflictingOptions`.
    * no model → an explicit architecture: ``layers``, ``d_model`` and ``heads`` are required
      (:class:`InvalidValue` naming the missing ones); the rest default as in :class:`ModelSpec`.
      ``experts`` > 1 needs ``active_experts``.

    Whether tensor parallelism divides the heads is the layout's business, not checked here.
    """
    from flopcast.model_sizes import SIZE_RULE_VOCAB, shape_for_size
    from flopcast.presets import get_preset

    raw = {
        "layers": layers,
        "d_model": d_model,
        "heads": heads,
        "kv_heads": kv_heads,
        "head_dim": head_dim,
        "ffn": ffn,
        "gated_ffn": gated_ffn,
        "vocab": vocab,
        "seq_len": seq_len,
        "tied_embeddings": tied_embeddings,
        "experts": experts,
        "active_experts": active_experts,
    }
    given: dict[str, int | bool] = {}
    for name, value in raw.items():
        if value is None:
            continue
        flag = FLAG_NAMES[name]
        given[name] = _parse_bool(value, flag) if name in _BOOL_FLAGS else parse_int(value, what=flag)
    architecture = [n for n in given if n not in OVERRIDABLE_WITH_MODEL]

    if model is not None:
        text = str(model).strip()
        if not text:
            raise InvalidValue(
                f"{opt('model')}: empty value", hint="give a preset id such as llama-2-7b or a size such as 7B"
            )
        if looks_like_size(text):
            n_params = parse_model_size(text)
            if architecture:
                raise ConflictingOptions(
                    f"{opt('model')} {text} together with {_flags(architecture)}",
                    hint=f"a size lets flopcast pick the shape: drop {_flags(architecture)}, or drop {opt('model')} "
                    f"and give the architecture ({_flags(list(_REQUIRED_ARCHITECTURE))}, ...)",
                )
            return shape_for_size(
                n_params,
                vocab=given.get("vocab", SIZE_RULE_VOCAB),
                seq_len=given.get("seq_len", ModelSpec.model_fields["seq_len"].default),
            )
        preset = get_preset(text)
        if architecture:
            raise ConflictingOptions(
                f"{opt('model')} {preset.name} together with {_flags(architecture)}",
                hint=f"a preset fixes the architecture and only {opt('seq_len')} and {opt('vocab')} may change it: "
                f"drop {_flags(architecture)}, or drop {opt('model')} and give the whole architecture",
            )
        overrides = {n: v for n, v in given.items() if getattr(preset, n) != v}
        if not overrides:
            return preset
        changed = _spec(**{**preset.model_dump(), **overrides})
        if changed.params != preset.params:
            changed = changed.model_copy(update={"published_params": None, "published_active_params": None})
        return changed

    missing = [n for n in _REQUIRED_ARCHITECTURE if n not in given]
    if missing:
        raise InvalidValue(
            f"incomplete architecture: {_flags(missing)} missing"
            if len(missing) < len(_REQUIRED_ARCHITECTURE)
            else "no model given",
            hint=f"give {opt('model')} (a preset such as llama-2-7b, or a size such as 7B) or the architecture "
            f"{opt('layers')}, {opt('d_model')} and {opt('heads')}",
        )
    n_experts = given.get("experts", 1)
    if n_experts > 1 and "active_experts" not in given:
        raise InvalidValue(
            f"{opt('experts')} {n_experts} needs {opt('active_experts')}",
            hint=f"say how many experts each token uses, e.g. {opt('active_experts')} 2 (Mixtral's top-2)",
        )
    if "active_experts" in given and n_experts == 1 and given["active_experts"] > 1:
        raise InvalidValue(
            f"{opt('active_experts')} {given['active_experts']} needs {opt('experts')}",
            hint=f"give the total number of experts, e.g. {opt('experts')} 8",
        )
    return _spec(name="custom", **given)
