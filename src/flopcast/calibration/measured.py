"""Measured training steps from your own cluster (``flopcast calibrate RUNS``): a CSV or JSON file of rows.

Each row becomes a :class:`~flopcast.calibration.runs.Run` that the backtest machinery (backtest.stack_runs)
predicts on the user's path: the layout fields a row gives are fixed, the ones it leaves blank are searched.

Columns (every one but the target optional; an unknown column is refused, so a misspelt one never silently
drops out):

* ``id``: a name for the row (default ``row N``); ``source``, ``notes``: free text, kept.
* the model: ``model`` (a preset id or a size, ``7B``) and/or the architecture columns of
  :data:`flopcast.request.ARCHITECTURE_KEYS` (``layers``, ``d_model``, ``heads``, ...); ``seq_len``.
* ``hardware``: a profile id (default: the ``hardware`` option).
* ``devices``, and the layout: ``tp pp dp cp ep micro_batch global_batch zero recompute`` (blank = searched;
  ``devices`` may be left out when tp·pp·dp·cp gives it).
* exactly ONE target: ``step_seconds`` (seconds per optimizer step), ``tokens_per_second`` (tokens per
  second of the whole job) or ``tflops_per_device`` (TFLOP/s per device, 1e12 FLOP/s; model FLOPs, or the
  Megatron "hardware" FLOPs that count recomputation when ``flops_convention`` says ``hardware``).
* ``peak_memory_gb``: the measured peak memory per device in GB (1e9 bytes), compared as a residual only.

JSON: a list of objects with the same keys, or ``{"runs": [...]}``.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

from flopcast.calibration.runs import MAX_RUNS_FILE_BYTES, Run
from flopcast.errors import FlopcastError, InvalidValue, opt

MEASURED_TARGETS = ("step_seconds", "tokens_per_second", "tflops_per_device")
# +1 when the target grows with time (a step time), −1 when it is a rate (log residual sign)
MEASURED_TIME_SIGN = {"step_seconds": 1.0, "tokens_per_second": -1.0, "tflops_per_device": -1.0}
LAYOUT_COLUMNS = ("tp", "pp", "dp", "cp", "ep", "micro_batch", "global_batch", "zero", "recompute")
OTHER_COLUMNS = ("id", "source", "notes", "model", "seq_len", "hardware", "devices", "flops_convention",
                 "peak_memory_gb")  # fmt: skip
GB = 1e9  # bytes: peak_memory_gb is in decimal GB (SI, as every flopcast size without "gib")


@dataclass(frozen=True)
class MeasuredRun:
    """One measured row: the Run the backtest predicts, and the memory measured with it (bytes or None)."""

    run: Run
    peak_memory_bytes: float | None = None


def known_columns() -> tuple[str, ...]:
    from flopcast.request import ARCHITECTURE_KEYS

    return (*OTHER_COLUMNS, *ARCHITECTURE_KEYS, *LAYOUT_COLUMNS, *MEASURED_TARGETS)


def read_rows(path: Path) -> list[tuple[str, dict]]:
    """(where, row) of every row of a CSV or JSON file; ``where`` is ``FILE:LINE`` (CSV) or ``FILE[i]``."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:  # bounded: /dev/zero never ends
            raw = handle.read(MAX_RUNS_FILE_BYTES + 1)
        text = raw.decode("utf-8")
    except FileNotFoundError:
        raise InvalidValue(f"{path}: file does not exist", hint="give a CSV or JSON file of measured steps") from None
    except IsADirectoryError:
        raise InvalidValue(f"{path}: is a directory", hint="give a CSV or JSON file of measured steps") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidValue(f"{path}: cannot read it: {getattr(exc, 'strerror', None) or exc}") from None
    if len(raw) > MAX_RUNS_FILE_BYTES:
        raise InvalidValue(f"{path}: larger than {MAX_RUNS_FILE_BYTES} bytes", hint="give a file of measured steps")
    if path.suffix.lower() == ".json" or text.lstrip().startswith(("[", "{")):
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidValue(f"{path}: not JSON (line {exc.lineno})", hint="give a list of objects") from None
        items = doc.get("runs") if isinstance(doc, dict) else doc
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise InvalidValue(f'{path}: expected a list of objects (or {{"runs": [...]}})')
        rows = [
            (f"{path}[{i}]", {k: "" if v is None else str(v) for k, v in item.items()}) for i, item in enumerate(items)
        ]
    else:
        try:
            rows = [(f"{path}:{n}", row) for n, row in enumerate(csv.DictReader(io.StringIO(text, newline="")), 2)]
        except csv.Error as exc:
            raise InvalidValue(f"{path}: not a CSV file: {exc}") from None
    if not rows:
        raise InvalidValue(f"{path}: no measured steps in the file", hint="the first line must name the columns")
    unknown = sorted({k for _, row in rows for k in row if k is not None and k.strip() not in known_columns()})
    if None in {k for _, row in rows for k in row}:
        raise InvalidValue(f"{path}: a row has more values than the header has columns")
    if unknown:
        from flopcast.units import suggest

        near = suggest(unknown[0], known_columns(), n=1)
        raise InvalidValue(
            f"{path}: unknown column(s) {', '.join(unknown)}",
            hint=(f"did you mean {near[0]}? " if near else "") + f"targets: {', '.join(MEASURED_TARGETS)}",
        )
    return [(where, {k.strip(): (v or "").strip() for k, v in row.items()}) for where, row in rows]


def _int(row: dict, key: str, *, zero: bool = False) -> int | None:
    from flopcast.request import optional_int

    return optional_int(row.get(key) or None, key, allow_zero=zero)


def run_from_row(where: str, row: dict, *, hardware: str | None, defaults: dict | None = None) -> MeasuredRun:
    """The Run of one row (``defaults``: model, seq_len and layout options that a row's blank cells take)."""
    from flopcast.layout import LayoutQuery, check_layout
    from flopcast.request import ARCHITECTURE_KEYS, resolve_model

    given = {k: v for k, v in (defaults or {}).items() if v is not None}
    merged = {**given, **{k: v for k, v in row.items() if v != ""}}
    name = merged.get("id") or where
    try:
        targets = [t for t in MEASURED_TARGETS if merged.get(t)]
        if len(targets) != 1:
            found = ", ".join(targets) or "none"
            raise InvalidValue(f"needs exactly one target column ({', '.join(MEASURED_TARGETS)}), has {found}")
        target = targets[0]
        value = float(merged[target])
        if not value > 0 or value == float("inf"):
            raise InvalidValue(f"{target} must be a positive number, got {merged[target]!r}")
        arch = {k: merged[k] for k in ARCHITECTURE_KEYS if k in merged}
        if not merged.get("model") and not arch:
            raise InvalidValue(f"no model: give a model column (or {opt('model')}) or the architecture columns")
        spec = resolve_model(merged.get("model"), merged.get("seq_len"), arch)
        hw = merged.get("hardware") or hardware
        if not hw:
            raise InvalidValue(f"no hardware: give a hardware column or {opt('hardware')} ID")
        layout = {k: _int(merged, k, zero=k == "zero") for k in LAYOUT_COLUMNS if k != "recompute"}
        recompute = (merged.get("recompute") or "").lower() or None
        devices = _int(merged, "devices")
        degrees = [layout[k] for k in ("tp", "pp", "dp")]
        if devices is None and all(d is not None for d in degrees):
            devices = degrees[0] * degrees[1] * degrees[2] * (layout["cp"] or 1)
        if devices is None:
            raise InvalidValue(f"no device count: give devices (or {opt('devices')}), or tp, pp and dp")
        query = LayoutQuery(**{k: v for k, v in layout.items() if v is not None}, recompute=recompute)
        check_layout(spec, devices, query)
        convention = (merged.get("flops_convention") or "model").lower()
        if convention not in ("model", "hardware"):
            raise InvalidValue(f"flops_convention must be model or hardware, got {convention!r}")
        memory = float(merged["peak_memory_gb"]) * GB if merged.get("peak_memory_gb") else None
    except FlopcastError as exc:
        raise type(exc)(f"{name}: {exc.raw_message}", hint=exc.raw_hint) from None
    except ValueError as exc:
        raise InvalidValue(f"{name}: {exc}") from None
    run = Run(
        run_id=name, kind="measured", row=row, model=spec, hardware=hw, devices=devices, tokens=None,
        tp=layout["tp"], pp=layout["pp"], dp=layout["dp"], micro_batch=layout["micro_batch"],
        global_batch=layout["global_batch"], recompute=recompute, zero=layout["zero"], target=target,
        target_value=value, hardware_convention=convention == "hardware", trust="A",
        source=merged.get("source") or where, cp=layout["cp"] or 1, ep=layout["ep"],
    )  # fmt: skip
    return MeasuredRun(run, memory)


def load_measured(path: Path, *, hardware: str | None = None, defaults: dict | None = None) -> list[MeasuredRun]:
    """Every row of a measured-steps file as a MeasuredRun (one-line errors naming the row)."""
    return [run_from_row(where, row, hardware=hardware, defaults=defaults) for where, row in read_rows(path)]


def layout_key(run: Run) -> tuple:
    """What makes two measured rows different layouts: model, sequence, devices and every layout field."""
    return (run.model.params, run.model.seq_len, run.devices, run.tp, run.pp, run.dp, run.cp, run.ep,
            run.micro_batch, run.global_batch, run.zero, run.recompute)  # fmt: skip


TABLE_SUFFIXES = (".csv", ".json")  # anything else is read as a training log (calibration.logs)


def load_sources(
    paths: list[Path], *, hardware: str | None, defaults: dict, skip_steps: int, profiles=None
) -> list[MeasuredRun]:
    """Measured rows of every file: CSV/JSON rows as they are, each log as one row (its median step) under the
    model and layout in ``defaults``. One hardware per calibration: the rows of a file with a ``hardware``
    column may name others only when ``hardware`` picks one of them (the rest are left out)."""
    from flopcast.calibration.logs import log_row, read_log
    from flopcast.hardware import load_catalog
    from flopcast.request import ARCHITECTURE_KEYS, resolve_model

    catalog = load_catalog([Path(p) for p in profiles or []])

    def same(name: str) -> bool:  # an alias (h100) names the same profile as its id (h100-80gb)
        return catalog.get(name).id == catalog.get(hardware).id

    out: list[MeasuredRun] = []
    for path in (Path(p) for p in paths):
        if path.suffix.lower() in TABLE_SUFFIXES:
            rows = read_rows(path)
            if hardware:
                rows = [(w, r) for w, r in rows if not r.get("hardware") or same(r["hardware"])]
                if not rows:
                    raise InvalidValue(f"{path}: no row is on {opt('hardware')} {hardware}")
            out += [run_from_row(w, r, hardware=hardware, defaults=defaults) for w, r in rows]
            continue
        steps = read_log(path, skip_steps)
        seq = 0
        if steps.target == "samples_per_second":  # DeepSpeed counts sequences: tokens need the sequence length
            arch = {k: defaults[k] for k in ARCHITECTURE_KEYS if defaults.get(k) is not None}
            seq = resolve_model(defaults.get("model"), defaults.get("seq_len"), arch).seq_len
        devices = _int(defaults, "devices")
        if devices is None and all(defaults.get(k) is not None for k in ("tp", "pp", "dp")):
            devices = _int(defaults, "tp") * _int(defaults, "pp") * _int(defaults, "dp") * (_int(defaults, "cp") or 1)
        row = log_row(path, steps, devices=devices, seq_len=seq)
        out.append(run_from_row(str(path), row, hardware=hardware, defaults=defaults))
    names = sorted({catalog.get(m.run.hardware).id for m in out})
    if len(names) > 1:
        raise InvalidValue(
            f"the measured rows are on {len(names)} hardware profiles ({', '.join(names)}): a calibration fits one",
            hint=f"pick one with {opt('hardware')} ID (rows on others are left out), or split the file",
        )
    return out
