"""Options and output plumbing shared by every command (the only place output is written)."""

from __future__ import annotations

import os
import sys
from enum import Enum
from pathlib import Path

import typer


class OutputFormat(str, Enum):
    table = "table"
    json = "json"
    markdown = "markdown"
    csv = "csv"


FORMAT_OPTION = typer.Option(OutputFormat.table, "--format", "-f", help="Output format: table, json, markdown or csv.")
OUTPUT_OPTION = typer.Option(
    None, "--output", "-o", help="Write the result to FILE (atomically) instead of stdout.", dir_okay=False
)
FORCE_OPTION = typer.Option(False, "--force", help="Overwrite --output FILE if it exists.")
PROFILES_OPTION = typer.Option(
    None, "--profiles", help="Extra directory of hardware profiles (repeatable; overrides shipped ones)."
)
QUIET_OPTION = typer.Option(False, "--quiet", "-q", help="Print no progress or notes on stderr.")


def plain_output() -> bool:
    """True when colours and boxes must not be used: NO_COLOR set or stdout is not a terminal."""
    return bool(os.environ.get("NO_COLOR")) or not sys.stdout.isatty()


def console(stderr: bool = False):
    """A rich console that honours NO_COLOR and non-TTY output."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    plain = bool(os.environ.get("NO_COLOR")) or not stream.isatty()
    return Console(
        file=stream, no_color=plain, highlight=False, soft_wrap=False,
        width=None if stream.isatty() else 120, emoji=False, color_system=None if plain else "auto",
    )


def preflight_output(output: Path | None, force: bool) -> None:
    """Check --output before doing any work, so a bad path fails fast and nothing is half-written."""
    if output is not None:
        from flopcast.io import check_output_path

        check_output_path(output, force)


def emit_text(text: str, output: Path | None, force: bool, quiet: bool = False) -> None:
    """Send a finished document to stdout or, atomically, to --output."""
    if output is None:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        return
    from flopcast.io import atomic_write_text

    path = atomic_write_text(output, text if text.endswith("\n") else text + "\n", force=force)
    if not quiet:
        sys.stderr.write(f"flopcast: wrote {path}\n")


def render_to_text(renderables: list) -> str:
    """Render rich objects to a string (plain when the destination is not a terminal)."""
    from rich.console import Console

    plain = plain_output()
    con = Console(
        record=False, width=120 if plain else None, no_color=plain, color_system=None if plain else "auto",
        highlight=False, emoji=False, force_terminal=not plain, file=open(os.devnull, "w"),  # noqa: SIM115
    )
    with con.capture() as cap:
        for item in renderables:
            con.print(item)
    return cap.get()


def note(message: str, quiet: bool = False) -> None:
    if not quiet:
        sys.stderr.write(f"flopcast: {message}\n")
