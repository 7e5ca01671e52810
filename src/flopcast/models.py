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

A model is given (``resolve_model``) as a preset id (``src/flopcast/data/model_presets.yaml``), as a size
(``7B``, ``350M``: :func:`shape_for_size` picks the shape), or as an explicit architecture.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, PositiveInt, ValidationError, model_validator

from flopcast.errors import ConflictingOptions, InvalidValue, RuntimeFailure, UnknownModel
from flopcast.units import parse_count, parse_int, suggest


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
        token only). ``ModelArrays.matmul_params`` (estimator/arrays.py) is the same sum:
        layers × layer_matmul_params_active + head_params."""
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
# Presets (src/flopcast/data/model_presets.yaml)
# ============================================================================================================

PRESETS_FILE = Path(__file__).resolve().parent / "data" / "model_presets.yaml"
_PRESET_EXTRA_KEYS = ("id", "title", "aliases", "notes")


@dataclass(frozen=True)
class PresetDetails:
    """A preset with what is not architecture: its id, a human title, aliases and notes on the source.

    A plain dataclass, not a pydantic model: presets load on every ``flopcast estimate`` and a second
    pydantic class would cost milliseconds of import time. ``spec`` is the validated :class:`ModelSpec`.
    """

    id: str
    title: str
    aliases: tuple[str, ...]
    notes: tuple[str, ...]
    spec: ModelSpec


def _compact(key: str) -> str:
    """``Llama2_7B`` → ``llama27b``: case, spaces, dashes and underscores ignored (dots kept: 1.3b ≠ 13b)."""
    return re.sub(r"[\s_\-]+", "", key.strip().lower())


class _Registry:
    """Every preset by id, alias and compact key (the last only where it names exactly one preset)."""

    def __init__(self, details: list[PresetDetails]):
        self.details = {d.id: d for d in details}
        self.aliases: dict[str, str] = {}
        self.compact: dict[str, set[str]] = {}
        for d in details:
            for alias in d.aliases:
                if alias in self.details or self.aliases.get(alias, d.id) != d.id:
                    raise RuntimeFailure(f"{PRESETS_FILE}: alias {alias!r} of {d.id} is already taken")
                self.aliases[alias] = d.id
            for key in [d.id, *d.aliases]:
                self.compact.setdefault(_compact(key), set()).add(d.id)

    def lookup(self, name: str) -> PresetDetails:
        key = name.strip().lower()
        if not key:
            raise UnknownModel("empty model id", hint="give a preset id such as llama-2-7b (`flopcast models list`)")
        pid = key if key in self.details else self.aliases.get(key)
        if pid is None:
            matches = self.compact.get(_compact(key), set())
            if len(matches) > 1:
                raise UnknownModel(f"model {name!r} is ambiguous", hint=f"did you mean {' or '.join(sorted(matches))}?")
            pid = next(iter(matches), None)
        if pid is None:
            close = []
            for hit in suggest(key, list(self.details) + list(self.aliases)):
                target = hit if hit in self.details else self.aliases[hit]
                if target not in close:
                    close.append(target)
            did = f"did you mean {', '.join(close)}? " if close else ""
            raise UnknownModel(
                f"unknown model {name!r}",
                hint=f"{did}`flopcast models list` shows every preset; a size such as 7B or an explicit "
                "--layers/--d-model/--heads also works",
            )
        return self.details[pid]


@functools.lru_cache(maxsize=1)
def _registry() -> _Registry:
    """Read and validate the shipped presets once per process (the data file is ours: C-accelerated SafeLoader)."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        doc = yaml.load(PRESETS_FILE.read_text(encoding="utf-8"), Loader=loader)  # noqa: S506 - a safe loader
    except (OSError, yaml.YAMLError) as exc:
        raise RuntimeFailure(
            f"cannot read the model presets {PRESETS_FILE}: {exc}", hint="reinstall flopcast"
        ) from None
    entries = doc.get("presets") if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        raise RuntimeFailure(f"{PRESETS_FILE}: expected a top-level 'presets:' list", hint="reinstall flopcast")
    details = []
    for i, entry in enumerate(entries):
        try:
            fields = dict(entry)
            extra = {k: fields.pop(k) for k in _PRESET_EXTRA_KEYS if k in fields}
            pid = str(extra["id"]).lower()
            spec = ModelSpec(name=pid, **fields)
            details.append(
                PresetDetails(
                    id=pid,
                    title=extra.get("title", pid),
                    aliases=tuple(extra.get("aliases") or ()),
                    notes=tuple(extra.get("notes") or ()),
                    spec=spec,
                )
            )
        except (KeyError, TypeError, ValueError, ValidationError) as exc:
            raise RuntimeFailure(f"{PRESETS_FILE}: preset #{i + 1}: {exc}", hint="reinstall flopcast") from None
    if len({d.id for d in details}) != len(details):
        raise RuntimeFailure(f"{PRESETS_FILE}: duplicate preset id", hint="reinstall flopcast")
    return _Registry(details)


def list_presets() -> list[ModelSpec]:
    """Every shipped preset, in file order (``name`` is the preset id)."""
    return [d.spec for d in _registry().details.values()]


def preset_details(name: str) -> PresetDetails:
    """The preset ``name`` (id or alias, any case) with its title, aliases and notes; :class:`UnknownModel` if none."""
    return _registry().lookup(name)


def get_preset(name: str) -> ModelSpec:
    """The preset ``name`` (id or unambiguous alias, any case); :class:`UnknownModel` with suggestions if none."""
    return _registry().lookup(name).spec


# ============================================================================================================
# Size → shape rule (``--model 7B``)
# ============================================================================================================

# Widths: (below this d_model, step in d_model, d_head). Below 1024, steps of 64 with d_head 64 as GPT-3
# Small/Medium (Brown et al. 2020, Table 2.1) and Pythia up to 410M (Biderman et al. 2023, Table 1) use;
# from 1024, d_head 128 as GPT-3 6.7B-175B and every Llama use, with widths of 128·k, then 256·k (an even head
# count) and from 4096 on 1024·k, so that the head count is a multiple of 8 and tensor parallelism within an
# 8-device node divides it (GPT-3 6.7B/13B/175B and Llama 2 7B/13B/70B have 32/40/96 and 32/40/64 heads).
SIZE_RULE_WIDTHS = ((1024, 64, 64), (2048, 128, 128), (4096, 256, 128), (math.inf, 1024, 128))
# SwiGLU hidden size 2/3·4d rounded up to a multiple of 256 (Touvron et al. 2023a, §2.2 and released code:
# 4096 → 11008); the plain FFN is 4d (Vaswani et al. 2017; GPT-3).
SIZE_RULE_GATED_FFN_RATIO = 8.0 / 3.0
SIZE_RULE_FFN_MULTIPLE = 256
SIZE_RULE_PLAIN_FFN_RATIO = 4
SIZE_RULE_VOCAB = 32000  # the LLaMA / Llama 2 SentencePiece vocabulary (Touvron et al. 2023a, §2.1)
# Aspect ratio d_model/n_layer, from GPT-3's Table 2.1: 768/12 = 64 for GPT-3 Small (125M params) and
# 4096/32 = 5120/40 = 12288/96 = 128 for 6.7B, 13B and 175B; log-linear in between, constant outside.
SIZE_RULE_SMALL_PARAMS, SIZE_RULE_SMALL_ASPECT = 125e6, 64.0
SIZE_RULE_LARGE_PARAMS, SIZE_RULE_LARGE_ASPECT = 6.7e9, 128.0
# Kaplan et al. 2020 (§3.1, Fig. 5): at a fixed size, loss depends only weakly on the aspect ratio over a wide
# range, so any shape within a factor of 2 of the target ratio is admitted.
SIZE_RULE_ASPECT_BAND = 2.0
SIZE_RULE_BUCKET = 1.015  # admitted shapes are grouped into 1.5%-wide (log-spaced) buckets of total params
SIZE_RULE_TOLERANCE = 0.02  # the chosen shape is within 2% of the requested size, or the request is refused
SIZE_RULE_MAX_PARAMS = 1e15  # a sanity bound: a quadrillion parameters


def _target_aspect(params: float) -> float:
    """The GPT-3-table aspect ratio d_model/n_layer for a model of ``params`` parameters."""
    lo, hi = math.log(SIZE_RULE_SMALL_PARAMS), math.log(SIZE_RULE_LARGE_PARAMS)
    t = min(max((math.log(params) - lo) / (hi - lo), 0.0), 1.0)
    return SIZE_RULE_SMALL_ASPECT * (SIZE_RULE_LARGE_ASPECT / SIZE_RULE_SMALL_ASPECT) ** t


def _size_label(n_params: float) -> str:
    for scale, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if n_params >= scale:
            return f"{n_params / scale:.4g}{suffix}"
    return f"{n_params:.4g}"


def _next_width(d_model: int) -> int:
    """The next admitted d_model above ``d_model`` (64, 128, ..., 960, 1024, 1152, ..., 2048, 2304, ..., 4096, 5120)."""
    for below, step, _ in SIZE_RULE_WIDTHS:
        if d_model < below:
            nxt = (d_model // step + 1) * step
            return nxt if nxt <= below else below
    raise AssertionError("unreachable: the last width band is unbounded")


def _head_dim_for(d_model: int) -> int:
    return next(head_dim for below, _, head_dim in SIZE_RULE_WIDTHS if d_model < below)


def _ffn_for(d_model: int, gated: bool) -> int:
    if not gated:
        return SIZE_RULE_PLAIN_FFN_RATIO * d_model
    return SIZE_RULE_FFN_MULTIPLE * math.ceil(int(SIZE_RULE_GATED_FFN_RATIO * d_model) / SIZE_RULE_FFN_MULTIPLE)


def _size_rule_spec(d_model: int, layers: int, gated_ffn: bool, vocab: int, tied: bool, seq_len: int) -> ModelSpec:
    """The size rule's shape, unvalidated (valid by construction: d_model = heads·d_head); for counting only."""
    return ModelSpec.model_construct(
        name="size-rule", layers=layers, d_model=d_model, heads=d_model // _head_dim_for(d_model), kv_heads=None,
        head_dim=None, ffn=_ffn_for(d_model, gated_ffn), gated_ffn=gated_ffn, vocab=vocab, seq_len=seq_len,
        tied_embeddings=tied, learned_positions=False, biases=False, layernorm_bias=False, experts=1,
        active_experts=1, segment_embeddings=0, embedding_norm=False, final_norm=True, pooler=False,
        published_params=None, published_active_params=None, source=None,
    )  # fmt: skip


_Candidate = tuple[float, int, int, int]  # (|ln(aspect/target)|, d_model, layers, params)


def _admitted_shapes(
    b_lo: int, b_hi: int, gated_ffn: bool, vocab: int, tied: bool, seq_len: int
) -> tuple[dict[int, _Candidate], list[_Candidate]]:
    """Every admitted shape whose total falls in log buckets b_lo..b_hi, and each bucket's representative.

    A bucket's representative is its shape closest to the target aspect ratio (ties: the narrower). It depends
    only on the bucket, never on the request, which is what makes :func:`shape_for_size` monotone.
    """
    log_b = math.log(SIZE_RULE_BUCKET)
    p_lo, p_hi = math.exp(b_lo * log_b) * (1 - 1e-9), math.exp((b_hi + 1) * log_b) * (1 + 1e-9)
    widest = SIZE_RULE_LARGE_ASPECT * SIZE_RULE_ASPECT_BAND  # no admitted shape is wider than this ratio
    deepest = SIZE_RULE_SMALL_ASPECT / SIZE_RULE_ASPECT_BAND  # ... nor deeper than this one
    band = math.log(SIZE_RULE_ASPECT_BAND)
    kept: dict[int, _Candidate] = {}
    admitted: list[_Candidate] = []
    d = 0
    while True:
        d = _next_width(d)
        one = _size_rule_spec(d, 1, gated_ffn, vocab, tied, seq_len)
        per_layer = one.params_per_layer
        base = one.params - per_layer
        fewest = max(1, math.ceil(d / widest))
        if base + fewest * per_layer > p_hi:
            break  # this width (and every wider one) is too big even at its shallowest admitted depth
        first = max(fewest, math.ceil((p_lo - base) / per_layer))
        last = min(math.floor(d / deepest), math.floor((p_hi - base) / per_layer))
        for layers in range(first, last + 1):
            total = base + layers * per_layer
            bucket = math.floor(math.log(total) / log_b)
            if not b_lo <= bucket <= b_hi:
                continue
            score = abs(math.log(d / layers / _target_aspect(math.exp((bucket + 0.5) * log_b))))
            if score <= band:
                admitted.append((score, d, layers, total))
                if bucket not in kept or (score, d) < kept[bucket][:2]:
                    kept[bucket] = (score, d, layers, total)
    return kept, admitted


def shape_for_size(
    n_params: float,
    *,
    gated_ffn: bool = True,
    vocab: int = SIZE_RULE_VOCAB,
    tied_embeddings: bool = False,
    seq_len: int = 2048,
) -> ModelSpec:
    """A Llama-style shape with about ``n_params`` total parameters (within :data:`SIZE_RULE_TOLERANCE`, 2%).

    The rule is deterministic and monotone (a bigger request never gets fewer parameters):

    1. Admitted shapes: d_model from the ladder :data:`SIZE_RULE_WIDTHS` (64·k with d_head 64 below 1024;
       then d_head 128 with 128·k, 256·k and, from 4096, 1024·k so that the head count divides by 8),
       heads = d_model/d_head, FFN SwiGLU of 256·ceil(⌊8/3·d⌋/256) (4·d when not ``gated_ffn``), and every
       layer count whose aspect ratio d_model/n_layer is within a factor 2 of the target: 64 at 125M
       parameters, rising log-linearly to 128 at 6.7B and above — GPT-3's shapes (Brown et al. 2020,
       Table 2.1). Kaplan et al. 2020 (§3.1, Fig. 5) found loss nearly flat across such ratios.
    2. Admitted shapes fall into fixed 1.5%-wide log buckets of total parameters; each bucket's
       representative is its shape with the aspect ratio closest to the target (ties: the narrower).
    3. The answer is the representative of the bucket holding ``n_params``; if that bucket is empty, the
       admitted shape nearest in parameters (ties: the smaller). Buckets and representatives do not depend on
       the request, so the map is monotone. Nothing within 2% → :class:`InvalidValue`.

    The rest is :class:`ModelSpec`'s default decoder: multi-head attention, no biases, RMSNorm, rotary
    positions, untied embeddings of ``vocab`` rows (32,000, LLaMA's, unless given).
    Examples: 7B → 33 × 4096 (6.94B), 13B → 40 × 5120 (Llama 2 13B's shape), 175B → 96 × 12288.
    """
    if not (n_params > 0 and math.isfinite(n_params)):
        raise InvalidValue(f"--model: size {n_params!r} is not a positive number", hint="give a size such as 7B")
    if n_params > SIZE_RULE_MAX_PARAMS:
        raise InvalidValue(
            f"--model {_size_label(n_params)}: larger than {SIZE_RULE_MAX_PARAMS:.0e} parameters",
            hint="give a smaller size",
        )
    log_b = math.log(SIZE_RULE_BUCKET)
    home = math.floor(math.log(n_params) / log_b)
    reach = math.ceil(math.log1p(SIZE_RULE_TOLERANCE) / log_b) + 1
    kept, admitted = _admitted_shapes(home - reach, home + reach, gated_ffn, vocab, tied_embeddings, seq_len)
    if home in kept:  # the representative of the request's own bucket ...
        _, d, layers, total = kept[home]
    elif admitted:  # ... else the admitted shape nearest in parameters (ties: the smaller)
        _, d, layers, total = min(admitted, key=lambda c: (abs(math.log(c[3] / n_params)), c[3]))
    if admitted and abs(total / n_params - 1.0) <= SIZE_RULE_TOLERANCE:
        shape = _size_rule_spec(d, layers, gated_ffn, vocab, tied_embeddings, seq_len)
        return ModelSpec(
            **{
                **shape.model_dump(),
                "name": f"size-{_size_label(n_params).lower()}",
                "source": f"flopcast size rule for {_size_label(n_params)} (aspect ratio after GPT-3, Table 2.1)",
            }
        )
    smallest = _size_rule_spec(_next_width(0), 1, gated_ffn, vocab, tied_embeddings, seq_len).params
    why = (
        f"even the smallest shape has {_size_label(smallest)} parameters with a {vocab}-row vocabulary"
        if n_params < smallest * (1 + SIZE_RULE_TOLERANCE)
        else f"no admitted shape comes within {SIZE_RULE_TOLERANCE:.0%}; small models are coarse-grained"
    )
    raise InvalidValue(
        f"--model {_size_label(n_params)}: {why}",
        hint="give the architecture instead (--layers, --d-model, --heads) or a preset (`flopcast models list`)",
    )


# ============================================================================================================
# Resolution of --model and the architecture flags
# ============================================================================================================

FLAG_NAMES = {
    "layers": "--layers",
    "d_model": "--d-model",
    "heads": "--heads",
    "kv_heads": "--kv-heads",
    "head_dim": "--head-dim",
    "ffn": "--ffn",
    "gated_ffn": "--gated-ffn",
    "vocab": "--vocab",
    "seq_len": "--seq-len",
    "tied_embeddings": "--tied-embeddings",
    "experts": "--experts",
    "active_experts": "--active-experts",
}
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
        return parse_count(normal, what="--model")
    except InvalidValue as exc:
        raise InvalidValue(
            exc.message, hint="give a preset id (`flopcast models list`) or a size such as 7B, 350M or 1.3e9"
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
    if spec.params > SIZE_RULE_MAX_PARAMS:  # the same sanity bound as a size: keeps every estimate finite and fast
        raise InvalidValue(
            f"invalid model architecture: {spec.params:.3g} parameters, more than {SIZE_RULE_MAX_PARAMS:.0e}",
            hint="check --layers, --d-model, --ffn, --vocab and --experts",
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
            raise InvalidValue("--model: empty value", hint="give a preset id such as llama-2-7b or a size such as 7B")
        if looks_like_size(text):
            n_params = parse_model_size(text)
            if architecture:
                raise ConflictingOptions(
                    f"--model {text} together with {_flags(architecture)}",
                    hint=f"a size lets flopcast pick the shape: drop {_flags(architecture)}, or drop --model and "
                    "give the architecture (--layers, --d-model, --heads, ...)",
                )
            return shape_for_size(
                n_params,
                vocab=given.get("vocab", SIZE_RULE_VOCAB),
                seq_len=given.get("seq_len", ModelSpec.model_fields["seq_len"].default),
            )
        preset = get_preset(text)
        if architecture:
            raise ConflictingOptions(
                f"--model {preset.name} together with {_flags(architecture)}",
                hint=f"a preset fixes the architecture and only --seq-len and --vocab may change it: drop "
                f"{_flags(architecture)}, or drop --model and give the whole architecture",
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
            hint="give --model (a preset such as llama-2-7b, or a size such as 7B) or the architecture "
            "--layers, --d-model and --heads",
        )
    n_experts = given.get("experts", 1)
    if n_experts > 1 and "active_experts" not in given:
        raise InvalidValue(
            f"--experts {n_experts} needs --active-experts",
            hint="say how many experts each token uses, e.g. --active-experts 2 (Mixtral's top-2)",
        )
    if "active_experts" in given and n_experts == 1 and given["active_experts"] > 1:
        raise InvalidValue(
            f"--active-experts {given['active_experts']} needs --experts",
            hint="give the total number of experts, e.g. --experts 8",
        )
    return _spec(name="custom", **given)
