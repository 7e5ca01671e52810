"""Published training runs: the shipped runs files, one parsed :class:`Run` per row, and source families.

The runs live in ``flopcast/data/published_runs.csv`` (the calibration set: a copy of
shared/data/calibration_runs.csv with every source column kept; the columns are described in that folder's
README) and ``flopcast/data/holdout_runs.csv`` (40 more runs with the same columns), split by source family
into a fitted part and a frozen holdout (``holdout_families.json``). Optional columns: ``zero`` (the ZeRO
stage) and ``fused_attention`` (true/false), when published. Each row becomes a Run: its architecture a
ModelSpec (tied or untied embeddings, whichever
matches the published parameter count), its published layout options kept (blank ones are searched by
backtest.py), its target and source.

A throughput in the "hardware FLOPs" convention (the Megatron papers' formula, which counts a recomputed
forward pass) with no published recompute mode is taken to be a full-recompute run: the formula is defined
for one.

Targets, compared like with like:
  device_hours        whole-run device-hours (includes interruptions and the named overheads of reliability.py)
  tflops_per_device   hardware FLOP/s per device when ``flops_convention`` counts recomputation
                      (Megatron papers), model FLOP/s otherwise
  mfu                 model FLOPs utilisation (PaLM / MosaicML convention)
  step_seconds        seconds per optimizer step
"""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass
from pathlib import Path

from flopcast.errors import InvalidValue

PUBLISHED_RUNS_FILE = "published_runs.csv"
HOLDOUT_RUNS_FILE = "holdout_runs.csv"  # 40 more runs (the name is historical: the split is by family below)
SHIPPED_RUNS_FILES = (PUBLISHED_RUNS_FILE, HOLDOUT_RUNS_FILE)
# The frozen holdout: whole source families, chosen before fitting and never fitted (the file says why).
HOLDOUT_FAMILIES_FILE = "holdout_families.json"
SPLIT_FIT, SPLIT_HOLDOUT = "fit", "holdout"
TARGETS = ("device_hours", "tflops_per_device", "mfu", "step_seconds")
REQUIRED_COLUMNS = (
    "run_id",
    "kind",
    "layers",
    "d_model",
    "heads",
    "vocab",
    "seq_len",
    "hardware",
    "devices",
    "target",
    "target_value",
)
# Source families for leave-one-group-out (first match wins, on the lower-cased source text). Runs that share
# a codebase and cluster share their errors, so a family is held out as a whole: Megatron-LM 2019 (V100),
# Megatron-LM 2021 (both its tables), Korthikanti et al. 2022, each Llama generation, MosaicML, Pythia, the
# big-lab runs of BLOOM, PaLM and Gopher, the DeepSpeed/FSDP-era industry runs (OPT, MT-NLG, BloombergGPT),
# the 2023–25 open runs (StarCoder, Falcon, GPT-NeoX, TinyLlama, SmolLM3) and other V100 runs.
SOURCE_FAMILIES = (
    (("shoeybi",), "megatron19"),
    (("narayanan",), "megatron21"),
    (("korthikanti",), "korthikanti"),
    (("llama 2", "llama2"), "llama2"),
    (("llama 3", "dubey"), "llama3"),
    (("touvron",), "llama"),
    (("mosaicml",), "mpt"),
    (("biderman",), "pythia"),
    (("bigscience", "chowdhery", "rae et al"), "bloom-palm-gopher"),
    (("opt:", "megatron-turing", "bloomberggpt"), "opt-mtnlg-bloomberg"),
    (("starcoder", "falcon", "gpt-neox", "tinyllama", "smollm"), "open-2023"),
    (("roberta", "patterson"), "v100-other"),
    (("nemotron",), "nemotron"),
)
# Fused attention (FlashAttention, Dao et al., arXiv 2205.14135, May 2022) reached the training frameworks
# in 2023: PyTorch 2.0's scaled_dot_product_attention (March 2023), Megatron-LM's --use-flash-attn (2023).
# A run published before 2023 materialised the s × s attention scores whatever its GPU could do (Megatron's
# fused softmax still writes them to memory; Korthikanti et al. 2022 recompute them for that reason). Runs
# whose source names no year, or an optional ``fused_attention`` column (true/false), keep the hardware's default.
FUSED_ATTENTION_FIRST_YEAR = 2023
_YEAR = re.compile(r"\b(201\d|202\d|203[0-5])\b")
# Residual sign: +1 when the target grows with time (device-hours, step time), −1 when it is a rate.
TIME_SIGN = {"device_hours": 1.0, "step_seconds": 1.0, "tflops_per_device": -1.0, "mfu": -1.0}


def _data_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "data"  # flopcast/data


def published_runs_path() -> Path:
    """The calibration set (what ``flopcast validate`` checks by default)."""
    return _data_dir() / PUBLISHED_RUNS_FILE


def shipped_runs_paths() -> list[Path]:
    """Every shipped file of published runs (both files; :func:`split_runs` separates fit and holdout)."""
    return [_data_dir() / name for name in SHIPPED_RUNS_FILES]


def holdout_families() -> tuple[str, ...]:
    """The source families of the frozen holdout (``flopcast/data/holdout_families.json``)."""
    import json

    doc = json.loads((_data_dir() / HOLDOUT_FAMILIES_FILE).read_text(encoding="utf-8"))
    return tuple(doc["holdout_families"])


def split_runs(runs: list) -> tuple[list, list]:
    """(fit runs, held-out runs): a run is held out when its source family is in :func:`holdout_families`."""
    held = set(holdout_families())
    return [r for r in runs if r.family not in held], [r for r in runs if r.family in held]


@dataclass(frozen=True)
class Run:
    """One published run (the CSV row, parsed)."""

    run_id: str
    kind: str
    row: dict
    model: object  # ModelSpec
    hardware: str
    devices: int | None  # None: not published (backtest.stack_runs picks one)
    tokens: float | None
    tp: int | None
    pp: int | None
    dp: int | None
    micro_batch: int | None
    global_batch: int | None
    recompute: str | None
    zero: int | None
    target: str
    target_value: float
    hardware_convention: bool
    trust: str
    source: str
    year: int | None = None  # of the source (first year cited in it), when it names one
    fused_attention: bool | None = None  # None: what the hardware supports (efficiency.fused_attention_supported)
    cp: int | None = None  # optional column: the context-parallel degree, when published (None: 1)
    ep: int | None = None  # optional column: the expert-parallel degree, when published (None: searched)

    @property
    def family(self) -> str:
        """The source family, for leave-one-group-out checks: runs from one paper, codebase or organisation
        (SOURCE_FAMILIES, first match on the source text; "other" when none matches)."""
        text = self.source.lower()
        for keys, name in SOURCE_FAMILIES:
            if any(k in text for k in keys):
                return name
        return "other"


def _opt_int(row: dict, key: str) -> int | None:
    text = (row.get(key) or "").strip()
    if not text:
        return None
    value = float(text)
    if value != int(value) or value <= 0:
        raise ValueError(f"{key} must be a positive whole number, got {text!r}")
    return int(value)


def _model_for(row: dict):
    """ModelSpec of a row; tied or untied embeddings, whichever count is closer to the published one."""
    from flopcast.models import ModelSpec

    kwargs = dict(
        name=row["run_id"],
        layers=int(float(row["layers"])),
        d_model=int(float(row["d_model"])),
        heads=int(float(row["heads"])),
        kv_heads=_opt_int(row, "kv_heads"),
        head_dim=_opt_int(row, "head_dim"),
        ffn=_opt_int(row, "ffn"),
        gated_ffn=(row.get("gated_ffn") or "").strip().lower() == "true",
        vocab=int(float(row["vocab"])),
        seq_len=int(float(row["seq_len"])),
    )
    published = float(row["params"]) if (row.get("params") or "").strip() else None
    untied = ModelSpec(**kwargs, tied_embeddings=False)
    if published is None:
        return untied
    tied = ModelSpec(**kwargs, tied_embeddings=True, published_params=published)
    if abs(tied.params - published) < abs(untied.params - published):
        return tied
    return ModelSpec(**kwargs, tied_embeddings=False, published_params=published)


MAX_RUNS_FILE_BYTES = 10_000_000  # the shipped runs file is ~10 kB; a file this big is not one


def load_runs(path: Path | None = None) -> list[Run]:
    """Read published runs from ``path`` (default: the shipped file); bad rows raise InvalidValue."""
    path = Path(path) if path is not None else published_runs_path()
    try:
        with open(path, "rb") as handle:  # bounded: /dev/zero reports a size of 0 and never ends
            raw = handle.read(MAX_RUNS_FILE_BYTES + 1)
        if len(raw) > MAX_RUNS_FILE_BYTES:
            raise InvalidValue(f"{path}: larger than {MAX_RUNS_FILE_BYTES} bytes", hint="give a CSV of published runs")
        rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8"), newline="")))
    except FileNotFoundError:
        raise InvalidValue(f"{path}: file does not exist", hint="give a CSV of published runs") from None
    except IsADirectoryError:
        raise InvalidValue(f"{path}: is a directory", hint="give a CSV file of published runs") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InvalidValue(
            f"{path}: cannot read it: {getattr(exc, 'strerror', None) or exc}",
            hint="give a readable UTF-8 CSV of published runs",
        ) from None
    if not rows:
        raise InvalidValue(f"{path}: no runs in the file", hint="the first line must name the columns")
    missing = [c for c in REQUIRED_COLUMNS if c not in rows[0]]
    if missing:
        raise InvalidValue(
            f"{path}: missing column(s) {', '.join(missing)}", hint="see the columns of flopcast's published_runs.csv"
        )
    runs = []
    for line, row in enumerate(rows, start=2):
        try:
            runs.append(_run_from_row(row))
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidValue(
                f"{path}:{line}: {row.get('run_id') or '?'}: {exc}", hint="fix the row or remove it"
            ) from None
    return runs


def _run_from_row(row: dict) -> Run:
    target = row["target"].strip()
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r} (known: {', '.join(TARGETS)})")
    value = float(row["target_value"])
    if not math.isfinite(value) or value <= 0:
        raise ValueError("target_value must be a positive number")
    recompute = (row.get("recompute") or "").strip().lower() or None
    if recompute not in (None, "none", "selective", "full"):
        raise ValueError(f"recompute must be none, selective or full, got {recompute!r}")
    hardware_convention = "hardware" in (row.get("flops_convention") or "").lower()
    if recompute is None and hardware_convention and target == "tflops_per_device":
        # The "hardware FLOPs" convention (Narayanan et al. 2021, eq. 3: 96·B·s·l·h² = 4 passes × 24) counts a
        # recomputed forward pass: it is defined for, and reported by runs that use, full recomputation.
        recompute = "full"
    tokens = float(row["tokens"]) if (row.get("tokens") or "").strip() else None
    if target == "device_hours" and not tokens:
        raise ValueError("a device_hours target needs the run's tokens")
    source = (row.get("source") or "").strip()
    year = source_year(source)
    fused = _fused_attention(row, year)
    zero_text = (row.get("zero") or "").strip()  # optional column: the ZeRO stage, when published
    zero = int(zero_text) if zero_text else None
    if zero not in (None, 0, 1, 2, 3):
        raise ValueError(f"zero must be 0, 1, 2 or 3, got {zero_text!r}")
    return Run(
        run_id=row["run_id"].strip(),
        kind=row["kind"].strip(),
        row=row,
        model=_model_for(row),
        hardware=row["hardware"].strip(),
        devices=_opt_int(row, "devices"),
        tokens=tokens,
        tp=_opt_int(row, "tp"),
        pp=_opt_int(row, "pp"),
        dp=_opt_int(row, "dp"),
        micro_batch=_opt_int(row, "micro_batch"),
        global_batch=_opt_int(row, "global_batch_seqs"),
        recompute=recompute,
        zero=zero,
        target=target,
        target_value=value,
        hardware_convention=hardware_convention,
        trust=(row.get("trust") or "").strip(),
        source=source,
        year=year,
        fused_attention=fused,
        cp=_opt_int(row, "cp") or 1,
        ep=_opt_int(row, "ep"),
    )


def source_year(source: str) -> int | None:
    """The first year 2010–2035 the source text cites ("Narayanan et al. 2021" → 2021), or None."""
    match = _YEAR.search(source)
    return int(match.group(1)) if match else None


def _fused_attention(row: dict, year: int | None) -> bool | None:
    text = (row.get("fused_attention") or "").strip().lower()  # optional column
    if text:
        if text not in ("true", "false"):
            raise ValueError(f"fused_attention must be true or false, got {text!r}")
        return text == "true"
    if year is not None and year < FUSED_ATTENTION_FIRST_YEAR:
        return False
    return None
