"""Output plumbing shared by every command (the only place output is written; the options: cli/options.py)."""

from __future__ import annotations

import os
import re
import sys
from enum import Enum
from pathlib import Path


class OutputFormat(str, Enum):
    table = "table"
    json = "json"
    markdown = "markdown"
    csv = "csv"


# Terminal output rules (README "Reports you can share"):
# - colour and styles (ANSI escape codes) only on a terminal: never with NO_COLOR, TERM=dumb, a pipe or --output
#   (FORCE_COLOR=1 keeps them in a pipe; NO_COLOR wins over it; a file never gets them);
# - tables keep their Unicode box-drawing characters in a pipe or file (UTF-8 text), and fall back to ASCII
#   (+ - |) with TERM=dumb or when stdout's encoding is not UTF-8;
# - the width is $COLUMNS when exported, else the terminal's; without a terminal (a pipe) PLAIN_WIDTH columns,
#   so piped output does not depend on the window; a file (--output) is always PLAIN_WIDTH wide;
# - numbers are never cropped: a table that cannot show every cell whole at that width is drawn vertically
#   (one small "field | value" table per row; see fit_table);
# - a stdout that cannot encode a character gets its ASCII equivalent (x for ×, ^2 for ², u for µ; see ascii_safe).
PLAIN_WIDTH = 120
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")
_output_is_file = False  # set by preflight_output for the command being run
_output_path: Path | None = None  # ... and the file it names, so that --plot cannot name the same one


def plain_output() -> bool:
    """True when colours and styles must not be used (see the rules above)."""
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb" or _output_is_file:
        return True
    if os.environ.get("FORCE_COLOR"):
        return False
    return not sys.stdout.isatty()


def ascii_boxes() -> bool:
    """True when tables must be drawn with ASCII (+ - |): TERM=dumb or a stdout that cannot encode UTF-8."""
    encoding = (getattr(sys.stdout, "encoding", None) or "utf-8").lower().replace("_", "-")
    return os.environ.get("TERM") == "dumb" or not encoding.startswith("utf")


def strip_ansi(text: str) -> str:
    """``text`` without ANSI escape sequences (colours, styles, hyperlinks)."""
    return ANSI_ESCAPE.sub("", text)


def output_width(stream=None) -> int:
    """Columns to draw tables in (see the rules above)."""
    if _output_is_file:
        return PLAIN_WIDTH
    columns = os.environ.get("COLUMNS", "")
    if columns.strip().isdigit() and int(columns) >= 20:
        return int(columns)
    stream = stream or sys.stdout
    try:
        if stream.isatty():
            return max(20, os.get_terminal_size(stream.fileno()).columns)
    except (OSError, ValueError, AttributeError):
        pass
    return PLAIN_WIDTH


# Characters flopcast's tables and notes use, with the ASCII a stream that cannot encode them gets instead.
ASCII_EQUIVALENTS = {
    "×": "x", "–": "-", "—": "-", "−": "-", "²": "^2", "³": "^3", "µ": "u", "μ": "u", "≈": "~", "·": "*",
    "≤": "<=", "≥": ">=", "→": "->", "←": "<-", "…": "...", "±": "+/-", "’": "'", "‘": "'", "“": '"', "”": '"',
    " ": " ", "✓": "yes", "✗": "no", "⚠": "!", "ᵀ": "^T", "÷": "/", "√": "sqrt", "∞": "inf", "°": " deg",
}  # fmt: skip


def ascii_safe(text: str, stream=None) -> str:
    """``text`` with every character ``stream`` (default stdout) cannot encode replaced by its ASCII equivalent
    (ASCII_EQUIVALENTS, then the character's decomposition, else ``?``). Unchanged on a UTF-8 stream."""
    encoding = getattr(stream or sys.stdout, "encoding", None) or "utf-8"
    try:
        text.encode(encoding)
        return text
    except (UnicodeEncodeError, LookupError):
        pass
    import unicodedata

    out = []
    for ch in text:
        try:
            ch.encode(encoding)
            out.append(ch)
        except (UnicodeEncodeError, LookupError):
            plain = ASCII_EQUIVALENTS.get(ch)
            if plain is None:
                plain = unicodedata.normalize("NFKD", ch).encode("ascii", "ignore").decode() or "?"
            out.append(plain)
    return "".join(out)


def console(stderr: bool = False):
    """A rich console that honours NO_COLOR and non-TTY output."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    plain = bool(os.environ.get("NO_COLOR")) or os.environ.get("TERM") == "dumb" or not stream.isatty()
    return Console(
        file=stream,
        no_color=plain,
        highlight=False,
        soft_wrap=False,
        width=output_width(stream),
        emoji=False,
        color_system=None if plain else "auto",
    )


def preflight_output(output: Path | None, force: bool) -> None:
    """Check --output before doing any work, so a bad path fails fast and nothing is half-written.

    Also records whether the result goes to a file: a file gets plain text (no ANSI codes, PLAIN_WIDTH columns).
    """
    global _output_is_file, _output_path
    from flopcast.io import is_stdout_path

    _output_is_file = output is not None and not is_stdout_path(output)
    _output_path = output
    if _output_is_file:
        from flopcast.io import check_output_path

        check_output_path(output, force)


def emit_text(text: str, output: Path | None, force: bool, quiet: bool = False) -> None:
    """Send a finished document to stdout or, atomically, to --output (``-o /dev/stdout``: to the stream)."""
    from flopcast.io import is_stdout_path

    if output is None or is_stdout_path(output):
        text = ascii_safe(text)
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        return
    from flopcast.io import atomic_write_text

    text = strip_ansi(text)  # a shared file never carries terminal codes
    path = atomic_write_text(output, text if text.endswith("\n") else text + "\n", force=force)
    if not quiet:
        sys.stderr.write(f"flopcast: wrote {path}\n")


def render_to_text(renderables: list) -> str:
    """Render rich objects to a string: plain, as wide and ASCII-boxed as the rules above say; a table too
    wide for the width is drawn vertically (fit_table) so that no number is cropped."""
    from rich.console import Console

    plain = plain_output()
    sink = open(os.devnull, "w", encoding="ascii" if ascii_boxes() else "utf-8")  # noqa: SIM115
    con = Console(
        record=False, width=output_width(), no_color=plain, color_system=None if plain else "auto",
        highlight=False, emoji=False, force_terminal=not plain, file=sink, legacy_windows=False,
    )  # fmt: skip
    try:
        with con.capture() as cap:
            for item in renderables:
                con.print(fit_table(con, item))
    finally:
        sink.close()
    return cap.get()


_BOX = re.compile(r"[\u2500-\u257f|+]")  # box drawing, Unicode and ASCII


def _numeric_words(text: str) -> set[str]:
    """The whitespace-separated words of ``text`` that hold a digit (``1555``, ``5.07``, ``a100-40gb``)."""
    return {w.strip(".,;:()") for w in _BOX.sub(" ", text).split() if any(c.isdigit() for c in w)}


def _cell_text(cell) -> str:
    return cell.plain if hasattr(cell, "plain") else str(cell)


def _shows_every_number(con, table) -> bool:
    """True when ``table`` drawn on ``con`` shows every number of its cells and headers whole."""
    lines = con.render_lines(table, con.options, pad=False)  # not con.capture(): that would empty the caller's
    drawn = _numeric_words("\n".join("".join(segment.text for segment in line) for line in lines))
    texts = [_cell_text(c) for column in table.columns for c in column._cells]
    texts += [_cell_text(column.header) for column in table.columns]
    return all(_numeric_words(t) <= drawn for t in texts)


def _wrap_at_spaces(con, table) -> bool:
    """Give each column a fixed width no narrower than its longest word, sharing what is left in proportion to
    how much each column would need to be drawn on one line. Header words fold when they must (`memory/` `device`),
    the longest first and never below 4 columns or a number they hold; a cell word never folds. False when
    even that does not fit."""
    from rich.cells import cell_len

    hard, soft, highs = [], [], []
    for column in table.columns:
        header = _cell_text(column.header)
        lines = [line for c in column._cells for line in _cell_text(c).splitlines()]
        words = [cell_len(w) for w in header.split()]
        must = max([min(4, max(words, default=1)), *map(cell_len, _numeric_words(header)),
                    *(cell_len(w) for ln in lines for w in ln.split())])  # fmt: skip
        hard.append(must)
        soft.append(max([must, *words]))
        highs.append(max([1, *(cell_len(line) for line in [*lines, *header.splitlines()])]))
    overhead = table._extra_width + sum(table._get_padding_width(i) for i in range(len(table.columns)))
    room = con.width - overhead
    if sum(hard) > room:
        return False
    lows = list(soft)
    while sum(lows) > room:  # fold the header that overhangs its cells the most, one column at a time
        i = max(range(len(lows)), key=lambda j: lows[j] - hard[j])
        lows[i] -= 1
    spare, need = room - sum(lows), [h - lo for h, lo in zip(highs, lows, strict=True)]
    widths = list(lows)
    if sum(need):
        widths = [lo + min(n, spare * n // sum(need)) for lo, n in zip(lows, need, strict=True)]
    for column, w in zip(table.columns, widths, strict=True):
        column.width, column.no_wrap, column.overflow = w, False, "fold"
    return True


def fit_table(con, item):
    """``item`` unchanged unless it is a table that would crop a number at ``con``'s width: then the same cells
    drawn vertically, one "field | value" table per row (titled by the row's first cell)."""
    from rich.table import Table

    if not isinstance(item, Table) or not item.columns:
        return item
    for column in item.columns:  # a header too wide folds (`fitted` / `/ GEMM`) rather than losing its end
        if column.overflow == "ellipsis":
            column.overflow = "fold"
    if _shows_every_number(con, item) or (_wrap_at_spaces(con, item) and _shows_every_number(con, item)):
        return item
    item.padding = (0, 1, 0, 0)  # one space between columns instead of two
    if _wrap_at_spaces(con, item) and _shows_every_number(con, item):
        return item
    if len(item.columns) <= 2:  # already "field | value": a word wider than the terminal (a path) has to fold
        _wrap_at_spaces(con, item)
        return item
    from rich.console import Group
    from rich.text import Text

    parts: list = [Text(item.title)] if item.title else []
    headers = [_cell_text(column.header) for column in item.columns]
    rows = list(zip(*(column._cells for column in item.columns), strict=True))
    for row in rows:
        card = Table(show_header=False, box=item.box)
        card.add_column("field", overflow="fold", style="bold")
        card.add_column("value", overflow="fold")
        show = [(h, v) for h, v in zip(headers, row, strict=True) if _cell_text(v).strip()]
        if item.show_header and headers and len(rows) > 1:  # the row's first cell names it, above the card
            # (a line of its own: a card title would wrap at the card's width and split an id)
            parts.append(Text(f"{headers[0]}: {_cell_text(row[0])}" if headers[0] else _cell_text(row[0])))
            show = show[1:] if show and show[0][1] is row[0] else show
        for header, value in show:
            card.add_row(header, value)
        parts.append(card)
    return Group(*parts)


def note(message: str, quiet: bool = False) -> None:
    if not quiet:
        sys.stderr.write(ascii_safe(f"flopcast: {message}\n", sys.stderr))


# --- plots (matplotlib is an optional extra, imported only when --plot is given) ---------------------------


def preflight_plot(plot: Path | None, force: bool) -> None:
    """Check --plot before any work: a .png/.svg path that may be written, and matplotlib installed."""
    if plot is None:
        return
    from flopcast.errors import InvalidValue
    from flopcast.io import check_output_path
    from flopcast.plotting import plot_format, require_matplotlib

    plot_format(plot)
    if _output_path is not None and _same_file(_output_path, plot):
        from flopcast.errors import ConflictingOptions

        raise ConflictingOptions(
            f"--output and --plot both name {plot}", hint="give the plot a file of its own (e.g. result.png)"
        )
    require_matplotlib()
    try:
        check_output_path(plot, force)
    except InvalidValue as exc:  # the checker speaks of --output; this is --plot
        raise InvalidValue(exc.message.replace("--output", "--plot", 1), hint=exc.hint) from None


def _same_file(a: Path, b: Path) -> bool:
    """True when two paths name one file (``x.png`` and ``./x.png``, a symlink and its target)."""
    try:
        return os.path.realpath(Path(a).expanduser()) == os.path.realpath(Path(b).expanduser())
    except (OSError, RuntimeError, ValueError):
        return str(a) == str(b)


def emit_plot(report, plot: Path | None, force: bool, quiet: bool = False) -> None:
    """Draw ``report`` (its kind picks the figure) and write it atomically to ``plot``."""
    if plot is None:
        return
    from flopcast.io import atomic_write_bytes
    from flopcast.plotting import render_plot

    path = atomic_write_bytes(plot, render_plot(report, plot), force=force)
    note(f"wrote {path}", quiet)
