"""What the README generators share: compare the regenerated README with the file and, with ``--check``, show a
diff and fail; otherwise write it (only when it changed)."""

from __future__ import annotations

import difflib
import sys
from pathlib import Path


def check_or_write(readme: Path, current: str, wanted: str, *, check: bool, source: str, script: str) -> int:
    """0 when up to date (or written), 1 with a diff when ``check`` finds ``readme`` out of date."""
    if check:
        if current == wanted:
            return 0
        diff = difflib.unified_diff(current.splitlines(), wanted.splitlines(), "README.md", source, lineterm="", n=1)
        sys.stdout.write("\n".join(list(diff)[:80]) + "\n")
        sys.stdout.write(f"{readme.name} is out of date: run python scripts/{script}\n")
        return 1
    if current != wanted:
        readme.write_text(wanted, encoding="utf-8")
        print(f"updated {readme}")
    else:
        print(f"{readme} is up to date")
    return 0
