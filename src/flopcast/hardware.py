"""Hardware profiles: the strict schema (pydantic v2) and the catalogue that finds them.

A profile describes *one device* (a GPU, a TPU chip, a CPU socket) and the links around it. Every
number carries its unit in its name and the file carries its sources. The catalogue searches, in
order, the shipped profiles, ``$FLOPCAST_PROFILES`` (an ``os.pathsep`` list), the user config dir and
``--profiles DIR``; a later profile with the same id overrides an earlier one.
"""

from __future__ import annotations

import datetime
import re
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

from flopcast.errors import InvalidProfile
from flopcast.units import MAX_QUANTITY, MIN_POSITIVE_QUANTITY, suggest
from flopcast.yamlsafe import FILE_FIELD, YamlDocument, load_yaml

PROFILE_SUFFIXES = (".yaml", ".yml")
ENV_PROFILES = "FLOPCAST_PROFILES"
ENV_CONFIG_DIR = "FLOPCAST_CONFIG_DIR"
DTYPES = ("fp64", "fp32", "tf32", "bf16", "fp16", "fp8", "fp4", "int8")
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
    fp4: PositiveFloat | None = None  # NVFP4 / MXFP4 matrix peak (Blackwell, MI355X): `serve --compute fp4`
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


# The catalogue (search path, overrides, aliases) lives in flopcast.catalog; its names stay importable from here.
_CATALOG_NAMES = frozenset({"CatalogEntry", "Catalog", "load_catalog", "search_path", "shipped_profiles_dir",
                            "user_profiles_dir"})  # fmt: skip


def __getattr__(name: str):
    if name in _CATALOG_NAMES:
        from flopcast import catalog

        return getattr(catalog, name)
    raise AttributeError(f"module 'flopcast.hardware' has no attribute {name!r}")
