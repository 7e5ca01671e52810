"""Whether ``--model`` text names a Hugging Face config.json rather than a preset or a size.

Kept apart from :mod:`flopcast.hf_config` (which reads and maps the config) so that a preset id or a size
never pays for importing the reader: this is on every command's start-up path.
"""

from __future__ import annotations

import os
from pathlib import Path

CONFIG_NAME = "config.json"


def looks_like_config_path(text: str) -> bool:
    """True when ``--model`` text names a config: it ends in ``.json``, or is a directory holding a
    config.json, or contains a path separator and exists. A preset id (``llama-2-7b``) is none of these,
    unless a directory of that name with a config.json sits in the working directory."""
    text = text.strip()
    if text.lower().endswith(".json"):
        return True
    try:
        path = Path(text).expanduser()
        if path.is_dir() and (path / CONFIG_NAME).is_file():
            return True
        return ("/" in text or os.sep in text) and path.exists()
    except (OSError, RuntimeError):  # a name too long for the file system (a 100,000-character --model), no HOME
        return False


def config_warnings(model) -> list[str]:
    """The notes of a config-given model, as warning lines for a report (none for anything else); the reader
    (flopcast.hf_config) is imported only for a config."""
    if not isinstance(model, str | os.PathLike) or not looks_like_config_path(str(model)):
        return []
    from flopcast.hf_config import config_details

    return [f"model config: {note}" for note in config_details(str(model)).notes]
