"""Predicting published runs with the estimator: stack every run's candidate layouts, evaluate, backtest.

Each run is predicted on the same path a user gets: the layout options it publishes are fixed, the rest
(blank tp/pp/micro-batch, ZeRO stage, recompute) is searched — fastest layout that fits — and the global
batch, when blank, follows the documented default rule. A run that does not publish its device count
(whole-run device-hours barely depend on it) is placed on one device per sequence of its global batch, and
at least one node.

All candidate layouts of all runs are stacked into one vectorised ``evaluate`` call, so a whole
backtest (or one step of the fit) costs a fraction of a second.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from flopcast.calibration.runs import TIME_SIGN, Run, load_runs
from flopcast.errors import InvalidValue


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
            cp=run.cp,
            ep=run.ep,
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


def evaluate_stacked(stacked: StackedRuns, params):
    """(the estimates of every stacked row, the index of the row chosen for each run): one vectorised
    ``evaluate`` and the winner rule, for callers that compare other figures than the runs' targets
    (``flopcast calibrate``: tokens/s, memory)."""
    est, _, chosen = _evaluate_stacked(stacked, params)
    return est, chosen


def log_time_ratios(stacked: StackedRuns, params) -> np.ndarray:
    """``log(true time / predicted time)`` of every run: what the fit minimises (no report objects)."""
    est, _, chosen = _evaluate_stacked(stacked, params)
    values = np.asarray([_target_value(run, est, i) for run, i in zip(stacked.runs, chosen, strict=True)])
    targets = np.asarray([run.target_value for run in stacked.runs])
    signs = np.asarray([TIME_SIGN[run.target] for run in stacked.runs])
    return signs * np.log(targets / values)


def predict_stacked(stacked: StackedRuns, params) -> list[Prediction]:
    """Predict every run with ``params`` (one vectorised evaluate, then the best layout per run)."""
    from flopcast.estimator import uncertainty
    from flopcast.layout import Layout

    est, hw, chosen = _evaluate_stacked(stacked, params)
    out = []
    for run, i in zip(stacked.runs, chosen, strict=True):
        value = _target_value(run, est, i)
        sign = TIME_SIGN[run.target]
        calibrated = bool(hw.calibrated[i])
        # the same band as the estimator's (uncertainty.py), widened beyond the fitted runs
        factors = uncertainty.range_factors(hw.calibrated[i], params, est.extrapolation_doublings[i])
        lo, hi = math.log(float(factors["p10"])), math.log(float(factors["p90"]))
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
    """Predict published runs and check the quality bars (DESIGN §8).

    Default: the frozen holdout (the shipped runs of the held-out source families, never fitted); with
    ``paths`` (e.g. :func:`shipped_runs_paths`) every run of those files, gated on their held-out part; with
    ``path``, the runs of that CSV (none of them fitted, as far as flopcast knows), gated on all of them.

    The gate is the DESIGN bar (median |error| ≤ 10%, P10–P90 coverage ≥ 80%) where the model meets it; on
    the frozen holdout, while the honest model misses it, the gate is a regression bar (the figures stored
    at the fit, plus margins) and the missed design bar is reported in ``summary.design_failures``.
    Returns a :class:`~flopcast.reports.validate.ValidateReport`.
    """
    from flopcast.calibration.runs import SPLIT_FIT, SPLIT_HOLDOUT, holdout_families, shipped_runs_paths
    from flopcast.estimator.efficiency import EfficiencyParams
    from flopcast.hardware import load_catalog
    from flopcast.reports.validate import ValidateReport, ValidateRow

    params = params or EfficiencyParams.load()
    frozen = set(holdout_families())
    if path is not None:
        sources, split_of = [Path(path)], lambda run: "given"
    else:
        sources = [Path(p) for p in paths] if paths else shipped_runs_paths()
        split_of = lambda run: SPLIT_HOLDOUT if run.family in frozen else SPLIT_FIT  # noqa: E731
    runs = [run for source in sources for run in load_runs(source)]
    if path is None and not paths:
        runs = [run for run in runs if run.family in frozen]
    seen: set[str] = set()
    for run in runs:
        if run.run_id in seen:
            raise InvalidValue(f"run {run.run_id} appears twice", hint="give each run (file) once")
        seen.add(run.run_id)
    catalog = load_catalog(profiles)
    stacked = stack_runs(runs, catalog)
    preds = predict_stacked(stacked, params)
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
            split=split_of(p.run),
        )
        for p in preds
    ]
    on_holdout = path is None
    gated = [r for r in rows if r.split == SPLIT_HOLDOUT] if on_holdout else rows
    if not gated:
        raise InvalidValue("no held-out runs to validate on", hint="give a CSV of published runs")
    return ValidateReport(
        source=", ".join(str(source) for source in sources),
        fitted_on=params.fitted_on,
        fitted_date=params.fitted_date,
        rows=rows,
        summary=_summary(gated, params, on_holdout),
        leave_one_group_out=params.extra.get("leave_one_group_out", {}),
        figures=_figures(gated, params, on_holdout),
        claim="held_out" if on_holdout else "given",
        regression_bar=params.extra.get("regression_bar") if on_holdout else None,
        rule_of_thumb=_rule_of_thumb(gated, runs, catalog, stacked.precision),
        warnings=[
            f"{r.run_id}: {r.hardware} has no calibrated hardware family; wider P10–P90"
            for r in rows
            if not r.hardware_calibrated
        ],
    )


def _rule_of_thumb(gated, runs, catalog, precision: str) -> dict:
    """flopcast against the ``6·N·D / (0.4·peak)`` rule on the gated rows (rule_of_thumb.py)."""
    from flopcast.calibration.rule_of_thumb import rule_of_thumb_comparison
    from flopcast.estimator.arrays import training_peak

    peaks = {r.hardware: training_peak(catalog.get(r.hardware), precision) for r in gated}
    return rule_of_thumb_comparison(gated, {run.run_id: run for run in runs}, peaks)


def _figures_of(rows) -> dict:
    errors = np.abs([r.error for r in rows])
    return {
        "runs": len(rows),
        "median_abs_error": float(np.median(errors)),
        "p90_abs_error": float(np.quantile(errors, 0.9)),
        "coverage": float(np.mean([r.covered for r in rows])),
    }


def _figures(gated, params, on_holdout: bool) -> dict:
    """In-sample and leave-one-family-out (stored at the fit) beside the gated runs' figures (now)."""
    keys = ("runs", "median_abs_error", "p90_abs_error", "coverage")
    out = {}
    for name, stored in (
        ("in_sample", params.extra.get("in_sample")),
        ("leave_one_family_out", params.extra.get("leave_one_group_out", {}).get("all")),
    ):
        if stored:
            out[name] = {k: stored.get(k) for k in keys}
    out["held_out" if on_holdout else "given"] = _figures_of(gated)
    return out


def _summary(gated, params, on_holdout: bool):
    from flopcast.reports.validate import COVERAGE_BAR, MEDIAN_ABS_ERROR_BAR, ValidateSummary

    f = _figures_of(gated)
    trust_a = [r for r in gated if r.trust == "A"]
    worst = max(trust_a, key=lambda r: abs(r.error)) if trust_a else None
    design = []
    if f["median_abs_error"] > MEDIAN_ABS_ERROR_BAR:
        design.append(f"median |error| {f['median_abs_error']:.1%} > {MEDIAN_ABS_ERROR_BAR:.0%}")
    if f["coverage"] < COVERAGE_BAR:
        design.append(f"P10–P90 covers {f['coverage']:.0%} of runs < {COVERAGE_BAR:.0%}")
    bar = params.extra.get("regression_bar") if on_holdout else None
    if design and bar:
        gate, failures = "regression", []
        if f["median_abs_error"] > bar["median_abs_error_max"]:
            failures.append(f"median |error| {f['median_abs_error']:.1%} > {bar['median_abs_error_max']:.1%}")
        if f["p90_abs_error"] > bar["p90_abs_error_max"]:
            failures.append(f"p90 |error| {f['p90_abs_error']:.1%} > {bar['p90_abs_error_max']:.1%}")
        if f["coverage"] < bar["coverage_min"]:
            failures.append(f"P10–P90 covers {f['coverage']:.0%} < {bar['coverage_min']:.0%}")
    else:
        gate, failures = "design", list(design)
    return ValidateSummary(
        gated_on="frozen holdout" if on_holdout else "the given runs",
        runs=f["runs"],
        median_abs_error=f["median_abs_error"],
        p90_abs_error=f["p90_abs_error"],
        coverage=f["coverage"],
        worst_trust_a_run=worst.run_id if worst else None,
        worst_trust_a_error=worst.error if worst else None,
        design_bars_met=not design,
        design_failures=design,
        gate=gate,
        passed=not failures,
        failures=failures,
    )
