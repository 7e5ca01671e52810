"""Writing result files atomically: a file is either fully written or not there at all."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from flopcast.errors import InvalidValue, RuntimeFailure


def check_output_path(path: Path, force: bool) -> Path:
    """Refuse, before any work is done, an output path that cannot or must not be written."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise InvalidValue(f"--output {path}: is a directory", hint="give a file name inside it")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise InvalidValue(f"--output {path}: directory {parent} does not exist", hint="create it first")
    if path.exists() and not force:
        raise InvalidValue(f"--output {path}: file exists", hint="add --force to overwrite it")
    if not os.access(parent, os.W_OK):
        raise InvalidValue(f"--output {path}: directory {parent} is not writable", hint="choose another path")
    return path


def atomic_write_bytes(path: Path, data: bytes, *, force: bool = False) -> Path:
    """Write ``data`` to a temporary file beside ``path``, fsync, then rename over it."""
    path = check_output_path(path, force)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise RuntimeFailure(f"cannot write {path}: {exc.strerror or exc}") from None
        raise
    return path


def atomic_write_text(path: Path, text: str, *, force: bool = False) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"), force=force)
