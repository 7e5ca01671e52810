"""Hardware profiles: the strict schema (pydantic v2) and the catalogue that finds them.

A profile describes *one device* (a GPU, a TPU chip, a CPU socket) and the links around it. Every
number carries its unit in its name and the file carries its sources. The catalogue searches, in
order, the shipped profiles, ``$FLOPCAST_PROFILES`` (an ``os.pathsep`` list), the user config dir and
``--profiles DIR``; a later profile with the same id overrides an earlier one.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt, ValidationError, model_validator

from flopcast.errors import InvalidProfile, UnknownHardware
from flopcast.units import suggest
from flopcast.yamlsafe import read_yaml

PROFILE_SUFFIXES = (".yaml", ".yml")
ENV_PROFILES = "FLOPCAST_PROFILES"
ENV_CONFIG_DIR = "FLOPCAST_CONFIG_DIR"
DTYPES = ("fp64", "fp32", "tf32", "bf16", "fp16", "fp8", "int8")
PRICE_TIERS_KNOWN = ("on-demand", "spot", "reserved-1y", "reserved-3y", "capacity-block")

_ID_PATTERN = r"^[a-z0-9][a-z0-9._-]*$"


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
    date: str = Field(min_length=1, description="when the price was seen")
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
    aliases: list[str] = Field(default_factory=list)
    release_year: int | None = Field(default=None, ge=1990, le=2100)
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
    tdp_watts: PositiveFloat | None = None
    typical_power_watts: PositiveFloat | None = Field(
        default=None, description="measured average draw where published; used when TDP is not"
    )
    prices_usd_per_device_hour: dict[str, Price] = Field(default_factory=dict)
    calibration: Calibration | None = None
    sources: list[str] = Field(min_length=1)
    missing: list[str] = Field(default_factory=list, description="facts not found in any source")
    notes: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> HardwareProfile:
        for alias in self.aliases:
            if not alias or alias != alias.lower() or " " in alias:
                raise ValueError(f"alias {alias!r} must be lower-case without spaces")
        for tier in self.prices_usd_per_device_hour:
            if not tier or tier != tier.lower() or " " in tier:
                raise ValueError(f"price tier {tier!r} must be lower-case without spaces")
        return self

    @property
    def training_peak_flops_per_s(self) -> float:
        return self.peak_flops_per_s.for_training()[1]

    @property
    def power_watts(self) -> float | None:
        """TDP where published, else a measured typical draw, else None."""
        return self.tdp_watts if self.tdp_watts is not None else self.typical_power_watts


class CatalogEntry(BaseModel):
    """A profile and where it came from."""

    model_config = ConfigDict(frozen=True)

    profile: HardwareProfile
    path: Path
    origin: str
    overrides: list[Path] = Field(default_factory=list)


def _format_loc(loc: tuple) -> str:
    return ".".join(str(p) for p in loc) if loc else "(file)"


def _line_for(loc: tuple, lines: dict[tuple, int]) -> int:
    for cut in range(len(loc), -1, -1):
        if loc[:cut] in lines:
            return lines[loc[:cut]]
    return 1


def _clean_message(err: dict) -> str:
    msg = err["msg"]
    if err["type"] == "extra_forbidden":
        return "unknown key (check the spelling; see `flopcast hardware show a100-80gb` for the schema)"
    if err["type"] == "missing":
        return "required field is missing"
    return msg.removeprefix("Value error, ")


def profile_problems(path: Path) -> tuple[HardwareProfile | None, list[str]]:
    """Validate one file; return the profile (or None) and every problem as ``file:line: field: msg``."""
    try:
        data, lines = read_yaml(path)
    except InvalidProfile as exc:
        return None, exc.problems
    if not isinstance(data, dict):
        return None, [f"{path}:1: (file): a profile must be a YAML mapping of keys to values"]
    try:
        return HardwareProfile.model_validate(data), []
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            # pydantic puts the union member name in the loc for `X | None` fields; drop it
            loc = tuple(p for p in loc if p not in {"float", "int", "str", "constrained-float"})
            problems.append(f"{path}:{_line_for(loc, lines)}: {_format_loc(loc)}: {_clean_message(err)}")
        return None, problems


def load_profile(path: Path) -> HardwareProfile:
    profile, problems = profile_problems(path)
    if profile is None:
        raise InvalidProfile(problems[0] + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""),
                             problems=problems, hint=f"run `flopcast hardware validate {path}`")
    return profile


def shipped_profiles_dir() -> Path:
    """``flopcast/hardware_profiles`` inside an installed wheel, else the repo's top-level folder."""
    here = Path(__file__).resolve().parent
    inside = here / "hardware_profiles"
    if inside.is_dir():
        return inside
    return here.parent.parent / "hardware_profiles"


def user_profiles_dir() -> Path:
    base = os.environ.get(ENV_CONFIG_DIR)
    if base:
        return Path(base) / "profiles"
    xdg = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(xdg) / "flopcast" / "profiles"


def search_path(extra_dirs: list[Path] | None = None) -> list[tuple[Path, str, bool]]:
    """(directory, origin, must_exist) in override order: later wins."""
    dirs: list[tuple[Path, str, bool]] = [(shipped_profiles_dir(), "shipped", True)]
    for part in (os.environ.get(ENV_PROFILES) or "").split(os.pathsep):
        if part.strip():
            dirs.append((Path(part.strip()).expanduser(), f"${ENV_PROFILES}", True))
    dirs.append((user_profiles_dir(), "user config", False))
    for d in extra_dirs or []:
        dirs.append((Path(d).expanduser(), "--profiles", True))
    return dirs


class Catalog:
    """Every visible profile, by id and alias."""

    def __init__(self, entries: dict[str, CatalogEntry]):
        self.entries = entries
        self.aliases: dict[str, str] = {}
        for pid, entry in entries.items():
            for alias in entry.profile.aliases:
                if alias in entries:
                    continue  # an id always beats an alias
                self.aliases.setdefault(alias, pid)

    def ids(self) -> list[str]:
        return sorted(self.entries)

    def resolve_id(self, name: str) -> str:
        key = name.strip().lower()
        if key in self.entries:
            return key
        if key in self.aliases:
            return self.aliases[key]
        close = suggest(key, self.ids() + list(self.aliases))
        hint = f"did you mean {', '.join(close)}?" if close else "run `flopcast hardware list` to see the ids"
        raise UnknownHardware(f"unknown hardware {name!r}", hint=hint)

    def entry(self, name: str) -> CatalogEntry:
        return self.entries[self.resolve_id(name)]

    def get(self, name: str) -> HardwareProfile:
        return self.entry(name).profile


def _files_in(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.suffix in PROFILE_SUFFIXES and p.is_file())


def load_catalog(extra_dirs: list[Path] | None = None) -> Catalog:
    """Load every profile on the search path; raise :class:`InvalidProfile` on the first bad file."""
    entries: dict[str, CatalogEntry] = {}
    for directory, origin, must_exist in search_path(extra_dirs):
        if not directory.exists():
            if must_exist:
                raise InvalidProfile(f"profile directory {directory} ({origin}) does not exist",
                                     hint="create it or correct the path")
            continue
        if not directory.is_dir():
            raise InvalidProfile(f"profile directory {directory} ({origin}) is not a directory",
                                 hint="give a folder of .yaml profiles")
        seen_here: dict[str, Path] = {}
        try:
            files = _files_in(directory)
        except OSError as exc:
            raise InvalidProfile(f"cannot read profile directory {directory}: {exc.strerror}") from None
        for path in files:
            profile = load_profile(path)
            if profile.id in seen_here:
                raise InvalidProfile(
                    f"{path}:1: id: {profile.id!r} is also defined in {seen_here[profile.id].name}",
                    hint="give each profile in one directory its own id",
                )
            seen_here[profile.id] = path
            previous = entries.get(profile.id)
            overridden = [*previous.overrides, previous.path] if previous else []
            entries[profile.id] = CatalogEntry(profile=profile, path=path, origin=origin, overrides=overridden)
    return Catalog(entries)
