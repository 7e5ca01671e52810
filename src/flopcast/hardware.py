"""Hardware profiles: the strict schema (pydantic v2) and the catalogue that finds them.

A profile describes *one device* (a GPU, a TPU chip, a CPU socket) and the links around it. Every
number carries its unit in its name and the file carries its sources. The catalogue searches, in
order, the shipped profiles, ``$FLOPCAST_PROFILES`` (an ``os.pathsep`` list), the user config dir and
``--profiles DIR``; a later profile with the same id overrides an earlier one.
"""

from __future__ import annotations

import datetime
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from flopcast.errors import InvalidProfile, UnknownHardware
from flopcast.units import MAX_QUANTITY, MIN_POSITIVE_QUANTITY, suggest
from flopcast.yamlsafe import FILE_FIELD, YamlDocument, load_yaml

PROFILE_SUFFIXES = (".yaml", ".yml")
ENV_PROFILES = "FLOPCAST_PROFILES"
ENV_CONFIG_DIR = "FLOPCAST_CONFIG_DIR"
DTYPES = ("fp64", "fp32", "tf32", "bf16", "fp16", "fp8", "int8")
PRICE_TIERS_KNOWN = ("on-demand", "spot", "reserved-1y", "reserved-3y", "capacity-block")

_ID_PATTERN = r"^[a-z0-9][a-z0-9._-]*$"
_FAMILY_PATTERN = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")  # a lower-case slug: nvidia-hopper, google-tpu


def _refuse_bool(value: object) -> object:
    """YAML reads `yes`/`true` as a boolean, which pydantic would quietly take as 1."""
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got {str(value).lower()}")
    return value


def _date_to_text(value: object) -> object:
    """An unquoted YAML date (2026-09-17) arrives as a date object; keep it as its ISO text."""
    return value.isoformat() if isinstance(value, datetime.date) else value


def _sane(value: float) -> float:
    """The sanity bounds of every typed quantity (flopcast.units): 5e-324 or 1e308 would overflow an estimate."""
    if not MIN_POSITIVE_QUANTITY <= value <= MAX_QUANTITY:
        raise ValueError(f"{value:g} is outside the sane range {MIN_POSITIVE_QUANTITY:g} to {MAX_QUANTITY:g}")
    return value


# A physical quantity: a finite number > 0 (never a boolean, never inf/nan) within the sanity bounds.
PositiveFloat = Annotated[float, BeforeValidator(_refuse_bool), Field(gt=0, allow_inf_nan=False), AfterValidator(_sane)]
PositiveInt = Annotated[int, BeforeValidator(_refuse_bool), Field(gt=0)]
DateText = Annotated[str, BeforeValidator(_date_to_text), Field(min_length=1)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PeakFlops(_Strict):
    """Dense peak FLOP/s per dtype (never the 2:4-sparse headline). Empty = not published."""

    fp64: PositiveFloat | None = None
    fp32: PositiveFloat | None = None
    tf32: PositiveFloat | None = None
    bf16: PositiveFloat | None = None
    fp16: PositiveFloat | None = None
    fp8: PositiveFloat | None = None
    int8: PositiveFloat | None = None

    @model_validator(mode="after")
    def _at_least_one(self) -> PeakFlops:
        if all(getattr(self, d) is None for d in DTYPES):
            raise ValueError("at least one dtype needs a peak FLOP/s value")
        return self

    def for_training(self) -> tuple[str, float]:
        """The dtype and peak used for mixed-precision training: bf16, else fp16, else fp32, else fp64."""
        for dtype in ("bf16", "fp16", "fp32", "fp64"):
            value = getattr(self, dtype)
            if value is not None:
                return dtype, value
        raise ValueError("profile has no floating-point peak")  # unreachable after validation

    def get(self, dtype: str) -> float | None:
        return getattr(self, dtype, None)


class Price(_Strict):
    usd_per_device_hour: PositiveFloat
    date: DateText = Field(description="when the price was seen")
    source: str = Field(min_length=1)
    note: str | None = None


class Calibration(_Strict):
    """Optional fitted or measured factors; ``fitted_on`` says where they come from."""

    matmul_efficiency: float | None = Field(default=None, gt=0, le=1)
    fitted_on: str = Field(min_length=1)


class HardwareProfile(_Strict):
    """One device. Units in names; SI decimal (GB = 1e9 B)."""

    id: str = Field(pattern=_ID_PATTERN, max_length=64)
    name: str = Field(min_length=1)
    kind: Literal["gpu", "tpu", "cpu", "accelerator"]
    vendor: str | None = None
    family: str | None = Field(
        default=None,
        max_length=64,
        description="chip family calibration is shared by (nvidia-ampere, nvidia-hopper, google-tpu, ...)",
    )
    compute_capability: Annotated[float, BeforeValidator(_refuse_bool)] | None = Field(
        default=None, ge=1.0, le=99.0, description="CUDA compute capability (NVIDIA GPUs; CUDA Programming Guide)"
    )
    aliases: list[str] = Field(default_factory=list)
    release_year: Annotated[int, BeforeValidator(_refuse_bool)] | None = Field(default=None, ge=1990, le=2100)
    peak_flops_per_s: PeakFlops
    memory_bytes: PositiveFloat
    memory_bandwidth_bytes_per_s: PositiveFloat
    devices_per_node: PositiveInt = 1
    intra_node_bandwidth_bytes_per_s: PositiveFloat | None = Field(
        default=None, description="per device, per direction, inside a node (NVLink / TPU ICI)"
    )
    inter_node_bandwidth_bytes_per_s: PositiveFloat | None = Field(
        default=None, description="per device, per direction, between nodes (InfiniBand / RoCE / DCN)"
    )
    collective_latency_s: PositiveFloat | None = Field(
        default=None,
        description="measured launch latency of one all-reduce on the intra-node link, seconds: the t(0) that "
        "`flopcast bench --collectives` fits (t = latency + 2(n-1)/n·bytes/busbw); the rank count is in notes",
    )
    measured: list[str] = Field(
        default_factory=list,
        description="the fields whose numbers were measured on this hardware (flopcast bench), not datasheet "
        "figures, e.g. [intra_node_bandwidth_bytes_per_s, collective_latency_s]",
    )
    tdp_watts: PositiveFloat | None = None
    typical_power_watts: PositiveFloat | None = Field(
        default=None, description="measured average draw where published; used when TDP is not"
    )
    prices_usd_per_device_hour: dict[str, Price] = Field(default_factory=dict)
    calibration: Calibration | None = None
    sources: list[str] = Field(min_length=1)
    missing: list[str] = Field(default_factory=list, description="facts not found in any source")
    notes: list[str] = Field(default_factory=list)

    @field_validator("family")
    @classmethod
    def _family_is_a_slug(cls, family: str | None) -> str | None:
        if family is not None and not _FAMILY_PATTERN.match(family):
            raise ValueError(
                f"{family!r} must be a lower-case slug: letters and digits joined by single '-' (e.g. nvidia-hopper)"
            )
        return family

    @field_validator("measured")
    @classmethod
    def _measured_names_fields(cls, measured: list[str]) -> list[str]:
        for name in measured:
            if name not in cls.model_fields or name in ("id", "name", "measured", "sources", "missing", "notes"):
                raise ValueError(f"{name!r} is not a measurable profile field (e.g. intra_node_bandwidth_bytes_per_s)")
        return measured

    @field_validator("compute_capability")
    @classmethod
    def _capability_is_nvidia_gpu_only(cls, capability: float | None, info: ValidationInfo) -> float | None:
        kind = info.data.get("kind")
        if capability is not None and kind is not None and kind != "gpu":
            raise ValueError(f"a CUDA compute capability belongs to an NVIDIA GPU, not to a {kind}")
        return capability

    @field_validator("aliases")
    @classmethod
    def _aliases_lower_case(cls, aliases: list[str]) -> list[str]:
        for alias in aliases:
            if not alias or alias != alias.lower() or " " in alias:
                raise ValueError(f"alias {alias!r} must be lower-case without spaces")
        return aliases

    @field_validator("prices_usd_per_device_hour")
    @classmethod
    def _tiers_lower_case(cls, prices: dict[str, Price]) -> dict[str, Price]:
        for tier in prices:
            if not tier or tier != tier.lower() or " " in tier:
                raise ValueError(f"price tier {tier!r} must be lower-case without spaces (e.g. on-demand)")
        return prices

    @property
    def training_peak_flops_per_s(self) -> float:
        return self.peak_flops_per_s.for_training()[1]

    @property
    def power_watts(self) -> float | None:
        """TDP where published, else a measured typical draw, else None."""
        return self.tdp_watts if self.tdp_watts is not None else self.typical_power_watts


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


# --- validation problems as `file:line: field: message` ------------------------------------------------

_SCHEMA_MODELS = (HardwareProfile, PeakFlops, Price, Calibration)
# pydantic puts the member of an `X | None` union (or the constrained type) in the error location; drop it
_UNION_LOC_PARTS = frozenset({"float", "int", "str", "constrained-float", "constrained-int", "function-before"})


def _known_keys() -> list[str]:
    return sorted({name for model in _SCHEMA_MODELS for name in model.model_fields})


def _format_loc(loc: tuple) -> str:
    return ".".join(_key_text(p) for p in loc) if loc else FILE_FIELD


def _key_text(key: object) -> str:
    """A key as written, or quoted when it is empty or holds spaces or control characters (one line, visible)."""
    text = str(key)
    return text if text and text.isprintable() and not any(c.isspace() for c in text) else repr(text)


def _clean_message(err: dict, loc: tuple) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        key = str(loc[-1]) if loc else ""
        close = suggest(key, _known_keys(), n=1)
        fix = f"did you mean {close[0]}?" if close else "see README 'Hardware profiles' for the schema"
        return f"unknown key ({fix})"
    if kind == "missing":
        return "required field is missing"
    if kind == "string_type" and isinstance(err.get("input"), bool):  # `vendor: no`: YAML 1.1 read a boolean
        said = "yes/true/on" if err["input"] else "no/false/off"
        return f'YAML reads an unquoted {said} as {str(err["input"]).lower()}: quote the text (e.g. "no")'
    if kind == "string_pattern_mismatch":
        return f"{err.get('input')!r} must be lower-case letters, digits, '.', '_' or '-' (e.g. my-gpu-80gb)"
    if kind in ("greater_than", "greater_than_equal") and isinstance(err.get("input"), int | float):
        return (
            f"must be greater than 0, got {err['input']}"
            if err.get("ctx", {}).get("gt") == 0
            else err["msg"] + f", got {err['input']}"
        )
    return err["msg"].removeprefix("Value error, ")


def _validation_problems(path: Path, doc: YamlDocument, exc: ValidationError) -> list[str]:
    problems: list[tuple[int, str]] = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if p not in _UNION_LOC_PARTS and not str(p).startswith("function-"))
        problems.append((doc.line_of(loc), f"{_format_loc(loc)}: {_clean_message(err, loc)}"))
    problems.sort(key=lambda item: item[0])  # in file order (stable: pydantic's order within a line)
    return [f"{path}:{line}: {text}" for line, text in problems]


def _check_profile(path: Path) -> tuple[HardwareProfile | None, list[str], YamlDocument | None]:
    try:
        doc = load_yaml(path)
    except InvalidProfile as exc:
        return None, exc.problems, None
    if not isinstance(doc.data, dict):
        got = type(doc.data).__name__
        return None, [f"{path}:1: {FILE_FIELD}: a profile must be a YAML mapping of keys to values, not a {got}"], doc
    try:
        return HardwareProfile.model_validate(doc.data), [], doc
    except ValidationError as exc:
        return None, _validation_problems(path, doc, exc), doc


def profile_problems(path: Path) -> tuple[HardwareProfile | None, list[str]]:
    """Validate one file; return the profile (or None) and every problem as ``file:line: field: message``."""
    profile, problems, _ = _check_profile(path)
    return profile, problems


def _load_profile_with_doc(path: Path) -> tuple[HardwareProfile, YamlDocument]:
    profile, problems, doc = _check_profile(path)
    if profile is None or doc is None:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise InvalidProfile(problems[0] + more, problems=problems, hint=f"run `flopcast hardware validate {path}`")
    return profile, doc


def load_profile(path: Path) -> HardwareProfile:
    """Read and validate one profile file; raise :class:`InvalidProfile` naming the first problem."""
    return _load_profile_with_doc(path)[0]


# --- where profiles are found ----------------------------------------------------------------------------


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
