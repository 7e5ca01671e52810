"""The size → shape rule (``--model 7B``): the layers, width, heads and FFN a given parameter count becomes."""

from __future__ import annotations

import math

from flopcast.errors import InvalidValue, opt
from flopcast.models import MAX_MODEL_PARAMS as SIZE_RULE_MAX_PARAMS
from flopcast.models import ModelSpec

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
        raise InvalidValue(f"{opt('model')}: size {n_params!r} is not a positive number", hint="give a size such as 7B")
    if n_params > SIZE_RULE_MAX_PARAMS:
        raise InvalidValue(
            f"{opt('model')} {_size_label(n_params)}: larger than {SIZE_RULE_MAX_PARAMS:.0e} parameters",
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
        f"{opt('model')} {_size_label(n_params)}: {why}",
        hint=f"give the architecture instead ({opt('layers')}, {opt('d_model')}, {opt('heads')}) or a preset "
        "(`flopcast models list`)",
    )
