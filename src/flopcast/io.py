"""Writing result files atomically: a file is either fully written or not there at all."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from flopcast.errors import InvalidValue, RuntimeFailure

STDOUT_PATHS = ("-", "/dev/stdout", "/dev/fd/1", "/proc/self/fd/1")


def is_stdout_path(path: Path | str | None) -> bool:
    """True for an output path that names standard output (``/dev/stdout``, ``/dev/fd/1``, ``-``): the result is
    written to the stream, never by renaming a file over the link."""
    return path is not None and str(path) in STDOUT_PATHS


def check_output_path(path: Path, force: bool) -> Path:
    """Refuse, before any work is done, an output path that cannot or must not be written."""
    if is_stdout_path(path):
        return Path(path)
    try:
        return _check_output_path(Path(path).expanduser(), force)
    except OSError as exc:  # e.g. a name longer than the file system allows
        raise InvalidValue(f"--output {path}: {exc.strerror or exc}", hint="choose another path") from None
    except RuntimeError:  # `~` with HOME unset and a uid that has no passwd entry
        raise InvalidValue(f"--output {path}: no home directory to expand ~ to", hint="give a full path") from None


def _check_output_path(path: Path, force: bool) -> Path:
    if path.is_dir():
        raise InvalidValue(f"--output {path}: is a directory", hint="give a file name inside it")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise InvalidValue(f"--output {path}: directory {parent} does not exist", hint="create it first")
    if path.exists() and not force:
        raise InvalidValue(f"--output {path}: file exists", hint="add --force to overwrite it")
    if path.exists() and not path.is_file():  # never rename a report over /dev/null, a pipe or a socket
        raise InvalidValue(
            f"--output {path}: not a regular file", hint="give a file path, or drop --output to print to stdout"
        )
    if not os.access(parent, os.W_OK):
        raise InvalidValue(f"--output {path}: directory {parent} is not writable", hint="choose another path")
    _probe_directory(path, parent)
    return path


def _probe_directory(path: Path, parent: Path) -> None:
    """Create and remove a temporary file in ``parent``: root passes ``os.access`` everywhere, and only a real
    file shows whether /proc, /sys, a read-only mount or a full disk will take the result."""
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe", dir=parent)
    except OSError as exc:
        raise InvalidValue(
            f"--output {path}: cannot create a file in {parent}: {exc.strerror or exc}", hint="choose another path"
        ) from None
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(probe)


def _file_mode(path: Path) -> int:
    """The permission bits the written file gets: those of the file it replaces, else those of any new
    file (0666 less the umask). mkstemp's temporary files are private (0600), which would make a report
    in a shared folder unreadable to the people it is for."""
    try:
        return path.stat().st_mode & 0o777
    except OSError:
        mask = os.umask(0)
        os.umask(mask)
        return 0o666 & ~mask


def atomic_write_bytes(path: Path, data: bytes, *, force: bool = False) -> Path:
    """Write ``data`` to a temporary file beside ``path``, fsync, then rename over it. A path that names
    standard output (``/dev/stdout``) is written to the stream: renaming over the link would replace it."""
    if is_stdout_path(path):
        import sys

        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return Path(path)
    path = check_output_path(path, force)
    return _replace_atomically(path, data, _file_mode(path), hint="choose another path")


def atomic_write_checked(path: Path, text: str, check) -> Path:
    """Write ``text`` to ``path`` atomically (creating its folder), after ``check(temporary path)`` has accepted the
    exact bytes that will land there (it raises to refuse them); nothing is left behind on failure."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RuntimeFailure(f"cannot write {path}: {exc.strerror or exc}") from None
    return _replace_atomically(path, text.encode("utf-8"), None, check=check)


def _replace_atomically(path: Path, data: bytes, mode: int | None, *, check=None, hint: str | None = None) -> Path:
    """A temporary file beside ``path``: written, fsynced, ``check``-ed, then renamed over ``path``; removed on
    any failure (an OSError becomes one RuntimeFailure line)."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise RuntimeFailure(f"cannot write {path}: {exc.strerror or exc}", hint=hint) from None
    try:
        if mode is not None:
            os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if check is not None:
            check(Path(tmp))
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
