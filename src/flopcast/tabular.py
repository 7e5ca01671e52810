"""Plain tables (headers + rows of strings) as Markdown or CSV; the CLI renders the same rows with rich."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence


def to_markdown(headers: Sequence[str], rows: Sequence[Sequence[object]], title: str | None = None) -> str:
    def cell(value: object) -> str:
        return str("" if value is None else value).replace("|", "\\|").replace("\n", " ")

    lines = [f"### {title}", ""] if title else []
    lines.append("| " + " | ".join(cell(h) for h in headers) + " |")
    lines.append("|" + "|".join("---" for _ in headers) + "|")
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def to_csv(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(headers)
    for row in rows:
        writer.writerow(["" if v is None else v for v in row])
    return buf.getvalue()
