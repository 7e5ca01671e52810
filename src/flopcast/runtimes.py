"""Serving runtimes as data (``src/flopcast/data/runtimes.yaml``): bandwidth reached per weight format and the
fixed cost of a forward pass, for `serve --runtime NAME` (DESIGN §6 `serve`; issue 17 item 1).

A :class:`RuntimeProfile` holds the values for one runtime on one device kind (gpu, cpu, tpu); the file's
header says how serving uses them. Library users may build their own (e.g. from a measurement) and pass it as
``runtime=`` to :func:`flopcast.serve`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from flopcast.errors import BrokenInstall, InvalidValue, opt

RUNTIMES_FILE = Path(__file__).resolve().parent / "data" / "runtimes.yaml"
MEASURED_FAMILY_PREFIX = "local-"  # families of profiles saved by `flopcast bench` (bench/profile.py)
ANY_KIND = "any"
BASE_COMPUTE_FORMAT = "bf16"  # every runtime multiplies in 16 bit (weight-only kernels dequantise to it)


@dataclass(frozen=True)
class RuntimeProfile:
    """One runtime on one device kind. Fractions are of the streaming bandwidth; seconds are per kernel or
    per forward pass (see runtimes.yaml)."""

    id: str
    name: str
    kind: str
    bandwidth_fraction: dict[int, float]  # weight bits -> fraction of the streaming bandwidth
    kernels_per_layer: float
    kernels_outside_layers: float
    launch_seconds_per_kernel: float  # host
    gap_seconds_per_kernel: float  # device
    seconds_per_forward: float  # host
    stream_fraction: float  # datasheet -> streaming bandwidth of this device kind
    sources: dict[str, str] = field(default_factory=dict, compare=False)
    # matmul formats (weights × activations) the runtime has kernels for: bf16 always, fp8 (W8A8), fp4 (W4A4)
    compute_formats: tuple[str, ...] = (BASE_COMPUTE_FORMAT,)
    # bits a quantized weight takes in the runtime's own format, scales included (GGUF Q4_0: 4.5); empty: the
    # GPTQ/AWQ group-128 layout (serving_memory.bytes_per_quantized_weight)
    stored_bits_per_weight: dict[int, float] = field(default_factory=dict, compare=False)

    @property
    def weight_bits(self) -> tuple[int, ...]:
        return tuple(sorted(self.bandwidth_fraction, reverse=True))

    def kernels_per_forward(self, layers: float) -> float:
        return layers * self.kernels_per_layer + self.kernels_outside_layers

    def host_overlaps_device(self) -> bool:
        """GPUs and TPUs run kernels asynchronously to the host that launches them; on a CPU they are one."""
        return self.kind != "cpu"

    def bandwidth_efficiency(self, bits: int, measured: bool = False) -> float:
        """Share of the datasheet bandwidth (of a measured profile's sustained one) decode reaches at ``bits``."""
        stream = 1.0 if measured else self.stream_fraction
        return stream * self.bandwidth_fraction[bits]


@lru_cache(maxsize=1)
def _document() -> dict:
    from flopcast.yamlsafe import read_yaml

    try:
        data, _ = read_yaml(RUNTIMES_FILE)
    except OSError as exc:  # pragma: no cover - a broken install
        raise BrokenInstall(f"cannot read {RUNTIMES_FILE}: {exc}") from exc
    if not isinstance(data, dict) or "runtimes" not in data:
        raise BrokenInstall(f"{RUNTIMES_FILE}: no 'runtimes' mapping")
    return data


def runtime_ids() -> list[str]:
    return list(_document()["runtimes"])


def default_runtime(kind: str, vendor: str | None = None) -> str:
    """The runtime ``serve`` uses when none is named: per device kind, unless that one has no kernels for this
    GPU vendor (``default_by_vendor``: Apple GPUs get llama.cpp's Metal backend)."""
    doc = _document()
    key = doc["default"].get(kind, doc["default"]["gpu"])
    if kind == "gpu" and vendor is not None and not _runs_on_vendor(doc["runtimes"][key], vendor):
        key = (doc.get("default_by_vendor") or {}).get(vendor, key)
    return key


def _runs_on_vendor(entry: dict, vendor: str | None) -> bool:
    vendors = entry.get("gpu_vendors")
    return vendor is None or not vendors or vendor.lower() in {v.lower() for v in vendors}


def _sourced(entry: dict, what: str) -> tuple[float, str]:
    if not isinstance(entry, dict) or "value" not in entry or not entry.get("source"):
        raise BrokenInstall(f"{RUNTIMES_FILE}: {what} needs a value and a source")
    return float(entry["value"]), str(entry["source"])


def _by_kind(entry: dict, kind: str, what: str) -> tuple[float, str] | None:
    if "value" in entry:
        return _sourced(entry, what)
    chosen = entry.get(kind, entry.get(ANY_KIND))
    return None if chosen is None else _sourced(chosen, f"{what}.{kind}")


def load_runtime(
    name: str | None, kind: str, hardware_id: str = "this hardware", vendor: str | None = None
) -> RuntimeProfile:
    """The runtime ``name`` (None: the default for ``kind`` and ``vendor``) on a ``kind`` device;
    :class:`InvalidValue` with the closest names when there is no such runtime, or when it does not run on
    ``kind`` or on this vendor's GPUs."""
    from flopcast.units import suggest

    doc = _document()
    runtimes = doc["runtimes"]
    key = default_runtime(kind, vendor) if name is None else str(name).strip().lower()
    if key not in runtimes:
        close = suggest(key, list(runtimes))
        hint = f"did you mean {' or '.join(close)}?" if close else f"use one of {', '.join(runtimes)}"
        raise InvalidValue(f"{opt('runtime')} {name!r}: no such serving runtime", hint=hint)
    entry = runtimes[key]
    if kind not in entry["devices"]:
        able = [r for r, e in runtimes.items() if kind in e["devices"]]
        raise InvalidValue(
            f"{opt('runtime')} {key}: {key} does not run on {hardware_id} (a {kind}); it runs on "
            f"{', '.join(entry['devices'])}",
            hint=f"use one of {', '.join(able)}" if able else "choose other hardware",
        )
    if kind == "gpu" and not _runs_on_vendor(entry, vendor):
        able = [r for r, e in runtimes.items() if kind in e["devices"] and _runs_on_vendor(e, vendor)]
        raise InvalidValue(
            f"{opt('runtime')} {key}: {key} has no kernels for {vendor} GPUs ({hardware_id}); it runs on "
            f"{', '.join(entry['gpu_vendors'])} GPUs",
            hint=f"use one of {', '.join(able)}" if able else "choose other hardware",
        )
    sources: dict[str, str] = {}
    fractions = {}
    for bits, value in entry["bandwidth_fraction"].items():
        fractions[int(bits)], sources[f"bandwidth_fraction.{bits}"] = _sourced(value, f"{key}.bandwidth_fraction")
    values = {}
    for name_ in ("kernels_per_layer", "kernels_outside_layers"):
        values[name_], sources[name_] = _sourced(entry[name_], f"{key}.{name_}")
    for name_ in ("launch_seconds_per_kernel", "gap_seconds_per_kernel", "seconds_per_forward"):
        got = _by_kind(entry[name_], kind, f"{key}.{name_}")
        if got is None:
            raise BrokenInstall(f"{RUNTIMES_FILE}: {key}.{name_} has no value for {kind}")
        values[name_], sources[name_] = got
    stream = _by_kind(doc["stream_fraction"], kind, "stream_fraction")
    if stream is None:
        raise BrokenInstall(f"{RUNTIMES_FILE}: stream_fraction has no value for {kind}")
    values["stream_fraction"], sources["stream_fraction"] = stream
    formats = [BASE_COMPUTE_FORMAT]
    for fmt, value in (entry.get("compute_formats") or {}).items():
        if not isinstance(value, dict) or not value.get("source"):
            raise BrokenInstall(f"{RUNTIMES_FILE}: {key}.compute_formats.{fmt} needs a source")
        formats.append(str(fmt))
        sources[f"compute_formats.{fmt}"] = str(value["source"])
    stored = {}
    for bits, value in (entry.get("stored_bits_per_weight") or {}).items():
        stored[int(bits)], sources[f"stored_bits_per_weight.{bits}"] = _sourced(value, f"{key}.stored_bits_per_weight")
    return RuntimeProfile(id=key, name=str(entry["name"]), kind=kind, bandwidth_fraction=fractions, sources=sources,
                          compute_formats=tuple(formats), stored_bits_per_weight=stored, **values)  # fmt: skip


def check_weight_bits(runtime: RuntimeProfile, bits: int) -> None:
    """A one-line error when the runtime has no kernel for ``bits``-bit weights."""
    if bits not in runtime.bandwidth_fraction:
        have = ", ".join(str(b) for b in runtime.weight_bits)
        able = [r for r in runtime_ids() if bits in _document()["runtimes"][r]["bandwidth_fraction"]]
        raise InvalidValue(
            f"{opt('weights')} {bits}: {runtime.id} has no {bits}-bit weight kernels (it runs {have}-bit weights)",
            hint=f"use {opt('weights')} {have} or {opt('runtime')} {' / '.join(able)}" if able else None,
        )


def check_compute_format(runtime: RuntimeProfile, fmt: str) -> None:
    """A one-line error when the runtime has no matmul kernels in ``fmt`` (e.g. llama.cpp has no FP8 GEMM)."""
    if fmt not in runtime.compute_formats:
        able = [r for r in runtime_ids() if fmt in (_document()["runtimes"][r].get("compute_formats") or {})]
        raise InvalidValue(
            f"{opt('compute')} {fmt}: {runtime.id} has no {fmt} matmul kernels (it computes in "
            f"{', '.join(runtime.compute_formats)})",
            hint=f"use {opt('runtime')} {' / '.join(able)}, or {opt('compute')} {BASE_COMPUTE_FORMAT}"
            if able
            else f"use {opt('compute')} {BASE_COMPUTE_FORMAT}",
        )


def is_measured(profile) -> bool:
    """A profile saved by `flopcast bench` holds sustained (not datasheet) figures."""
    return str(getattr(profile, "family", "") or "").startswith(MEASURED_FAMILY_PREFIX)
