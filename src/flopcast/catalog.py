"""The hardware catalogue: where profiles are found (shipped, ``$FLOPCAST_PROFILES``, the user config dir,
``--profiles DIR``), which file wins an id (a later one overrides and keeps the earlier aliases), and lookup by id
or alias with suggestions. The profile schema itself is :mod:`flopcast.hardware`, which re-exports these names.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from flopcast.errors import InvalidProfile, UnknownHardware
from flopcast.hardware import (
    ENV_CONFIG_DIR,
    ENV_PROFILES,
    PROFILE_SUFFIXES,
    HardwareProfile,
    _load_profile_with_doc,
    load_profile,
)
from flopcast.units import suggest


@dataclass
class CatalogEntry:
    """A profile, the file it came from, and the files with the same id that it overrides.

    A plain dataclass, not a pydantic model: an internal record built on every ``flopcast estimate``, where a
    second pydantic schema would only cost start-up time. A shipped profile is read and validated when first
    used (``profile``): an estimate needs one of dozens, and parsing them all was most of flopcast's start-up.
    """

    path: Path
    origin: str
    rank: int = 0  # position of its directory on the search path (later wins)
    overrides: list[Path] = field(default_factory=list)
    # the profile's aliases plus those of the profiles it overrides (an alias names the id)
    aliases: list[str] = field(default_factory=list)
    loaded: HardwareProfile | None = None

    @property
    def profile(self) -> HardwareProfile:
        if self.loaded is None:
            self.loaded = load_profile(self.path)
        return self.loaded


def shipped_profiles_dir() -> Path:
    """``flopcast/hardware_profiles`` inside an installed wheel, else the repo's top-level folder."""
    here = Path(__file__).resolve().parent
    inside = here / "hardware_profiles"
    if inside.is_dir():
        return inside
    return here.parent.parent / "hardware_profiles"


def _home_path(text: str) -> Path | None:
    """``text`` with ``~`` expanded; None when there is no home to expand it to (HOME unset and a uid with no
    passwd entry, as under `docker run --user 4242`)."""
    try:
        return Path(text).expanduser()
    except (RuntimeError, KeyError):  # Path.home(): "Could not determine home directory"
        return None


def user_profiles_dir() -> Path | None:
    """``$FLOPCAST_CONFIG_DIR/profiles`` when set, else ``$XDG_CONFIG_HOME/flopcast/profiles`` (~/.config).

    None when no home directory can be found and neither variable is set: flopcast then runs without a user
    config dir (logged at debug level, which ``--debug`` shows)."""
    base = os.environ.get(ENV_CONFIG_DIR)
    if base:
        found = _home_path(base)
        return None if found is None else found / "profiles"
    xdg = _home_path(os.environ.get("XDG_CONFIG_HOME") or "~/.config")
    if xdg is None:
        import logging  # only on this rare path: logging costs ~1 ms of start-up

        logging.getLogger("flopcast").debug(
            "no user config dir: HOME is unset and uid %s has no passwd entry; set %s or HOME to use one",
            os.getuid() if hasattr(os, "getuid") else "?", ENV_CONFIG_DIR,
        )  # fmt: skip
        return None
    return xdg / "flopcast" / "profiles"


def search_path(extra_dirs: list[Path] | None = None) -> list[tuple[Path, str, bool]]:
    """(directory, origin, must_exist) in override order: later wins."""
    dirs: list[tuple[Path, str, bool]] = [(shipped_profiles_dir(), "shipped", True)]
    for part in (os.environ.get(ENV_PROFILES) or "").split(os.pathsep):
        if part.strip():
            dirs.append((Path(part.strip()).expanduser(), f"${ENV_PROFILES}", True))
    user = user_profiles_dir()
    if user is not None:
        dirs.append((user, "user config", False))
    for d in extra_dirs or []:
        dirs.append((Path(d).expanduser(), "--profiles", True))
    return dirs


# --- the catalogue -----------------------------------------------------------------------------------------


class Catalog:
    """Every visible profile, by id and alias.

    An id always beats an alias. An alias claimed by profiles from different directories belongs to the one
    found later on the search path (like ids); one claimed by two profiles of the same directory is ambiguous
    and resolves to neither (the error names both). An alias names an *id*: a profile that overrides an id
    keeps the aliases of the profiles it overrides (so `h100` still works after you override `h100-80gb`).
    """

    def __init__(self, entries: dict[str, CatalogEntry]):
        self.entries = entries
        self.aliases: dict[str, str] = {}
        self.ambiguous_aliases: dict[str, list[str]] = {}
        claims: dict[str, list[tuple[int, str]]] = {}
        for pid, entry in entries.items():
            for alias in entry.aliases:
                if alias not in entries:
                    claims.setdefault(alias, []).append((entry.rank, pid))
        for alias, owners in claims.items():
            top = max(rank for rank, _ in owners)
            winners = sorted(pid for rank, pid in owners if rank == top)
            if len(winners) == 1:
                self.aliases[alias] = winners[0]
            else:
                self.ambiguous_aliases[alias] = winners

    def ids(self) -> list[str]:
        return sorted(self.entries)

    def closest_ids(self, name: str, n: int = 4) -> list[str]:
        """Ids that ``name`` is a prefix of (``a100`` → both A100s), then the nearest ids and aliases by spelling."""
        key = name.strip().lower()
        if key in self.ambiguous_aliases:
            return self.ambiguous_aliases[key][:n]
        found = [
            pid
            for pid in self.ids()
            if key and (pid.startswith(key) or any(a.startswith(key) for a in self.entries[pid].aliases))
        ]
        if found:  # `a100` → a100-40gb, a100-80gb: the prefix says it all
            return found[:n]
        for close in suggest(key, self.ids() + list(self.aliases)):
            pid = self.aliases.get(close, close)
            if pid not in found:
                found.append(pid)
        return found[:n]

    def resolve_id(self, name: str) -> str:
        key = name.strip().lower()
        if not key:
            raise UnknownHardware("empty hardware id", hint="give an id such as a100-80gb (`flopcast hardware list`)")
        if key in self.entries:
            return key
        if key in self.aliases:
            return self.aliases[key]
        close = self.closest_ids(key)
        if key in self.ambiguous_aliases:
            raise UnknownHardware(f"hardware alias {name!r} is ambiguous", hint=f"use one of: {', '.join(close)}")
        prefixed = [pid for pid in close if pid.startswith(key)]
        if len(prefixed) > 1:  # `a100`: README calls it ambiguous (two memory sizes), and so does the error
            raise UnknownHardware(
                f"hardware {name!r} is ambiguous: it could be {' or '.join(prefixed)}", hint="give the full id"
            )
        hint = f"did you mean {' or '.join(close)}?" if close else "run `flopcast hardware list` to see the ids"
        raise UnknownHardware(f"unknown hardware {name!r}", hint=hint)

    def entry(self, name: str) -> CatalogEntry:
        return self.entries[self.resolve_id(name)]

    def get(self, name: str) -> HardwareProfile:
        return self.entry(name).profile


def _files_in(directory: Path) -> list[Path]:
    """Profile files of one directory, sorted; hidden files (editor backups, ``.#x.yaml``) are skipped."""
    return sorted(
        p for p in directory.iterdir() if p.suffix in PROFILE_SUFFIXES and not p.name.startswith(".") and p.is_file()
    )


def load_catalog(extra_dirs: list[Path] | None = None) -> Catalog:
    """Load every profile on the search path; raise :class:`InvalidProfile` on the first bad file or directory."""
    entries: dict[str, CatalogEntry] = {}
    for rank, (directory, origin, must_exist) in enumerate(search_path(extra_dirs)):
        try:
            _add_directory(entries, rank, directory, origin, must_exist)
        except OSError as exc:  # e.g. a config dir without read or search permission
            fix = f"set {ENV_CONFIG_DIR} to another directory" if origin == "user config" else "correct the path"
            raise InvalidProfile(
                f"cannot read profile directory {exc.filename or directory} ({origin}): {exc.strerror or exc}",
                hint=f"make it readable (chmod u+rx) or {fix}",
            ) from None
    return Catalog(entries)


def _add_directory(entries: dict[str, CatalogEntry], rank: int, directory: Path, origin: str, must_exist: bool):
    """Add the profiles of one directory of the search path to ``entries`` (later ranks override)."""
    if not directory.exists():
        if must_exist:
            raise InvalidProfile(
                f"profile directory {directory} ({origin}) does not exist", hint="create it or correct the path"
            )
        return
    if not directory.is_dir():
        raise InvalidProfile(
            f"profile directory {directory} ({origin}) is not a directory", hint="give a folder of .yaml profiles"
        )
    files = _files_in(directory)
    seen_here: dict[str, Path] = {}
    for path in files:
        indexed = _shipped_index(path) if origin == "shipped" else None
        if indexed is not None:  # our own file: id and aliases read cheaply, the profile parsed when used
            pid, own_aliases = indexed
            previous = entries.get(pid)
            entries[pid] = CatalogEntry(
                path=path,
                origin=origin,
                rank=rank,
                aliases=list(dict.fromkeys([*own_aliases, *(previous.aliases if previous else [])])),
            )
            seen_here[pid] = path
            continue
        profile, doc = _load_profile_with_doc(path)
        if profile.id in seen_here:
            line = doc.line_of(("id",))
            raise InvalidProfile(
                f"{path}:{line}: id: {profile.id!r} is also defined in {seen_here[profile.id].name}",
                hint="give each profile in one directory its own id",
            )
        seen_here[profile.id] = path
        previous = entries.get(profile.id)
        overridden = [*previous.overrides, previous.path] if previous else []
        aliases = list(dict.fromkeys([*profile.aliases, *(previous.aliases if previous else [])]))
        entries[profile.id] = CatalogEntry(
            path=path, origin=origin, rank=rank, overrides=overridden, aliases=aliases, loaded=profile
        )


_SHIPPED_ID = re.compile(r"^id:[ \t]*([a-z0-9._-]+)[ \t]*(?:#.*)?$", re.M)
_SHIPPED_ALIASES_KEY = re.compile(r"^aliases:", re.M)
_SHIPPED_ALIASES = re.compile(r"^aliases:[ \t]*\[([a-z0-9._, +\"'-]*)\][ \t]*(?:#.*)?$", re.M)


def _shipped_index(path: Path) -> tuple[str, list[str]] | None:
    """(id, aliases) of a shipped profile read from its text, when written as the shipped files are (a top-level
    ``id:`` equal to the file name and a one-line flow list of ``aliases:``); None → parse the whole file. A test
    checks the index against the parsed profile for every shipped file."""
    text = path.read_text(encoding="utf-8")
    ids, aliases = _SHIPPED_ID.findall(text), _SHIPPED_ALIASES.findall(text)
    if (
        len(ids) != 1
        or ids[0] != path.stem
        or len(aliases) != len(_SHIPPED_ALIASES_KEY.findall(text))
        or len(aliases) > 1
    ):
        return None
    return ids[0], [a.strip().strip("\"'") for a in aliases[0].split(",") if a.strip()] if aliases else []
