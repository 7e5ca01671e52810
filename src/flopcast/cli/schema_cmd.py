"""`flopcast schema [KIND]`: the JSON Schema of every report kind (and of the catalogue documents).

Without KIND: a list of the kinds (table, Markdown, CSV), or with ``--format json`` every schema in one
JSON object keyed by kind. With KIND: that kind's JSON Schema (JSON only).
"""

from __future__ import annotations

import json

import typer

from flopcast.cli._app import app
from flopcast.cli.common import (
    OutputFormat,
    emit_text,
    preflight_output,
)
from flopcast.cli.options import Force, Format, Output, complete_schema_kind

LIST_HEADERS = ["kind", "type", "what"]


@app.command("schema")
def schema_command(
    kind: str | None = typer.Argument(
        None,
        metavar="[KIND]",
        help="Report kind (estimate, sweep, compare, plan, size, serve, validate, bench, ...).",
        autocompletion=complete_schema_kind,
    ),
    fmt: Format = OutputFormat.table,
    output: Output = None,
    force: Force = False,
) -> None:
    """Print the JSON Schema of a report kind; without KIND, list the kinds (--format json: all schemas)."""
    from flopcast.reports.registry import DOCUMENTS, REPORTS, json_schema, kinds

    preflight_output(output, force)
    if kind is not None:
        if fmt in (OutputFormat.markdown, OutputFormat.csv):
            from flopcast.errors import ConflictingOptions

            raise ConflictingOptions(
                f"--format {fmt.value} with a KIND: a JSON Schema is JSON", hint="drop --format (or use --format json)"
            )
        emit_text(json.dumps(json_schema(kind.strip().lower()), indent=2), output, force)
        return
    if fmt is OutputFormat.json:
        from flopcast._version import __version__
        from flopcast.reports.base import SCHEMA_VERSION

        doc = {
            "schema_version": SCHEMA_VERSION,
            "flopcast_version": __version__,
            "schemas": {k: json_schema(k) for k in kinds()},
        }
        emit_text(json.dumps(doc, indent=2), output, force)
        return
    rows = [[k, "report", what] for k, (_, _, what) in REPORTS.items()]
    rows += [[k, "catalogue", what] for k, what in DOCUMENTS.items()]
    if fmt is OutputFormat.csv:
        from flopcast.tabular import to_csv

        emit_text(to_csv(LIST_HEADERS, rows), output, force)
        return
    title = "Report kinds (`flopcast schema KIND` prints one schema; --format json prints them all)"
    if fmt is OutputFormat.markdown:
        from flopcast.tabular import to_markdown

        emit_text(to_markdown(LIST_HEADERS, rows, title=title), output, force)
        return
    from rich import box
    from rich.table import Table

    from flopcast.cli.common import render_to_text

    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for h in LIST_HEADERS:
        table.add_column(h, overflow="fold")
    for row in rows:
        table.add_row(*row)
    emit_text(render_to_text([table]), output, force)
