"""The layout record's fields, declared once, as plain data (no numpy, so the CLI's options can read them):
name, default, what it means, what happens when a user leaves it open, whether the CLI offers a flag.

Everything else is built from this tuple: the record :class:`flopcast.layout.Layout` and the query
``LayoutQuery``, the core's ``LayoutArrays``, the report's ``LayoutInfo``/``LayoutQueryInfo``, the library's
layout keywords (``flopcast.estimate(tp=...)``), the CLI's layout flags (``cli.options.layout_options``) and
the CSV columns. A new parallel dimension is one line here, its validity rule (layout.check_layout), its
enumeration (search.py) and its physics (estimator/)."""

from __future__ import annotations

from typing import NamedTuple


class FieldSpec(NamedTuple):
    """One field of the layout record: its default, its help text (flags, report schema) and its CSV column."""

    name: str
    default: int | str
    help: str
    when_open: str  # what happens when the user leaves it open (the flag's help says so)
    always_shown: bool = True  # False: left out of flags and tables while at its default (slots, options)
    cli: bool = True  # the CLI offers a flag for it (False for slots the core does not model yet)


LAYOUT_SPECS = (
    FieldSpec("tp", 1, "tensor-parallel degree", "searched"),
    FieldSpec("pp", 1, "pipeline stages", "searched"),
    FieldSpec("dp", 1, "data-parallel degree", "devices/(tp·cp·pp)"),
    FieldSpec(
        "cp",
        1,
        "context-parallel degree: each sequence split over cp devices (ring attention)",
        "searched when the sequence is 16k tokens or longer",
        always_shown=False,
    ),
    FieldSpec(
        "ep",
        1,
        "expert-parallel degree (MoE): routed experts split over ep of the dp·cp devices",
        "searched for MoE models",
        always_shown=False,
    ),
    FieldSpec("micro_batch", 1, "sequences per micro-batch", "searched"),
    FieldSpec("global_batch", 1, "sequences per optimizer step", "~0.5M–4M tokens by size"),
    FieldSpec("zero", 0, "ZeRO stage 0–3", "searched"),
    FieldSpec(
        "shard_group",
        0,
        "ZeRO/FSDP shard group: shard model states within groups of N data-parallel ranks and "
        "replicate across them (HSDP)",
        "all of dp·cp",
        always_shown=False,
    ),
    FieldSpec("recompute", "none", "activation recomputation: none, selective, op, attention or full", "searched"),
    FieldSpec(
        "interleave", 1, "interleaved pipeline: virtual stages per device", "searched when pp > 1", always_shown=False
    ),
)
SPEC_BY_NAME = {s.name: s for s in LAYOUT_SPECS}
LAYOUT_FIELDS = tuple(s.name for s in LAYOUT_SPECS)
CLI_LAYOUT_FIELDS = tuple(s.name for s in LAYOUT_SPECS if s.cli)
