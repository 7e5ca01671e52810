"""Published training runs: reading them, and predicting each one's reported figure with the estimator.

The runs live in ``flopcast/data/published_runs.csv`` (the calibration set: a copy of
shared/data/calibration_runs.csv with every source column kept; the columns are described in that folder's
README) and ``flopcast/data/holdout_runs.csv`` (44 more runs with the same columns, compiled as a holdout;
both are fitted on). Optional columns: ``zero`` (the ZeRO stage) and ``fused_attention`` (true/false),
when published. Each run is predicted on
the same path a user gets: its architecture becomes a ModelSpec, the layout options it publishes are
fixed, the rest (blank tp/pp/micro-batch, ZeRO stage, recompute) is searched — fastest layout that fits —
and the global batch, when blank, follows the documented default rule. A run that does not publish its
device count (whole-run device-hours barely depend on it) is placed on one device per sequence of its
global batch, and at least one node.

A throughput in the "hardware FLOPs" convention (the Megatron papers' formula, which counts a recomputed
forward pass) with no published recompute mode is taken to be a full-recompute run: the formula is defined
for one.

Targets, compared like with like:
  device_hours        whole-run device-hours (includes interruptions and the fitted idle overhead)
  tflops_per_device   hardware FLOP/s per device when ``flops_convention`` counts recomputation
                      (Megatron papers), model FLOP/s otherwise
  mfu                 model FLOPs utilisation (PaLM / MosaicML convention)
  step_seconds        seconds per optimizer step

All candidate layouts of all runs are stacked into one vectorised ``evaluate`` call, so a whole
backtest (or one step of the fit) costs a fraction of a second.
"""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from flopcast.errors import InvalidValue

PUBLISHED_RUNS_FILE = "published_runs.csv"
HOLDOUT_RUNS_FILE = "holdout_runs.csv"  # 44 more runs, compiled as a holdout; fitted on since (fit.py)
SHIPPED_RUNS_FILES = (PUBLISHED_RUNS_FILE, HOLDOUT_RUNS_FILE)
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


def published_runs_path() -> Path:
    """The calibration set (what ``flopcast validate`` checks by default)."""
    return Path(__file__).resolve().parent.parent / "data" / PUBLISHED_RUNS_FILE


def shipped_runs_paths() -> list[Path]:
    """Every shipped file of published runs: the calibration set and the second set (both are fitted on)."""
    data = Path(__file__).resolve().parent.parent / "data"
    return [data / name for name in SHIPPED_RUNS_FILES]


@dataclass(frozen=True)
class Run:
    """One published run (the CSV row, parsed)."""

    run_id: str
    kind: str
    row: dict
    model: object  # ModelSpec
    hardware: str
    devices: int | None  # None: not published (stack_runs picks one; see the module docstring)
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


@dataclass
class StackedRuns:
    """Every candidate layout of every run, ready for one ``evaluate`` call."""

    runs: list[Run]
    profiles: list
    model_index: np.ndarray
    hardware_index: np.ndarray
    groups: np.ndarray
    layouts: object  # LayoutArrays
    tokens: np.ndarray
    precision: str = "bf16"
    _model_arrays: object = None  # ModelArrays of every row, built on first use (the fit re-evaluates often)

    def model_arrays(self):
        from flopcast.estimator.arrays import ModelArrays

        if self._model_arrays is None:
            self._model_arrays = ModelArrays.from_specs([r.model for r in self.runs], self.model_index)
        return self._model_arrays


def stack_runs(runs: list[Run], catalog) -> StackedRuns:
    """Enumerate each run's candidate layouts (its published options fixed) and stack them."""
    from flopcast.estimator.arrays import LayoutArrays
    from flopcast.layout import LayoutQuery, default_global_batch
    from flopcast.search import enumerate_layouts

    profiles, pindex = [], {}
    parts, m_idx, h_idx, groups, tokens = [], [], [], [], []
    runs = list(runs)
    runs = list(runs)
    for g, run in enumerate(runs):
        profile = catalog.get(run.hardware)
        if run.devices is None:
            seqs = run.global_batch or default_global_batch(run.model.params, run.model.seq_len)
            runs[g] = run = replace(run, devices=max(profile.devices_per_node, seqs))
        if profile.id not in pindex:
            pindex[profile.id] = len(profiles)
            profiles.append(profile)
        query = LayoutQuery(
            tp=run.tp,
            pp=run.pp,
            dp=run.dp,
            micro_batch=run.micro_batch,
            global_batch=run.global_batch,
            zero=run.zero,
            recompute=run.recompute,
        )
        cands = enumerate_layouts(run.model, run.devices, devices_per_node=profile.devices_per_node, query=query)
        if len(cands.tp) == 0 and run.global_batch:
            # Published figures are rounded ("10,000 V100s"): when no layout divides the published global
            # batch exactly, use the nearest multiple of dp × micro-batch instead.
            loose = query.replace(global_batch=None)
            cands = enumerate_layouts(
                run.model,
                run.devices,
                devices_per_node=profile.devices_per_node,
                query=loose,
                target_global_batch=run.global_batch,
            )
        n = len(cands.tp)
        if n == 0:
            raise InvalidValue(
                f"run {run.run_id}: no valid layout matches its published options",
                hint="check tp/pp/dp against devices, heads and layers",
            )
        parts.append(cands)
        m_idx.append(np.full(n, g))
        h_idx.append(np.full(n, pindex[profile.id]))
        groups.append(np.full(n, g))
        run_tokens = run.tokens if run.tokens else 0.0
        tokens.append(np.where(run_tokens > 0, run_tokens, cands.global_batch * run.model.seq_len))
    layouts = LayoutArrays.concatenate(parts)
    return StackedRuns(
        runs=runs,
        profiles=profiles,
        model_index=np.concatenate(m_idx),
        hardware_index=np.concatenate(h_idx),
        groups=np.concatenate(groups),
        layouts=layouts,
        tokens=np.concatenate(tokens),
    )


@dataclass(frozen=True)
class Prediction:
    run: Run
    predicted: float  # in the target's own unit
    p10: float
    p90: float
    log_time_ratio: float  # log(true time / predicted time): the residual the fit and the bands use
    layout: object  # Layout
    calibrated: bool

    @property
    def error(self) -> float:
        """Signed relative error of the prediction on the reported figure."""
        return self.predicted / self.run.target_value - 1.0

    @property
    def covered(self) -> bool:
        return self.p10 <= self.run.target_value <= self.p90


def _evaluate_stacked(stacked: StackedRuns, params):
    """(estimates of every row, hardware arrays, the chosen row of each run)."""
    from flopcast.estimator.arrays import HardwareArrays, Workload
    from flopcast.estimator.core import evaluate
    from flopcast.search import winners_of

    hw = HardwareArrays.from_profiles(
        stacked.profiles, stacked.hardware_index, precision=stacked.precision, tier=None, params=params
    )
    workload = Workload(tokens=stacked.tokens, precision=stacked.precision)
    fused = np.asarray([np.nan if r.fused_attention is None else float(r.fused_attention) for r in stacked.runs])
    fused = fused[stacked.groups]
    hw = hw._replace(fused_attention=np.where(np.isnan(fused), hw.fused_attention, fused))
    est = evaluate(stacked.model_arrays(), hw, stacked.layouts, workload, params)
    return est, hw, winners_of(est, stacked.layouts, stacked.groups, len(stacked.runs))


def log_time_ratios(stacked: StackedRuns, params) -> np.ndarray:
    """``log(true time / predicted time)`` of every run: what the fit minimises (no report objects)."""
    est, _, chosen = _evaluate_stacked(stacked, params)
    values = np.asarray([_target_value(run, est, i) for run, i in zip(stacked.runs, chosen, strict=True)])
    targets = np.asarray([run.target_value for run in stacked.runs])
    signs = np.asarray([TIME_SIGN[run.target] for run in stacked.runs])
    return signs * np.log(targets / values)


def predict_stacked(stacked: StackedRuns, params) -> list[Prediction]:
    """Predict every run with ``params`` (one vectorised evaluate, then the best layout per run)."""
    from flopcast.layout import Layout

    est, hw, chosen = _evaluate_stacked(stacked, params)
    out = []
    for run, i in zip(stacked.runs, chosen, strict=True):
        value = _target_value(run, est, i)
        sign = TIME_SIGN[run.target]
        calibrated = bool(hw.calibrated[i])
        lo = params.log_ratio_p10 if calibrated else params.log_ratio_p10_uncalibrated
        hi = params.log_ratio_p90 if calibrated else params.log_ratio_p90_uncalibrated
        bounds = sorted((value * math.exp(sign * lo), value * math.exp(sign * hi)))
        out.append(
            Prediction(
                run=run,
                predicted=value,
                p10=bounds[0],
                p90=bounds[1],
                log_time_ratio=sign * math.log(run.target_value / value),
                layout=Layout.from_arrays(stacked.layouts, int(i)),
                calibrated=calibrated,
            )
        )
    return out


def _target_value(run: Run, est, i: int) -> float:
    if run.target == "device_hours":
        return float(est.device_hours[i])
    if run.target == "step_seconds":
        return float(est.step_seconds[i])
    if run.target == "mfu":
        return float(est.mfu[i])
    flops = est.hardware_flops_per_token[i] if run.hardware_convention else est.model_flops_per_token[i]
    return float(flops * est.tokens_per_second[i] / run.devices / 1e12)


def backtest(path: Path | None = None, profiles: list | None = None, params=None, *, paths: list | None = None):
    """Predict every run in ``path`` (default: the calibration set, published_runs.csv) or in every file of
    ``paths`` (e.g. :func:`shipped_runs_paths`) and check the quality bars.

    Returns a :class:`~flopcast.reports.validate.ValidateReport`; ``summary.passed`` says whether the bars
    of DESIGN §8 hold.
    """
    from flopcast.estimator.efficiency import EfficiencyParams
    from flopcast.hardware import load_catalog
    from flopcast.reports.validate import (
        COVERAGE_BAR,
        MEDIAN_ABS_ERROR_BAR,
        TRUST_A_ABS_ERROR_BAR,
        ValidateReport,
        ValidateRow,
        ValidateSummary,
    )

    params = params or EfficiencyParams.load()
    sources = [Path(p) for p in paths] if paths else [Path(path) if path is not None else published_runs_path()]
    runs = [run for source in sources for run in load_runs(source)]
    seen: set[str] = set()
    for run in runs:
        if run.run_id in seen:
            raise InvalidValue(f"run {run.run_id} appears twice", hint="give each run (file) once")
        seen.add(run.run_id)
    preds = predict_stacked(stack_runs(runs, load_catalog(profiles)), params)
    rows = [
        ValidateRow(
            run_id=p.run.run_id,
            kind=p.run.kind,
            hardware=p.run.hardware,
            devices=p.run.devices,
            target=p.run.target,
            reported=p.run.target_value,
            predicted=p.predicted,
            p10=p.p10,
            p90=p.p90,
            error=p.error,
            covered=p.covered,
            trust=p.run.trust,
            layout=(
                f"{p.layout.tp}·{p.layout.pp}·{p.layout.dp} mb{p.layout.micro_batch} gb{p.layout.global_batch} "
                f"z{p.layout.zero} {p.layout.recompute}"
                + (f" v{p.layout.interleave}" if p.layout.interleave > 1 else "")
            ),
            hardware_calibrated=p.calibrated,
            source=p.run.source,
        )
        for p in preds
    ]
    errors = np.abs([r.error for r in rows])
    median, p90 = float(np.median(errors)), float(np.quantile(errors, 0.9))
    coverage = float(np.mean([r.covered for r in rows]))
    trust_a = [r for r in rows if r.trust == "A"]
    worst = max(trust_a, key=lambda r: abs(r.error)) if trust_a else None
    failures = []
    if median > MEDIAN_ABS_ERROR_BAR:
        failures.append(f"median |error| {median:.1%} > {MEDIAN_ABS_ERROR_BAR:.0%}")
    if worst is not None and abs(worst.error) > TRUST_A_ABS_ERROR_BAR:
        beyond = [r.run_id for r in trust_a if abs(r.error) > TRUST_A_ABS_ERROR_BAR]
        failures.append(f"trust-A run(s) beyond ±{TRUST_A_ABS_ERROR_BAR:.0%}: {', '.join(beyond)}")
    if coverage < COVERAGE_BAR:
        failures.append(f"P10–P90 covers {coverage:.0%} of runs < {COVERAGE_BAR:.0%}")
    summary = ValidateSummary(
        runs=len(rows),
        median_abs_error=median,
        p90_abs_error=p90,
        coverage=coverage,
        worst_trust_a_run=worst.run_id if worst else None,
        worst_trust_a_error=worst.error if worst else None,
        passed=not failures,
        failures=failures,
    )
    return ValidateReport(
        source=", ".join(str(source) for source in sources),
        fitted_on=params.fitted_on,
        fitted_date=params.fitted_date,
        rows=rows,
        summary=summary,
        leave_one_group_out=params.extra.get("leave_one_group_out", {}),
        warnings=[
            f"{r.run_id}: {r.hardware} has no calibrated hardware family; wider P10–P90"
            for r in rows
            if not r.hardware_calibrated
        ],
    )
