"""The parallel layout: ONE record (:class:`Layout`), what a user fixed of it (:class:`LayoutQuery`), and ONE
validity check (:func:`check_layout`).

A layout splits ``devices = tp · cp · pp · dp`` (tensor, context, pipeline, data parallel; ``ep`` experts
within dp·cp), runs ``micro_batch`` sequences per micro-batch and ``global_batch`` sequences per optimizer
step, shards model states with a ZeRO stage (0–3), recomputes none / selective / full activations and, with
more than one pipeline stage, may run the interleaved 1F1B schedule with ``interleave`` virtual stages per
device. In the spirit of torchtitan's ``ParallelDims``: the fields are declared once (:data:`LAYOUT_SPECS`, in
the order of the core's ``LayoutArrays``), and the array form, the report form
(:mod:`flopcast.reports.layout`), the flags and the CSV columns are derived from them.

The search over layouts lives in :mod:`flopcast.search`; it only enumerates layouts this check accepts
(tests/test_layout.py checks that property).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from flopcast.errors import InvalidLayout, opt
from flopcast.estimator.arrays import RECOMPUTE_NAMES, LayoutArrays
from flopcast.layout_fields import LAYOUT_FIELDS, LAYOUT_SPECS

ZERO_STAGES = (0, 1, 2, 3)


_LayoutFields = NamedTuple("_LayoutFields", [(f.name, type(f.default)) for f in LAYOUT_SPECS])
_LayoutFields.__new__.__defaults__ = tuple(f.default for f in LAYOUT_SPECS)


class Layout(_LayoutFields):
    """One parallel layout: the fields of flopcast.layout_fields, each at its default unless given (validated
    against a model and device count by :func:`check_layout`). A NamedTuple: immutable, and several times faster
    to define than a dataclass (start-up time matters for the CLI)."""

    __slots__ = ()

    @property
    def devices(self) -> int:
        return self.tp * self.cp * self.pp * self.dp

    @property
    def micro_batches(self) -> int:
        """Micro-batches per optimizer step per replica (the global batch divides dp × micro-batch)."""
        return self.global_batch // (self.dp * self.micro_batch)

    def as_dict(self) -> dict:
        return self._asdict()

    def replace(self, **changes) -> Layout:
        return self._replace(**changes)

    def arrays(self) -> LayoutArrays:
        values = self.as_dict()
        values["recompute"] = RECOMPUTE_NAMES.index(self.recompute)
        return LayoutArrays.of(**{k: [v] for k, v in values.items()})

    @classmethod
    def from_arrays(cls, arrays: LayoutArrays, i: int = 0) -> Layout:
        """The layout of row ``i`` (trusted values from the enumeration: no validation)."""
        row = {name: int(np.atleast_1d(getattr(arrays, name))[i]) for name in LAYOUT_FIELDS}
        row["recompute"] = RECOMPUTE_NAMES[row["recompute"]]
        return cls(**row)

    def shown(self) -> dict:
        """The fields a reader needs: every always-shown field, and the others where not at their default."""
        return {
            s.name: getattr(self, s.name) for s in LAYOUT_SPECS if s.always_shown or getattr(self, s.name) != s.default
        }

    def flags(self) -> str:
        """The CLI flags that reproduce this layout."""
        return " ".join(f"--{name.replace('_', '-')} {value}" for name, value in self.shown().items())

    def short(self) -> str:
        """``8·4·32 mb1 z1 sel v2``: tp·pp·dp (cp and ep when > 1), micro-batch, ZeRO, recompute, interleave."""
        degrees = "·".join(str(d) for d in (self.tp, self.pp, self.dp)) + (f" cp{self.cp}" if self.cp > 1 else "")
        degrees += f" ep{self.ep}" if self.ep > 1 else ""
        short = {"none": "", "selective": " sel", "full": " full", "op": " op", "attention": " attn"}
        recompute = short[self.recompute]
        inter = f" v{self.interleave}" if self.interleave > 1 else ""
        return f"{degrees} mb{self.micro_batch} z{self.zero}{recompute}{inter}"


def degrees_text(layout) -> str:
    """``tp 8 · cp 16 · pp 16 · dp 8 · ep 8``: the parallel degrees of a layout (record or report form), cp and ep
    only where above 1."""
    names = ("tp", "cp", "pp", "dp", "ep")
    return " · ".join(
        f"{n} {getattr(layout, n, 1)}" for n in names if n in ("tp", "pp", "dp") or getattr(layout, n, 1) > 1
    )


_QueryFields = NamedTuple("_QueryFields", [(name, object) for name in (*LAYOUT_FIELDS, "max_tp")])
_QueryFields.__new__.__defaults__ = (None,) * (len(LAYOUT_FIELDS) + 1)


class LayoutQuery(_QueryFields):
    """What the user fixed of the layout (None = search it): one optional value per layout field, plus the
    search's bound on tp (``max_tp``, default: the devices per node)."""

    __slots__ = ()

    def given(self) -> dict:
        return {name: getattr(self, name) for name in LAYOUT_FIELDS if getattr(self, name) is not None}

    def replace(self, **changes) -> LayoutQuery:
        return self._replace(**changes)

    @classmethod
    def of_layout(cls, layout: Layout) -> LayoutQuery:
        """A query that fixes every field of ``layout``."""
        return cls(**layout.as_dict())


# Default global batch in tokens when none is given (the rule is applied to the parameter count):
# GPT-3 (Brown et al. 2020, Table 2.1) used 0.5M tokens up to 760M parameters, 1M for 1.3B–2.7B and 2M for
# 6.7B–13B; Llama 1 and 2 (Touvron et al. 2023a/b) used 4M tokens for every size from 7B to 70B. Their "M"
# is 2^20 tokens: GPT-3's 0.5M is 256 sequences of 2048 tokens and its 3.2M is 1536 × 2048 = 3·2^20;
# Llama's 4M is 2048 × 2048 (and Llama 2's 1024 × 4096). So the default is a power-of-two count of
# sequences at the usual sequence lengths.
MEBI_TOKENS = 2**20
DEFAULT_BATCH_TOKENS_BY_PARAMS = (
    (1e9, 0.5 * MEBI_TOKENS),
    (3e9, 1 * MEBI_TOKENS),
    (20e9, 2 * MEBI_TOKENS),
    (float("inf"), 4 * MEBI_TOKENS),
)


def default_global_batch(params: float, seq_len: int) -> int:
    """Sequences per step by the documented rule (see DEFAULT_BATCH_TOKENS_BY_PARAMS)."""
    for limit, batch_tokens in DEFAULT_BATCH_TOKENS_BY_PARAMS:
        if params < limit:
            return max(1, round(batch_tokens / seq_len))
    raise AssertionError("unreachable")


def divisors(n: int) -> list[int]:
    """Every divisor of ``n`` in increasing order, in O(√n) (a typed ``--layers 5B`` must not hang)."""
    n = int(n)
    if n < 1:
        return []
    root = int(np.sqrt(n)) + 1
    small: list[int] = []
    for start in range(1, root + 1, _DIVISOR_CHUNK):  # bounded memory whatever n is
        k = np.arange(start, min(start + _DIVISOR_CHUNK, root + 1), dtype=np.int64)
        small += k[(k * k <= n) & (n % k == 0)].tolist()
    large = [n // k for k in reversed(small) if k * k != n]
    return small + large


_DIVISOR_CHUNK = 1 << 20  # candidates tested per numpy call in divisors() (8 MiB of int64)


def _listed(values) -> str:
    return ", ".join(str(v) for v in values)


def _check_shard_group(devices: int, q: LayoutQuery) -> None:
    """HSDP: a shard group needs a ZeRO stage that shards, and divides dp·cp (and the devices)."""
    group = q.shard_group or 0
    if group == 0:
        return
    if q.zero is not None and q.zero == 0:
        raise InvalidLayout(
            f"{opt('shard_group')} {group}: ZeRO stage 0 shards nothing", hint=f"give {opt('zero')} 1, 2 or 3"
        )
    replicas = q.dp * (q.cp or 1) if q.dp is not None else None
    if devices % group or (replicas is not None and replicas % group):
        within = f"dp·cp = {replicas}" if replicas is not None else f"{opt('devices')} {devices}"
        raise InvalidLayout(
            f"{opt('shard_group')} {group} does not divide {within}",
            hint="use a divisor of the data-parallel devices, e.g. the devices per node",
        )


def _check_context_and_experts(model, devices: int, q: LayoutQuery) -> None:
    """The rules of cp and ep (see :func:`check_layout`)."""
    from flopcast.estimator.context_parallel import CP_CHUNKS_PER_RANK

    cp, ep = q.cp, q.ep
    if cp is not None and cp > 1 and model.seq_len % (CP_CHUNKS_PER_RANK * cp):
        fitting = [c for c in divisors(model.seq_len // CP_CHUNKS_PER_RANK) if 1 < c <= min(devices, 64)]
        raise InvalidLayout(
            f"{opt('cp')} {cp}: the sequence of {model.seq_len} tokens does not split into 2·cp = "
            f"{CP_CHUNKS_PER_RANK * cp} equal chunks (causal load balancing)",
            hint=f"use {opt('cp')} {_listed(fitting[:6])}" if fitting else f"drop {opt('cp')}",
        )
    _check_shard_group(devices, q)
    if ep is None or ep == 1:
        return
    if model.experts == 1:
        raise InvalidLayout(
            f"{opt('ep')} {ep}: expert parallelism needs a mixture-of-experts model; this one is dense",
            hint=f"drop {opt('ep')}, or give {opt('experts')} and {opt('active_experts')}",
        )
    if model.experts % ep:
        raise InvalidLayout(
            f"{opt('ep')} {ep} does not divide the {model.experts} routed experts",
            hint=f"use one of {_listed(d for d in divisors(model.experts) if 1 < d <= devices)}",
        )
    if devices % ep:
        raise InvalidLayout(
            f"{opt('ep')} {ep} does not divide {opt('devices')} {devices}", hint="choose ep dividing the device count"
        )
    if q.dp is not None and q.dp * (cp or 1) % ep:
        raise InvalidLayout(
            f"{opt('ep')} {ep} does not divide dp·cp = {q.dp * (cp or 1)}: the expert group is made of data- and "
            "context-parallel devices",
            hint=f"use an ep dividing {q.dp * (cp or 1)}, or leave {opt('dp')} out",
        )


def check_layout(model, devices: int, layout: Layout | LayoutQuery) -> None:
    """Raise :class:`InvalidLayout` (exit 2) when ``layout`` cannot run ``model`` on ``devices``.

    Every validity rule of a layout lives here. ``layout`` may be partial (a :class:`LayoutQuery`): each rule
    is applied to the fields it needs, so a query that passes has a valid completion unless the search finds
    none (then it says so). The rules:
      * degrees ≥ 1, ZeRO stage 0–3, a known recompute mode; a shard group (HSDP, 0 = all of dp·cp) needs
        ZeRO ≥ 1 and divides dp·cp;
      * cp > 1 needs the sequence divisible by 2·cp (Megatron-LM's causal load balancing gives each rank two
        chunks); ep > 1 needs an MoE model whose routed experts it divides, and divides dp·cp (the expert
        group is carved out of the data- and context-parallel devices);
      * tp divides the attention heads; pp is at most the layers (uneven stages allowed: the fullest holds
        ⌈L/pp⌉, as Llama 3 ran 126 layers on 16 stages, Dubey et al. 2024 Sec. 3.3.2);
      * the degrees given divide the device count, and equal it when all are given;
      * the global batch is a multiple of dp × micro-batch (of each, when only one is given);
      * interleave > 1 needs pp > 1, the layers of the fullest stage (⌈L/pp⌉) divisible by it — with uneven
        stages the first and last model chunks hold the missing layers, as Llama 3 ran 126 layers on 16 stages
        of interleaved chunks (Dubey et al. 2024 Sec. 3.3.2; Megatron-Core's first/last-stage layer counts
        work with virtual pipelines) — and (Megatron-LM's interleaved schedule) the micro-batches per step
        divisible by pp.
    """
    q = layout if isinstance(layout, LayoutQuery) else LayoutQuery.of_layout(layout)
    if getattr(model, "measured", False):  # data parallel only (flopcast.measured_models)
        from flopcast.measured_models import check_measured_layout

        check_measured_layout(model, q)
    for name, value in q.given().items():
        if name == "recompute":
            if value not in RECOMPUTE_NAMES:
                from flopcast.units import suggest

                close = suggest(str(value), list(RECOMPUTE_NAMES))
                maybe = f"did you mean {' or '.join(close)}? " if close else ""
                raise InvalidLayout(
                    f"{opt(name)}: {value!r} is not a recompute mode",
                    hint=f"{maybe}use one of {', '.join(RECOMPUTE_NAMES)}",
                )
        elif name == "zero":
            if value not in ZERO_STAGES:
                raise InvalidLayout(f"{opt(name)}: {value!r} is not a ZeRO stage", hint="use 0, 1, 2 or 3")
        elif name == "shard_group":
            if int(value) < 0:
                raise InvalidLayout(
                    f"{opt(name)}: {value} is not a group size", hint="give 1 or more (0: all of dp·cp)"
                )
        elif int(value) < 1:
            raise InvalidLayout(f"{opt(name)}: {value} is not a positive count", hint="give 1 or more")
    _check_context_and_experts(model, devices, q)
    tp, pp, dp, mb, gb, v = q.tp, q.pp, q.dp, q.micro_batch, q.global_batch, q.interleave
    if tp is not None and model.heads % tp:
        raise InvalidLayout(
            f"{opt('tp')} {tp} does not divide the {model.heads} attention heads",
            hint=f"use one of {_listed(d for d in divisors(model.heads) if d <= devices)}",
        )
    if pp is not None and pp > model.layers:
        raise InvalidLayout(
            f"{opt('pp')} {pp}: more pipeline stages than the model's {model.layers} layers",
            hint=f"use at most {model.layers}",
        )
    if v is not None and v > 1:
        if pp == 1 or (pp is None and devices == 1):
            raise InvalidLayout(
                f"{opt('interleave')} {v} needs pipeline parallelism ({opt('pp')} > 1)",
                hint=f"drop {opt('interleave')} or give {opt('pp')}",
            )
        fullest = -(-model.layers // pp) if pp is not None else None
        if fullest is not None and fullest % v:
            raise InvalidLayout(
                f"{opt('interleave')} {v} does not divide the {fullest} layers of the fullest pipeline stage",
                hint=f"use one of {_listed(divisors(fullest))}",
            )
    degrees = {name: getattr(q, name) for name in ("tp", "cp", "pp", "dp") if getattr(q, name) is not None}
    product = int(np.prod(list(degrees.values()))) if degrees else 1
    names = "·".join(degrees)
    if len(degrees) == 4 or (len(degrees) == 3 and "cp" not in degrees):
        if product != devices:
            values = "·".join(str(x) for x in degrees.values())
            raise InvalidLayout(
                f"{names} = {values} = {product} but {opt('devices')} is {devices}",
                hint=f"make the product equal the device count, or leave one of {opt('tp')}/{opt('pp')}/{opt('dp')} "
                "out to derive it",
            )
    elif devices % product:
        raise InvalidLayout(
            f"{names} = {product} does not divide {opt('devices')} {devices}",
            hint="choose degrees whose product divides the device count",
        )
    if gb is not None:
        if dp is not None and mb is not None and gb % (dp * mb):
            step = dp * mb
            raise InvalidLayout(
                f"{opt('global_batch')} {gb} is not divisible by dp × micro-batch = {dp} × {mb} = {step}",
                hint=f"use a multiple of {step}, e.g. {max(step, round(gb / step) * step)}",
            )
        if dp is not None and gb % dp:
            raise InvalidLayout(
                f"{opt('global_batch')} {gb} is not divisible by dp = {dp}", hint=f"use a multiple of {dp}"
            )
        if mb is not None and gb % mb:
            raise InvalidLayout(
                f"{opt('global_batch')} {gb} is not divisible by {opt('micro_batch')} {mb}",
                hint=f"use a multiple of {mb}",
            )
        if v is not None and v > 1 and None not in (dp, mb, pp) and (gb // (dp * mb)) % pp:
            raise InvalidLayout(
                f"{opt('interleave')} {v}: the interleaved schedule needs the {gb // (dp * mb)} micro-batches per "
                f"step divisible by pp = {pp}",
                hint=f"use {opt('interleave')} 1, or a global batch that gives a multiple of pp micro-batches",
            )
