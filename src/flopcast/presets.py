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
    pydantic class would cost milliseconds of import time. ``spec`` is the validated :class:`ModelSpec`.
    """

    id: str
    title: str
    aliases: tuple[str, ...]
    notes: tuple[str, ...]
    spec: ModelSpec


def _compact(key: str) -> str:
    """``Llama2_7B`` → ``llama27b``: case, spaces, dashes and underscores ignored (dots kept: 1.3b ≠ 13b)."""
    return re.sub(r"[\s_\-]+", "", key.strip().lower())


class _Registry:
    """Every preset by id, alias and compact key (the last only where it names exactly one preset)."""

    def __init__(self, details: list[PresetDetails]):
        self.details = {d.id: d for d in details}
        self.aliases: dict[str, str] = {}
        self.compact: dict[str, set[str]] = {}
        for d in details:
            for alias in d.aliases:
                if alias in self.details or self.aliases.get(alias, d.id) != d.id:
                    raise RuntimeFailure(f"{PRESETS_FILE}: alias {alias!r} of {d.id} is already taken")
                self.aliases[alias] = d.id
            for key in [d.id, *d.aliases]:
                self.compact.setdefault(_compact(key), set()).add(d.id)

    def lookup(self, name: str) -> PresetDetails:
        key = name.strip().lower()
        if not key:
            raise UnknownModel("empty model id", hint="give a preset id such as llama-2-7b (`flopcast models list`)")
        pid = key if key in self.details else self.aliases.get(key)
        if pid is None:
            matches = self.compact.get(_compact(key), set())
            if len(matches) > 1:
                raise UnknownModel(f"model {name!r} is ambiguous", hint=f"did you mean {' or '.join(sorted(matches))}?")
            pid = next(iter(matches), None)
        if pid is None:
            close = []
            for hit in suggest(key, list(self.details) + list(self.aliases)):
                target = hit if hit in self.details else self.aliases[hit]
                if target not in close:
                    close.append(target)
            did = f"did you mean {', '.join(close)}? " if close else ""
            raise UnknownModel(
                f"unknown model {name!r}",
                hint=f"{did}`flopcast models list` shows every preset; a size such as 7B or an explicit "
                f"{opt('layers')}/{opt('d_model')}/{opt('heads')} also works",
            )
        return self.details[pid]


@functools.lru_cache(maxsize=1)
def _registry() -> _Registry:
    """Read and validate the shipped presets once per process (the data file is ours: C-accelerated SafeLoader)."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        doc = yaml.load(PRESETS_FILE.read_text(encoding="utf-8"), Loader=loader)  # noqa: S506 - a safe loader
    except (OSError, yaml.YAMLError) as exc:
        raise RuntimeFailure(
            f"cannot read the model presets {PRESETS_FILE}: {exc}", hint="reinstall flopcast"
        ) from None
    entries = doc.get("presets") if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        raise RuntimeFailure(f"{PRESETS_FILE}: expected a top-level 'presets:' list", hint="reinstall flopcast")
    details = []
    for i, entry in enumerate(entries):
        try:
            fields = dict(entry)
            extra = {k: fields.pop(k) for k in _PRESET_EXTRA_KEYS if k in fields}
            pid = str(extra["id"]).lower()
            spec = ModelSpec(name=pid, **fields)
            details.append(
                PresetDetails(
                    id=pid,
                    title=extra.get("title", pid),
                    aliases=tuple(extra.get("aliases") or ()),
                    notes=tuple(extra.get("notes") or ()),
                    spec=spec,
                )
            )
        except (KeyError, TypeError, ValueError, ValidationError) as exc:
            raise RuntimeFailure(f"{PRESETS_FILE}: preset #{i + 1}: {exc}", hint="reinstall flopcast") from None
    if len({d.id for d in details}) != len(details):
        raise RuntimeFailure(f"{PRESETS_FILE}: duplicate preset id", hint="reinstall flopcast")
    return _Registry(details)


def list_presets() -> list[ModelSpec]:
    """Every shipped preset, in file order (``name`` is the preset id)."""
    return [d.spec for d in _registry().details.values()]


def preset_details(name: str) -> PresetDetails:
    """The preset ``name`` (id or alias, any case) with its title, aliases and notes; :class:`UnknownModel` if none.
    A path to a Hugging Face config.json (or its directory) gives that model, its notes those of the reading
    (:func:`flopcast.hf_config.config_details`)."""
    from flopcast.hf_config import config_details, looks_like_config_path

    if looks_like_config_path(name):
        return config_details(name)
    return _registry().lookup(name)


def get_preset(name: str) -> ModelSpec:
    """The preset ``name`` (id or unambiguous alias, any case); :class:`UnknownModel` with suggestions if none."""
    return _registry().lookup(name).spec
