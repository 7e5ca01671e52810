"""`flopcast models list|show`: the shipped model presets and what a size such as 7B resolves to."""

from __future__ import annotations

import json
import re

import typer

from flopcast.cli._app import app
from flopcast.cli.common import (
    OutputFormat,
    emit_text,
    preflight_output,
    render_to_text,
)
from flopcast.cli.options import Force, Format, Output, complete_model

models_app = typer.Typer(help="List and show model presets (and what a size such as 7B becomes).", no_args_is_help=True)
app.add_typer(models_app, name="models")

LIST_HEADERS = [
    "id", "params", "active params", "layers", "d_model", "heads", "kv_heads", "ffn", "gated", "vocab",
    "seq_len", "source",
]  # fmt: skip
BREAKDOWN_LABELS = {
    "token_embedding": "token embedding",
    "position_embedding": "position embedding",
    "output_head": "output head (untied)",
    "attention": "attention",
    "ffn": "FFN",
    "router": "MoE router",
    "norms": "norms",
    "pooler": "pooler",
}
_SHORT_SOURCE = re.compile(r"^(.*?\b(?:19|20)\d\d[a-z]?)\b")


def _human(count: float | None) -> str:
    """``6738415616`` → ``6.74B`` (display only)."""
    if count is None:
        return ""
    for scale, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if count >= scale:
            return f"{count / scale:.4g}{suffix}"
    return f"{count:g}"


def _short_source(source: str | None) -> str:
    """``Brown et al. 2020, Language Models ...`` → ``Brown 2020`` (for the table, which must fit 120 columns)."""
    if not source:
        return ""
    match = _SHORT_SOURCE.match(source)
    return match.group(1).replace(" et al.", "") if match else source


def _list_row(spec, human: bool) -> list:
    count = _human if human else (lambda n: n)
    return [
        spec.name, count(spec.params), count(spec.active_params), spec.layers, spec.d_model, spec.heads,
        spec.n_kv_heads, spec.ffn_size, "yes" if spec.gated_ffn else "no", spec.vocab, spec.seq_len,
        _short_source(spec.source) if human else (spec.source or ""),
    ]  # fmt: skip


def _summary(spec) -> dict:
    """The JSON document of one model: every spec field plus the computed counts."""
    doc = {"id": spec.name, **spec.model_dump(mode="json")}
    doc.update(
        params=spec.params,
        active_params=spec.active_params,
        non_embedding_params=spec.non_embedding_params,
        matmul_params=spec.matmul_params,
        breakdown=spec.param_breakdown(),
    )
    if spec.experts > 1:
        doc["active_breakdown"] = spec.param_breakdown(active=True)
    if spec.published_params:
        doc["deviation_from_published"] = spec.params / spec.published_params - 1.0
    return doc


@models_app.command("list")
def list_models(
    fmt: Format = OutputFormat.table,
    output: Output = None,
    force: Force = False,
) -> None:
    """List every model preset with its shape and parameter count."""
    from flopcast.presets import list_presets, preset_details

    preflight_output(output, force)
    specs = list_presets()
    if fmt is OutputFormat.json:
        docs = []
        for spec in specs:
            details = preset_details(spec.name)
            docs.append({**_summary(spec), "title": details.title, "aliases": list(details.aliases)})
        text = json.dumps(docs, indent=2)
    elif fmt is OutputFormat.csv:
        from flopcast.tabular import to_csv

        text = to_csv(LIST_HEADERS, [_list_row(s, human=False) for s in specs])
    elif fmt is OutputFormat.markdown:
        from flopcast.tabular import to_markdown

        text = to_markdown(LIST_HEADERS, [_list_row(s, human=True) for s in specs])
    else:
        from rich import box
        from rich.table import Table

        table = Table(
            title="Model presets (params: total; active params: used per token, MoE)",
            title_justify="left",
            box=box.SIMPLE_HEAD,
            pad_edge=False,
            collapse_padding=True,
        )
        for h in LIST_HEADERS:
            left = h in ("id", "gated", "source")
            table.add_column(h, justify="left" if left else "right", no_wrap=h != "source", overflow="ellipsis")
        for spec in specs:
            table.add_row(*[str(v) for v in _list_row(spec, human=True)])
        text = render_to_text([table])
    emit_text(text, output, force)


def _resolve(model: str):
    """(spec, title, aliases, notes) for a preset id/alias or a size such as 7B."""
    from flopcast.model_resolve import looks_like_size, parse_model_size, resolve_model
    from flopcast.presets import preset_details

    text = model.strip()
    if looks_like_size(text):
        spec = resolve_model(text)
        return spec, f"{_human(parse_model_size(text))} by the size rule", (), ()
    details = preset_details(text)
    return details.spec, details.title, details.aliases, details.notes


def _show_rows(spec, title: str, aliases, notes) -> list[list[str]]:
    yes_no = {True: "yes", False: "no"}
    attention = f"{spec.heads} heads × {spec.dim_head}"
    if spec.n_kv_heads != spec.heads:
        kind = "multi-query" if spec.n_kv_heads == 1 else "grouped-query"
        attention += f", {spec.n_kv_heads} KV heads ({kind})"
    rows = [
        ["id", spec.name],
        ["title", title],
        ["aliases", ", ".join(aliases) or "—"],
        ["layers", str(spec.layers)],
        ["d_model", str(spec.d_model)],
        ["attention", attention],
        ["FFN", f"{spec.ffn_size} ({'gated, SwiGLU: 3 matrices' if spec.gated_ffn else 'plain: 2 matrices'})"],
        ["vocab", str(spec.vocab)],
        ["seq_len", str(spec.seq_len)],
        ["tied embeddings", yes_no[spec.tied_embeddings]],
        ["learned positions", yes_no[spec.learned_positions]],
        ["biases", yes_no[spec.biases]],
        ["norms", "LayerNorm with bias" if spec.layernorm_bias else "without bias (RMSNorm or bias-free LayerNorm)"],
    ]
    if spec.experts > 1:
        rows.append(["experts", f"{spec.experts}, {spec.active_experts} active per token"])
    if spec.segment_embeddings:
        rows.append(["segment embeddings", str(spec.segment_embeddings)])
    if spec.embedding_norm or not spec.final_norm:
        rows.append(["embedding / final norm", f"{yes_no[spec.embedding_norm]} / {yes_no[spec.final_norm]}"])
    if spec.pooler:
        rows.append(["pooler", "yes"])
    rows.append(["params (total)", f"{spec.params:,} ({_human(spec.params)})"])
    if spec.experts > 1:
        rows.append(["params (active per token)", f"{spec.active_params:,} ({_human(spec.active_params)})"])
    rows.append(["params (non-embedding)", f"{spec.non_embedding_params:,} ({_human(spec.non_embedding_params)})"])
    for key, value in spec.param_breakdown().items():
        if value:
            rows.append([f"  {BREAKDOWN_LABELS[key]}", f"{value:,} ({value / spec.params:.1%})"])
    if spec.published_params:
        deviation = spec.params / spec.published_params - 1.0
        rows.append(["published params", f"{spec.published_params:,.0f} (computed {deviation:+.2%})"])
    if spec.published_active_params:
        deviation = spec.active_params / spec.published_active_params - 1.0
        rows.append(["published active params", f"{spec.published_active_params:,.0f} (computed {deviation:+.2%})"])
    rows.append(["source", spec.source or "—"])
    rows += [["note", n] for n in notes]
    return rows


@models_app.command("show")
def show_model(
    model: str = typer.Argument(
        ...,
        metavar="ID",
        help="Preset id or alias (e.g. llama-2-7b), or a size such as 7B.",
        autocompletion=complete_model,
    ),
    fmt: Format = OutputFormat.table,
    output: Output = None,
    force: Force = False,
) -> None:
    """Show one model: its fields, parameters by part, and the published count."""
    preflight_output(output, force)
    spec, title, aliases, notes = _resolve(model)
    if fmt is OutputFormat.json:
        doc = {**_summary(spec), "title": title, "aliases": list(aliases), "notes": list(notes)}
        emit_text(json.dumps(doc, indent=2), output, force)
        return
    rows = _show_rows(spec, title, aliases, notes)
    if fmt is OutputFormat.csv:
        from flopcast.tabular import to_csv

        emit_text(to_csv(["field", "value"], rows), output, force)
        return
    if fmt is OutputFormat.markdown:
        from flopcast.tabular import to_markdown

        emit_text(to_markdown(["field", "value"], rows, title=f"{title} ({spec.name})"), output, force)
        return
    from rich.table import Table

    table = Table(title=f"{title} ({spec.name})", title_justify="left", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for field, value in rows:
        table.add_row(field, value)
    emit_text(render_to_text([table]), output, force)
