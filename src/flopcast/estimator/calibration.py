"""Published training runs: reading them, and predicting each one's reported figure with the estimator.

The runs live in ``flopcast/data/published_runs.csv`` (a copy of shared/data/calibration_runs.csv with
every source column kept; the columns are described in that folder's README). Each run is predicted on
the same path a user gets: its architecture becomes a ModelSpec, the layout options it publishes are
fixed, the rest (blank tp/pp/micro-batch, ZeRO stage, recompute) is searched — fastest layout that fits —
and the global batch, when blank, follows the documented default rule. A run that does not publish its
device count (whole-run device-hours barely depend on it) is placed on one device per sequence of its
global batch, and at least one node.

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
import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from flopcast.errors import InvalidValue, RuntimeFailure

PUBLISHED_RUNS_FILE = "published_runs.csv"
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
# Residual sign: +1 when the target grows with time (device-hours, step time), −1 when it is a rate.
TIME_SIGN = {"device_hours": 1.0, "step_seconds": 1.0, "tflops_per_device": -1.0, "mfu": -1.0}


def published_runs_path() -> Path:
    return Path(__file__).resolve().parent.parent / "data" / PUBLISHED_RUNS_FILE


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

    @property
    def family(self) -> str:
        """The source family, for leave-one-group-out checks (the first author or organisation)."""
        text = self.source.lower()
        for key, name in (
            ("narayanan", "megatron"),
            ("shoeybi", "megatron"),
            ("mosaicml", "mpt"),
            ("touvron", "llama"),
            ("biderman", "pythia"),
        ):
            if key in text:
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


def load_runs(path: Path | None = None) -> list[Run]:
    """Read published runs from ``path`` (default: the shipped file); bad rows raise InvalidValue."""
    path = Path(path) if path is not None else published_runs_path()
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except FileNotFoundError:
        raise InvalidValue(f"{path}: file does not exist", hint="give a CSV of published runs") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise RuntimeFailure(f"cannot read {path}: {exc}") from None
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
    tokens = float(row["tokens"]) if (row.get("tokens") or "").strip() else None
    if target == "device_hours" and not tokens:
        raise ValueError("a device_hours target needs the run's tokens")
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
        hardware_convention="hardware" in (row.get("flops_convention") or "").lower(),
        trust=(row.get("trust") or "").strip(),
        source=(row.get("source") or "").strip(),
    )


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


def stack_runs(runs: list[Run], catalog) -> StackedRuns:
    """Enumerate each run's candidate layouts (its published options fixed) and stack them."""
    from flopcast.estimator.arrays import LayoutArrays
    from flopcast.layout import LayoutQuery, default_global_batch, enumerate_layouts

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
            loose = query._replace(global_batch=None)
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


def predict_stacked(stacked: StackedRuns, params) -> list[Prediction]:
    """Predict every run with ``params`` (one vectorised evaluate, then the best layout per run)."""
    from flopcast.estimator.arrays import HardwareArrays, ModelArrays, Workload
    from flopcast.estimator.core import evaluate
    from flopcast.layout import Layout, pick_best_grouped

    model = ModelArrays.from_specs([r.model for r in stacked.runs], stacked.model_index)
    hw = HardwareArrays.from_profiles(
        stacked.profiles, stacked.hardware_index, precision=stacked.precision, tier=None, params=params
    )
    est = evaluate(model, hw, stacked.layouts, Workload(tokens=stacked.tokens, precision=stacked.precision), params)
    chosen = pick_best_grouped(est, stacked.groups, len(stacked.runs))
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


def backtest(path: Path | None = None, profiles: list | None = None, params=None):
    """Predict every run in ``path`` (default: the shipped published runs) and check the quality bars.

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
    source = Path(path) if path is not None else published_runs_path()
    runs = load_runs(source)
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
        source=str(source),
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
