"""Every report kind, its pydantic model, and how a saved JSON report is read back.

A JSON report names its kind in the ``report`` field (``"estimate"``, ``"plan"``, ...); :func:`load_report`
uses it to pick the model and validates the document with it, so a saved file is a durable artefact:
``flopcast report FILE.json`` re-renders it, ``flopcast schema KIND`` prints the JSON Schema it follows.

``hardware list|show`` and ``models list|show`` print catalogue data (a profile, a model spec), not reports:
they carry no ``schema_version``; :data:`DOCUMENTS` gives their JSON Schemas for ``flopcast schema``.
Models are imported lazily (a CLI run loads only the one it needs).
"""

from __future__ import annotations

import json
from importlib import import_module
from pathlib import Path

from flopcast.errors import InvalidValue, opt

# kind -> (module, class, one-line description). Order: how `flopcast schema` lists them.
REPORTS: dict[str, tuple[str, str, str]] = {
    "estimate": ("flopcast.reports.estimate", "EstimateReport", "one training job: FLOPs, memory, time, cost, energy"),
    "sweep": ("flopcast.reports.sweep", "SweepReport", "estimate --sweep: time and cost against device count"),
    "compare": ("flopcast.reports.plan", "CompareReport", "one workload on several hardware profiles, ranked"),
    "plan": ("flopcast.reports.plan", "PlanReport", "best plan and Pareto front of time vs cost"),
    "size": ("flopcast.reports.plan", "SizeReport", "compute-optimal parameters and tokens for a budget"),
    "serve": ("flopcast.reports.serve", "ServeReport", "inference memory, latency, tokens/s, cost per 1M tokens"),
    "serve-plan": (
        "flopcast.reports.serve_plan",
        "ServePlanReport",
        "serve --plan: the cheapest serving configuration under latency targets, Pareto of cost vs TTFT",
    ),
    "validate": ("flopcast.reports.validate", "ValidateReport", "backtest against published training runs"),
    "bench": ("flopcast.reports.bench", "BenchReport", "local roofline, GEMM check and predicted vs measured"),
    "verify-train": (
        "flopcast.reports.bench_train",
        "TrainVerifyReport",
        "bench --verify-train: a PyTorch transformer's measured vs predicted memory and step time",
    ),
    "verify-serve": (
        "flopcast.reports.verify_serve",
        "VerifyServeReport",
        "bench --verify-serve: predicted vs measured decode tokens/s and time to first token",
    ),
    "collectives": (
        "flopcast.reports.bench_collectives",
        "CollectivesReport",
        "bench --collectives: torch.distributed collectives timed, latency and bus bandwidth fitted",
    ),
    "calibration": (
        "flopcast.reports.calibration",
        "CalibrationReport",
        "calibrate: a profile's GEMM ceiling fitted to measured steps, before and after",
    ),
}

# Catalogue documents (no `report` field, no versions): kind -> one-line description.
DOCUMENTS: dict[str, str] = {
    "hardware": "one entry of `hardware list --format json` / `hardware show ID --format json`",
    "model": "one entry of `models list --format json` / `models show ID --format json`",
}


def kinds() -> list[str]:
    """Every kind `flopcast schema` knows: the reports, then the catalogue documents."""
    return [*REPORTS, *DOCUMENTS]


def _unknown(kind: str, what: str) -> InvalidValue:
    from flopcast.units import suggest

    guesses = suggest(kind, kinds(), n=1)
    near = f"did you mean {guesses[0]}? " if guesses else ""
    return InvalidValue(f"{what}: unknown report kind {kind!r}", hint=f"{near}kinds: {', '.join(kinds())}")


def report_model(kind: str):
    """The pydantic class of report ``kind`` (InvalidValue for an unknown kind)."""
    if kind not in REPORTS:
        raise _unknown(kind, "report")
    module, name, _ = REPORTS[kind]
    return getattr(import_module(module), name)


def json_schema(kind: str) -> dict:
    """The JSON Schema (draft 2020-12, as pydantic writes it) of ``kind``: a report or a catalogue document."""
    if kind in DOCUMENTS:
        return _document_schema(kind)
    if kind not in REPORTS:
        raise _unknown(kind, "schema")
    schema = report_model(kind).model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


def _document_schema(kind: str) -> dict:
    """Catalogue documents: the source model's schema plus the fields the CLI adds (see hardware_cmd/models_cmd)."""
    if kind == "hardware":
        from flopcast.hardware import HardwareProfile

        schema = HardwareProfile.model_json_schema()
        extra = {
            "training_dtype": {"type": "string", "description": "dtype whose dense peak training uses"},
            "training_peak_flops_per_s": {"type": "number", "description": "that peak, FLOP/s"},
            "file": {"type": "string", "description": "the profile file that won"},
            "origin": {"type": "string", "description": "shipped, user config, --profiles ..."},
            "overrides": {"type": "array", "items": {"type": "string"}, "description": "files it shadowed"},
        }
    elif kind == "model":
        from flopcast.models import ModelSpec

        schema = ModelSpec.model_json_schema()
        counts = {"type": "object", "additionalProperties": {"type": "integer"}}
        extra = {
            "id": {"type": "string"},
            "params": {"type": "integer", "description": "total parameters"},
            "active_params": {"type": "integer", "description": "parameters used per token (MoE)"},
            "non_embedding_params": {"type": "integer"},
            "matmul_params": {"type": "integer", "description": "N of 6·N"},
            "breakdown": {**counts, "description": "parameters by part (sums to params)"},
            "active_breakdown": {**counts, "description": "MoE: parameters per token by part"},
            "deviation_from_published": {"type": "number", "description": "params / published − 1"},
            "title": {"type": "string"},
            "aliases": {"type": "array", "items": {"type": "string"}},
            "notes": {"type": "array", "items": {"type": "string"}},
        }
    else:  # pragma: no cover - guarded by json_schema
        raise _unknown(kind, "schema")
    required = ["training_dtype", "training_peak_flops_per_s", "file", "origin"] if kind == "hardware" else ["id"]
    schema["properties"] = {**schema.get("properties", {}), **extra}
    schema["required"] = [*schema.get("required", []), *required]
    schema["description"] = DOCUMENTS[kind]
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


# --- reading a saved report --------------------------------------------------------------------------------


def schema_major(version: str) -> str:
    return str(version).split(".", 1)[0]


MAX_REPORT_BYTES = 200_000_000  # a plan with its whole Pareto front is a few MB; a stream is read up to this
STDIN = "-"


class _NotFinite(ValueError):
    pass


def _refuse_constant(name: str):
    raise _NotFinite(name)  # NaN, Infinity, -Infinity: Python's json reads them, JSON has no such numbers


def _finite_float(text: str) -> float:
    value = float(text)
    if value != value or value in (float("inf"), float("-inf")):  # 1e999 overflows to inf
        raise _NotFinite(text)
    return value


def _read_report_text(path: Path) -> str:
    """The text of a report: a regular file, ``-`` (standard input) or a pipe (``<(cat f.json)``, /dev/stdin);
    a device such as /dev/zero is refused, and a stream is read only up to MAX_REPORT_BYTES."""
    import stat
    import sys

    if str(path) == STDIN:
        stream = getattr(sys.stdin, "buffer", None)
        raw = stream.read(MAX_REPORT_BYTES + 1) if stream is not None else sys.stdin.read().encode("utf-8")
    else:
        try:
            mode = path.stat().st_mode
        except FileNotFoundError:
            mode = None
        if mode is None or stat.S_ISDIR(mode):
            what = "is a directory" if mode is not None else "no such file"
            hint = f"give a JSON file written with {opt('format')} json {opt('output')}"
            raise InvalidValue(f"{path}: {what}", hint=hint)
        if not (stat.S_ISREG(mode) or stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)):
            hint = f"give a JSON file written with {opt('format')} json {opt('output')}, or - for stdin"
            raise InvalidValue(f"{path}: not a regular file", hint=hint)
        with path.open("rb") as handle:
            raw = handle.read(MAX_REPORT_BYTES + 1)
    if len(raw) > MAX_REPORT_BYTES:
        raise InvalidValue(f"{path}: larger than {MAX_REPORT_BYTES:,} bytes", hint="give a report file")
    return raw.decode("utf-8")


def load_report(path: Path):
    """Read and validate a JSON report written by flopcast; one-line InvalidValue for anything else."""
    from pydantic import ValidationError

    from flopcast.reports.base import SCHEMA_VERSION

    path = Path(path)
    try:
        data = json.loads(_read_report_text(path), parse_constant=_refuse_constant, parse_float=_finite_float)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        where = f" (line {exc.lineno})" if isinstance(exc, json.JSONDecodeError) else ""
        raise InvalidValue(
            f"{path}: not JSON{where}", hint=f"give a report written with {opt('format')} json (not table/markdown/csv)"
        ) from None
    except _NotFinite as exc:
        raise InvalidValue(
            f"{path}: holds the number {exc.args[0]}, which no report field may be",
            hint="a report's numbers are finite: rerun the command that wrote it",
        ) from None
    except OSError as exc:
        raise InvalidValue(f"{path}: cannot read it: {exc.strerror or exc}", hint="give a readable JSON file") from None
    except RecursionError:  # [[[[... thousands deep: no report nests like that
        hint = f"give a report written with {opt('format')} json"
        raise InvalidValue(f"{path}: JSON nested too deeply", hint=hint) from None
    if isinstance(data, list) or (isinstance(data, dict) and "report" not in data):
        raise InvalidValue(
            f"{path}: not a flopcast report (no 'report' field)",
            hint="hardware/models listings are catalogue data, not reports; rerun the command instead",
        )
    if not isinstance(data, dict):
        raise InvalidValue(f"{path}: not a flopcast report (expected a JSON object)")
    kind = data.get("report")
    if not isinstance(kind, str) or kind not in REPORTS:
        raise _unknown(str(kind), str(path))
    version = str(data.get("schema_version", ""))
    if schema_major(version) != schema_major(SCHEMA_VERSION):
        raise InvalidValue(
            f"{path}: {kind} report has schema version {version or 'none'}; this flopcast reads {SCHEMA_VERSION}",
            hint=f"use the flopcast version that wrote it ({data.get('flopcast_version', 'unknown')})",
        )
    try:
        return report_model(kind).model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "(top level)"
        more = f" (and {exc.error_count() - 1} more problem(s))" if exc.error_count() > 1 else ""
        raise InvalidValue(
            f"{path}: not a valid {kind} report: {where}: {first.get('msg', 'invalid')}{more}",
            hint=f"`flopcast schema {kind}` prints the expected format",
        ) from None
