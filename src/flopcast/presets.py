"""The shipped model presets (``src/flopcast/data/model_presets.yaml``): the registry, ids and aliases, details.

Each preset reproduces its published parameter count within 1% (DESIGN §3; tests/test_models.py)."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from flopcast.errors import RuntimeFailure, UnknownModel, opt
from flopcast.models import ModelSpec
from flopcast.units import suggest

# ============================================================================================================
# Presets
# ============================================================================================================

PRESETS_FILE = Path(__file__).resolve().parent / "data" / "model_presets.yaml"
_PRESET_EXTRA_KEYS = ("id", "title", "aliases", "notes")


@dataclass(frozen=True)
class PresetDetails:
    """A preset with what is not architecture: its id, a human title, aliases and notes on the source.

    A plain dataclass, not a pydantic model: presets load on every ``flopcast estimate`` and a second
    pydantic class would cost milliseconds of import time. ``spec`` is the validated :class:`ModelSpec`, built
    on first use: an estimate needs one preset of dozens (validating them all cost ~30 ms of start-up).
    """

    id: str
    title: str
    aliases: tuple[str, ...]
    notes: tuple[str, ...]
    fields: dict  # the architecture as written in the data file
    position: int = 0  # 1-based place in the file, for error messages

    @classmethod
    def of_spec(cls, spec: ModelSpec, *, id: str, title: str, aliases=(), notes=()) -> PresetDetails:  # noqa: A002
        """Details around an already validated spec (a config.json's)."""
        details = cls(id=id, title=title, aliases=tuple(aliases), notes=tuple(notes), fields={})
        details.__dict__["spec"] = spec  # the cached_property's slot
        return details

    @functools.cached_property
    def spec(self) -> ModelSpec:
        try:
            return ModelSpec(name=self.id, **self.fields)
        except (TypeError, ValueError, ValidationError) as exc:
            raise RuntimeFailure(f"{PRESETS_FILE}: preset #{self.position}: {exc}", hint="reinstall flopcast") from None


def _compact(key: str) -> str:
    """``Llama2_7B`` → ``llama27b``: case, spaces, dashes and underscores ignored (dots kept: 1.3b ≠ 13b)."""
    return re.sub(r"[\s_\-]+", "", key.strip().lower())


class _Registry:
    """Every preset by id, alias and compact key (the last only where it names exactly one preset).

    Built from an index of (id, aliases, source text) per preset; an entry's YAML is parsed when the entry is
    first used (an estimate needs one preset of dozens, and parsing the whole file cost ~10 ms of start-up)."""

    def __init__(self, index: list[tuple[str, tuple[str, ...], str]]):
        self._text = {pid: text for pid, _, text in index}
        self._position = {pid: i + 1 for i, (pid, _, _) in enumerate(index)}
        self._parsed: dict[str, PresetDetails] = {}
        self.ids = list(self._text)
        if len(self.ids) != len(index):
            raise RuntimeFailure(f"{PRESETS_FILE}: duplicate preset id", hint="reinstall flopcast")
        self.aliases: dict[str, str] = {}
        self.compact: dict[str, set[str]] = {}
        for pid, aliases, _ in index:
            for alias in aliases:
                if alias in self._text or self.aliases.get(alias, pid) != pid:
                    raise RuntimeFailure(f"{PRESETS_FILE}: alias {alias!r} of {pid} is already taken")
                self.aliases[alias] = pid
            for key in [pid, *aliases]:
                self.compact.setdefault(_compact(key), set()).add(pid)

    @classmethod
    def of_details(cls, details: list[PresetDetails]) -> _Registry:
        """A registry of presets already in hand (no text behind them)."""
        registry = cls([(d.id, d.aliases, "") for d in details])
        registry._parsed = {d.id: d for d in details}
        return registry

    def details(self, pid: str) -> PresetDetails:
        """The preset ``pid``'s details, its YAML parsed on first use."""
        if pid not in self._parsed:
            self._parsed[pid] = _parse_entry(self._text[pid], self._position[pid])
        return self._parsed[pid]

    def all(self) -> list[PresetDetails]:
        return [self.details(pid) for pid in self.ids]

    def lookup(self, name: str) -> PresetDetails:
        key = name.strip().lower()
        if not key:
            raise UnknownModel("empty model id", hint="give a preset id such as llama-2-7b (`flopcast models list`)")
        pid = key if key in self._text else self.aliases.get(key)
        if pid is None:
            matches = self.compact.get(_compact(key), set())
            if len(matches) > 1:
                raise UnknownModel(f"model {name!r} is ambiguous", hint=f"did you mean {' or '.join(sorted(matches))}?")
            pid = next(iter(matches), None)
        if pid is None:
            close = []
            for hit in suggest(key, self.ids + list(self.aliases)):
                target = hit if hit in self._text else self.aliases[hit]
                if target not in close:
                    close.append(target)
            did = f"did you mean {', '.join(close)}? " if close else ""
            raise UnknownModel(
                f"unknown model {name!r}",
                hint=f"{did}`flopcast models list` shows every preset; a size such as 7B or an explicit "
                f"{opt('layers')}/{opt('d_model')}/{opt('heads')} also works",
            )
        return self.details(pid)


_UNREADABLE = "cannot read the model presets {}: {}"


def _yaml_load(text: str):
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        return yaml.load(text, Loader=loader)  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        raise RuntimeFailure(_UNREADABLE.format(PRESETS_FILE, exc), hint="reinstall flopcast") from None


def _details_of(entry, position: int) -> PresetDetails:
    try:
        fields = dict(entry)
        extra = {k: fields.pop(k) for k in _PRESET_EXTRA_KEYS if k in fields}
        pid = str(extra["id"]).lower()
        return PresetDetails(
            id=pid,
            title=extra.get("title", pid),
            aliases=tuple(extra.get("aliases") or ()),
            notes=tuple(extra.get("notes") or ()),
            fields=fields,
            position=position,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise RuntimeFailure(f"{PRESETS_FILE}: preset #{position}: {exc}", hint="reinstall flopcast") from None


def _parse_entry(text: str, position: int) -> PresetDetails:
    """One preset from its own lines of the file (a one-item YAML list; see :func:`_text_index`)."""
    doc = _yaml_load(text)
    if not isinstance(doc, list) or len(doc) != 1:
        raise RuntimeFailure(f"{PRESETS_FILE}: preset #{position} is not one list item", hint="reinstall flopcast")
    return _details_of(doc[0], position)


# How the shipped file is written: each preset starts with an ``  - id: x`` line (two spaces of indent under
# ``presets:``) and gives its aliases as a one-line flow list.
_ENTRY_START = re.compile(r"^  - id:[ \t]*([A-Za-z0-9._-]+)[ \t]*(?:#.*)?$", re.M)
_ANY_ITEM = re.compile(r"^  - ", re.M)
_TOP_KEY = re.compile(r"^presets:[ \t]*(?:#.*)?$", re.M)
_ALIASES_KEY = re.compile(r"^    aliases:", re.M)
_ALIASES = re.compile(r"^    aliases:[ \t]*\[([A-Za-z0-9._/, +\"'-]*)\][ \t]*(?:#.*)?$", re.M)


def _text_index(text: str) -> list[tuple[str, tuple[str, ...], str]] | None:
    """(id, aliases, the entry's lines) per preset, read from the text when the file is written as shipped;
    None → parse the whole file. A test checks this index against the full parse."""
    top = _TOP_KEY.search(text)
    starts = list(_ENTRY_START.finditer(text))
    if top is None or not starts or len(starts) != len(_ANY_ITEM.findall(text)) or starts[0].start() < top.end():
        return None
    index = []
    for i, match in enumerate(starts):
        chunk = text[match.start() : starts[i + 1].start() if i + 1 < len(starts) else len(text)]
        aliases = _ALIASES.findall(chunk)
        if len(aliases) != len(_ALIASES_KEY.findall(chunk)) or len(aliases) > 1:
            return None
        names = tuple(a.strip().strip("\"'").lower() for a in aliases[0].split(",") if a.strip()) if aliases else ()
        index.append((match.group(1).lower(), names, chunk))
    return index


def _parsed_index(text: str) -> list[tuple[str, tuple[str, ...], str]]:
    """The index from a full parse of the file (any YAML layout): each entry dumped back as its own text."""
    import yaml

    doc = _yaml_load(text)
    entries = doc.get("presets") if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        raise RuntimeFailure(f"{PRESETS_FILE}: expected a top-level 'presets:' list", hint="reinstall flopcast")
    index = []
    for i, entry in enumerate(entries):
        d = _details_of(entry, i + 1)
        index.append((d.id, tuple(a.lower() for a in d.aliases), yaml.safe_dump([entry], sort_keys=False)))
    return index


@functools.lru_cache(maxsize=1)
def _registry() -> _Registry:
    """Index the shipped presets once per process; each entry is parsed (C-accelerated SafeLoader) when first
    used, and its ModelSpec validated when first needed (``PresetDetails.spec``; ``list_presets`` does all)."""
    try:
        text = PRESETS_FILE.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RuntimeFailure(_UNREADABLE.format(PRESETS_FILE, exc), hint="reinstall flopcast") from None
    index = _text_index(text)
    return _Registry(index if index is not None else _parsed_index(text))


def list_presets() -> list[ModelSpec]:
    """Every shipped preset, in file order (``name`` is the preset id)."""
    return [d.spec for d in _registry().all()]


def preset_details(name: str) -> PresetDetails:
    """The preset ``name`` (id or alias, any case) with its title, aliases and notes; :class:`UnknownModel` if none.
    A path to a Hugging Face config.json (or its directory) gives that model, its notes those of the reading
    (:func:`flopcast.hf_config.config_details`)."""
    from flopcast.config_path import looks_like_config_path

    if looks_like_config_path(name):
        from flopcast.hf_config import config_details

        return config_details(name)
    return _registry().lookup(name)


def get_preset(name: str) -> ModelSpec:
    """The preset ``name`` (id or unambiguous alias, any case); :class:`UnknownModel` with suggestions if none."""
    return _registry().lookup(name).spec
