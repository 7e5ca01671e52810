#!/usr/bin/env python3
"""Write README's example transcripts from real runs, so that they cannot drift from what flopcast prints.

    python scripts/gen_readme_transcripts.py          # rewrite every transcript block in README.md
    python scripts/gen_readme_transcripts.py --check  # exit 1 with a diff when one is out of date

A transcript is a marker line followed by a fenced block, which this script owns:

    <!-- transcript: flopcast estimate --model llama-2-7b ... -->
    <!-- transcript: flopcast plan ... | tail -1 -->      (only the last line, after a "..." line)

The block shows ``$ COMMAND`` and then stdout and stderr as a terminal would (stdout first: flopcast writes
errors last). Commands run in-process through typer's CliRunner with a fixed environment (COLUMNS=100,
NO_COLOR=1), so the text does not depend on the terminal; pick commands whose output holds no timings.
"""

from __future__ import annotations

import argparse
import re
import shlex
import sys
from pathlib import Path

from readme_sync import check_or_write  # scripts/ is on sys.path when a script runs

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
RUN_ENV = {"COLUMNS": "100", "LINES": "50", "NO_COLOR": "1", "TERM": "xterm", "FLOPCAST_PROFILES": ""}
MARKER = re.compile(r"^<!-- transcript: (?P<command>.+?) -->\n```text\n.*?^```\n", re.M | re.S)


def run(command: str) -> str:
    """``$ command`` and what it prints (stdout, then stderr), with ``| tail -N`` applied."""
    import os
    import tempfile

    from typer.testing import CliRunner

    from flopcast.cli import app

    shown, _, tail = command.partition(" | tail -")
    words = shlex.split(shown)
    if words[0] != "flopcast":
        raise SystemExit(f"a transcript must run flopcast: {command!r}")
    with tempfile.TemporaryDirectory() as config:  # no user profiles of whoever runs the script
        env = {**RUN_ENV, "FLOPCAST_CONFIG_DIR": config}
        saved = {k: os.environ.get(k) for k in env}
        try:
            result = CliRunner().invoke(app, words[1:], env=env)
        finally:
            for k, v in saved.items():
                os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
    lines = [line.rstrip() for line in (result.stdout + result.stderr).rstrip("\n").splitlines()]
    if tail:
        lines = ["...", *lines[-int(tail) :]] if len(lines) > int(tail) else lines
    return "\n".join([f"$ {shown}", *lines])


def regenerate(readme: str) -> str:
    def block(m: re.Match) -> str:
        return f"<!-- transcript: {m.group('command')} -->\n```text\n{run(m.group('command'))}\n```\n"

    return MARKER.sub(block, readme)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when a README transcript is out of date")
    parser.add_argument("--readme", type=Path, default=README, help="the file to update (default README.md)")
    args = parser.parse_args(argv)
    current = args.readme.read_text(encoding="utf-8")
    if not MARKER.search(current):
        raise SystemExit(f"{args.readme} has no <!-- transcript: ... --> blocks")
    wanted = regenerate(current)
    return check_or_write(
        args.readme, current, wanted, check=args.check, source="as run", script="gen_readme_transcripts.py"
    )


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "src"))
    raise SystemExit(main())
