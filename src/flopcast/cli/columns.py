"""Report columns, declared once per report kind and drawn three ways: a rich table, Markdown and CSV.

A report kind declares a tuple of :data:`Column` ``(header, getter)``: the getter turns one row of the
report (a comparison row, a Pareto point, ...) into the text of its cell. Human tables (rich, Markdown)
use scaled units (``3.2 d``, ``$1.2M``); CSV columns hold raw SI numbers with the unit in the header
(``wall_clock_seconds``), so a kind usually declares one tuple of each. rich is imported only by
:func:`rich_table` and :func:`notes_table`, so ``--format json|csv|markdown`` never loads it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from flopcast.estimator.arrays import LAYOUT_FIELDS  # the layout record's fields, in CSV order
from flopcast.units import format_duration, format_usd

Column = tuple[str, Callable[[Any], str]]
Columns = tuple[Column, ...]


def headers(columns: Columns) -> list[str]:
    return [header for header, _ in columns]


def cells(columns: Columns, items: Iterable[Any]) -> list[list[str]]:
    return [[get(item) for _, get in columns] for item in items]


def to_csv(columns: Columns, items: Iterable[Any]) -> str:
    from flopcast.tabular import to_csv as write_csv

    return write_csv(headers(columns), cells(columns, items))


def to_markdown(columns: Columns, items: Iterable[Any], title: str | None = None) -> str:
    from flopcast.tabular import to_markdown as write_markdown

    return write_markdown(headers(columns), cells(columns, items), title=title)


def rich_table(title: str, columns: Columns, items: Iterable[Any]):
    """A plain rich table of ``items`` (long cells fold)."""
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for header, _ in columns:
        table.add_column(header, overflow="fold")
    for row in cells(columns, items):
        table.add_row(*row)
    return table


def notes_table(notes: Sequence[str]):
    """The "Notes" table under a report: one warning or note per row."""
    from rich.table import Table

    table = Table(title="Notes", title_justify="left", show_header=False)
    table.add_column("note", overflow="fold")
    for line in notes:
        table.add_row(line)
    return table


def layout_csv_columns(layout_of: Callable[[Any], Any]) -> Columns:
    """One CSV column per :data:`LAYOUT_FIELDS` entry of ``layout_of(row)`` (empty cells when it is None)."""

    def getter(field: str) -> Callable[[Any], str]:
        def get(row) -> str:
            layout = layout_of(row)
            return "" if layout is None else str(getattr(layout, field))

        return get

    return tuple((field, getter(field)) for field in LAYOUT_FIELDS)


# --- cell formats shared by several kinds ----------------------------------------------------------------


def raw(x) -> str:
    """A CSV cell: the number lossless (floats by repr), empty when unknown."""
    return "" if x is None else (repr(float(x)) if isinstance(x, float) else str(x))


def flag(x: bool | None) -> str:
    """A CSV boolean: true/false, empty when unknown."""
    return "" if x is None else str(x).lower()


def usd(x: float | None) -> str:
    return "—" if x is None else format_usd(x)


def mwh(kwh: float | None) -> str:
    return "—" if kwh is None else f"{kwh / 1000:,.1f} MWh"


def duration_range(lo: float | None, hi: float | None) -> str:
    return "" if lo is None or hi is None else f"{format_duration(lo)}–{format_duration(hi)}"


def layout_text(layout) -> str:
    """``tp·pp·dp mb<micro-batch> z<ZeRO>`` plus ``sel``/``full`` recomputation; ``—`` without a layout."""
    if layout is None:
        return "—"
    from flopcast.layout import Layout

    return Layout(**layout.model_dump()).short()


def raw_columns(*fields: str) -> Columns:
    """CSV columns named after the row's own fields, each cell :func:`raw`."""

    def getter(field: str) -> Callable[[Any], str]:
        return lambda row: raw(getattr(row, field))

    return tuple((field, getter(field)) for field in fields)
