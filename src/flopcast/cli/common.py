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
# - without a terminal the width is PLAIN_WIDTH columns, so piped output does not depend on the window.
PLAIN_WIDTH = 120
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")
_output_is_file = False  # set by preflight_output for the command being run


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
        width=None if stream.isatty() else 120,
        emoji=False,
        color_system=None if plain else "auto",
    )


def preflight_output(output: Path | None, force: bool) -> None:
    """Check --output before doing any work, so a bad path fails fast and nothing is half-written.

    Also records whether the result goes to a file: a file gets plain text (no ANSI codes, PLAIN_WIDTH columns).
    """
    global _output_is_file
    _output_is_file = output is not None
    if output is not None:
        from flopcast.io import check_output_path

        check_output_path(output, force)


def emit_text(text: str, output: Path | None, force: bool, quiet: bool = False) -> None:
    """Send a finished document to stdout or, atomically, to --output."""
    if output is None:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        return
    from flopcast.io import atomic_write_text

    text = strip_ansi(text)  # a shared file never carries terminal codes
    path = atomic_write_text(output, text if text.endswith("\n") else text + "\n", force=force)
    if not quiet:
        sys.stderr.write(f"flopcast: wrote {path}\n")


def render_to_text(renderables: list) -> str:
    """Render rich objects to a string: plain, PLAIN_WIDTH wide and ASCII-boxed as the rules above say."""
    from rich.console import Console

    plain = plain_output()
    sink = open(os.devnull, "w", encoding="ascii" if ascii_boxes() else "utf-8")  # noqa: SIM115
    con = Console(
        record=False, width=PLAIN_WIDTH if plain else None, no_color=plain, color_system=None if plain else "auto",
        highlight=False, emoji=False, force_terminal=not plain, file=sink, legacy_windows=False,
    )  # fmt: skip
    try:
        with con.capture() as cap:
            for item in renderables:
                con.print(item)
    finally:
        sink.close()
    return cap.get()


def note(message: str, quiet: bool = False) -> None:
    if not quiet:
        sys.stderr.write(f"flopcast: {message}\n")


# --- plots (matplotlib is an optional extra, imported only when --plot is given) ---------------------------


def preflight_plot(plot: Path | None, force: bool) -> None:
    """Check --plot before any work: a .png/.svg path that may be written, and matplotlib installed."""
    if plot is None:
        return
    from flopcast.errors import InvalidValue
    from flopcast.io import check_output_path
    from flopcast.plotting import plot_format, require_matplotlib

    plot_format(plot)
    require_matplotlib()
    try:
        check_output_path(plot, force)
    except InvalidValue as exc:  # the checker speaks of --output; this is --plot
        raise InvalidValue(exc.message.replace("--output", "--plot", 1), hint=exc.hint) from None


def emit_plot(report, plot: Path | None, force: bool, quiet: bool = False) -> None:
    """Draw ``report`` (its kind picks the figure) and write it atomically to ``plot``."""
    if plot is None:
        return
    from flopcast.io import atomic_write_bytes
    from flopcast.plotting import render_plot

    path = atomic_write_bytes(plot, render_plot(report, plot), force=force)
    note(f"wrote {path}", quiet)
