"""Fit the efficiency model's few constants to the published runs, and measure how well it generalises.

Plain functions: :func:`fit` (the constants), :func:`leave_one_group_out`, :func:`refit` (the fit, the
band, the held-out figures and the document stored in ``flopcast/data/efficiency_fit.json``) and
:func:`write_fit`. ``scripts/refit_efficiency.py`` runs them from the command line (``--write`` stores it).

Data: the shipped runs (``published_runs.csv`` and ``holdout_runs.csv``) split by source family
(runs.split_runs): the families named in ``flopcast/data/holdout_families.json`` were chosen before fitting
and are never fitted — neither the constants nor the band see them — so their errors are the claim.

Loss: robust least squares on the residuals ``log(reported time / predicted time)`` of the fit runs:
* log ratios, so a 2× miss counts the same whichever side it falls on, and a step-time table and a
  whole-run device-hours figure are on one scale;
* ``soft_l1`` (pseudo-Huber, scale HUBER_SCALE = 0.10): quadratic for misses within about ±10%, linear
  beyond, so one run the model cannot describe (an odd cluster, a misreported figure) does not drag the
  constants for all the others;
* each residual weighted by the square root of its trust weight (A 1 … C 0.1): a primary-source figure
  counts more than a derived or second-hand one.
Nothing else: no term knows any quality bar or any run. Minimised by ``scipy.optimize.least_squares``
(trust-region reflective, within BOUNDS, two starting points, the lower cost wins); scipy is needed only
here (``pip install flopcast[fit]``), never by the estimator. Each evaluation predicts every run on the
user's path (best layout that fits, default global batch when unpublished) in one vectorised call.

Generalisation and the band: leave-one-group-out over the fit families (each predicted by a fit without
it; a family whose hardware then has no calibration is predicted as unseen hardware would be). Those
residuals give the split-conformal P10/P80/P90 the estimator applies; the band's coverage is then measured
on the frozen holdout, which it was not computed from.
"""

from __future__ import annotations

import datetime
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from flopcast.calibration.backtest import Prediction, log_time_ratios, predict_stacked, stack_runs
from flopcast.calibration.runs import Run, holdout_families, split_runs
from flopcast.estimator.efficiency import BASE_FAMILY, EfficiencyParams, fit_path

TRUST_WEIGHT = {"A": 1.0, "A-": 0.6, "B": 0.3, "B-": 0.2, "C": 0.1}
HUBER_SCALE = 0.10  # log-ratio scale where the loss turns from quadratic to linear (≈ ±10%)

# name: (lower, upper) range the constant can physically take. gemm_ceiling: a fraction of the dense peak.
# gemm_half_width: the per-device GEMM dimension (elements) at which a matmul runs at half its ceiling —
# from a few elements (nothing lost to tiles) to 4096 (even the largest models' shards lose half).
# memory_passes: passes over the stored-activation bytes by the memory-bound ops, 1 (each byte written
# once) to 40 (far more than the ~10 kernels per layer that touch them in fwd + bwd).
BOUNDS = {
    "gemm_ceiling": (0.3, 1.0),
    "gemm_half_width": (8.0, 4096.0),
    "memory_passes": (1.0, 40.0),
}
# Constants stored with the fit but never fitted (their source is where they are used): the DP all-reduce
# hides behind the backward pass but for its last bucket (timing.py).
PINNED = {"dp_overlap": 1.0}
FAMILY_FACTOR_BOUNDS = (0.4, 1.3)  # a family's ceiling relative to the base family's
START = {"gemm_ceiling": 0.75, "gemm_half_width": 200.0, "memory_passes": 4.0}
START_POINTS = (START, {"gemm_ceiling": 0.6, "gemm_half_width": 50.0, "memory_passes": 12.0})
FACTOR_START = 0.9
FACTOR_PREFIX = "factor:"
# Normal quantiles: the uncalibrated-hardware widening adds the family spread at each percentile's quantile.
Z_OF_LEVEL = {"p10": -1.2816, "p80": 0.8416, "p90": 1.2816}
LEVEL_Q = {"p10": 0.10, "p80": 0.80, "p90": 0.90}
# While the constants are fitted, predictions need only their point value: the band comes from the
# leave-one-group-out residuals afterwards (refit). These stand in for it until then and reach no output.
PROVISIONAL_BAND = {
    "log_ratio_p10": -0.2,
    "log_ratio_p80": 0.15,
    "log_ratio_p90": 0.2,
    "log_ratio_p10_uncalibrated": -0.4,
    "log_ratio_p80_uncalibrated": 0.3,
    "log_ratio_p90_uncalibrated": 0.4,
}
# CI's gate on the frozen holdout when the honest model misses a DESIGN bar: no worse than the figures stored
# at the fit by this much (a regression bar: the estimator changed, the claim got worse).
REGRESSION_MARGIN_MEDIAN = 0.02
REGRESSION_MARGIN_P90 = 0.05
REGRESSION_MARGIN_COVERAGE = 0.05  # one held-out run in twenty


def _bounds(name: str) -> tuple[float, float]:
    return FAMILY_FACTOR_BOUNDS if name.startswith(FACTOR_PREFIX) else BOUNDS[name]


def params_from(values: dict, families: set[str], runs: list[Run] | None = None) -> EfficiencyParams:
    """EfficiencyParams for fitted ``values`` (band: PROVISIONAL_BAND); ``families`` are those with runs."""
    factor = {
        k.removeprefix(FACTOR_PREFIX): v
        for k, v in values.items()
        if k.startswith(FACTOR_PREFIX) and k.removeprefix(FACTOR_PREFIX) in families
    }
    runs = runs or []
    return EfficiencyParams(
        gemm_ceiling=values["gemm_ceiling"],
        family_ceiling_factor=factor,
        calibrated_families=tuple(sorted(families)),
        gemm_half_width=values["gemm_half_width"],
        memory_passes=values["memory_passes"],
        dp_overlap=PINNED["dp_overlap"],
        **PROVISIONAL_BAND,
        calibrated_max_devices=float(max((r.devices or 1 for r in runs), default=1)),
        calibrated_max_params=float(max((r.model.params for r in runs), default=1)),
        fitted_on="not fitted yet",
        fitted_date="",
    )


def families_of(runs: list[Run], catalog) -> set[str]:
    """The hardware families of ``runs``: each run's hardware id → its catalogue profile's ``family``
    (profiles without one add none)."""
    families = {catalog.get(r.hardware).family for r in runs}
    return {f for f in families if f is not None}


@dataclass(frozen=True)
class FitInfo:
    """How the optimiser ended: its cost, which constants sit on a bound, and the parameter covariance
    (Gauss–Newton, from the Jacobian at the optimum, scaled by the residual variance)."""

    cost: float
    names: list[str]
    on_bound: list[str]
    std_error: dict[str, float]
    correlation: dict[str, dict[str, float]]
    evaluations: int


def _covariance(result, names: list[str], m: int) -> tuple[dict, dict]:
    jac = np.asarray(result.jac)
    dof = max(m - len(names), 1)
    s2 = 2.0 * float(result.cost) / dof
    try:
        cov = np.linalg.pinv(jac.T @ jac) * s2
    except np.linalg.LinAlgError:
        return {n: math.nan for n in names}, {}
    std = np.sqrt(np.maximum(np.diag(cov), 0.0))
    corr = cov / np.outer(np.where(std > 0, std, 1.0), np.where(std > 0, std, 1.0))
    return (
        {n: float(s) for n, s in zip(names, std, strict=True)},
        {a: {b: round(float(corr[i, j]), 3) for j, b in enumerate(names)} for i, a in enumerate(names)},
    )


def fit(runs, catalog, *, start: dict | None = None) -> tuple[dict, EfficiencyParams, FitInfo]:
    """Fit the constants on ``runs``; returns (values, params, info). ``start``: one starting point (e.g. a
    previous fit's values, for leave-one-group-out) instead of START_POINTS."""
    from scipy.optimize import least_squares  # the optional ``fit`` extra: only the refit needs scipy

    stacked = stack_runs(runs, catalog)
    families = families_of(runs, catalog)
    names = list(BOUNDS) + [FACTOR_PREFIX + f for f in sorted(families) if f != BASE_FAMILY]
    sqrt_w = np.sqrt([TRUST_WEIGHT.get(r.trust, 0.5) for r in runs])
    lower = np.array([_bounds(n)[0] for n in names])
    upper = np.array([_bounds(n)[1] for n in names])

    def residuals(x):
        return sqrt_w * log_time_ratios(stacked, params_from(dict(zip(names, x, strict=True)), families))

    starts = [start] if start is not None else list(START_POINTS)
    best = None
    for point in starts:
        x0 = np.array([point.get(n, FACTOR_START if n.startswith(FACTOR_PREFIX) else START[n]) for n in names])
        x0 = np.clip(x0, lower + 1e-6 * (upper - lower), upper - 1e-6 * (upper - lower))
        # The prediction picks the best layout per run (a min over layouts), so the residuals are piecewise
        # smooth: a relative finite-difference step of 1e-3 steps over the kinks instead of into them.
        result = least_squares(
            residuals, x0, bounds=(lower, upper), loss="soft_l1", f_scale=HUBER_SCALE,
            x_scale=upper - lower, diff_step=1e-3, method="trf", max_nfev=400,
        )  # fmt: skip
        if best is None or result.cost < best.cost:
            best = result
    values = dict(zip(names, (float(v) for v in best.x), strict=True))
    span = upper - lower
    near = 1e-3 * span  # within 0.1% of the range from an end
    ends = zip(names, best.x, lower, upper, near, strict=True)
    on_bound = [n for n, v, lo, hi, d in ends if v - lo < d or hi - v < d]
    std, corr = _covariance(best, names, len(runs))
    info = FitInfo(float(best.cost), names, on_bound, std, corr, int(best.nfev))
    return values, params_from(values, families, runs), info


def leave_one_group_out(runs, catalog, *, start: dict | None = None) -> dict[str, list]:
    """Each source family predicted by a fit without it: {family: [Prediction, ...]}."""
    out = {}
    for family in sorted({r.family for r in runs}):
        train = [r for r in runs if r.family != family]
        test = [r for r in runs if r.family == family]
        _, params, _ = fit(train, catalog, start=start)
        out[family] = predict_stacked(stack_runs(test, catalog), params)
    return out


def summarise(preds) -> dict | None:
    """Median, P90 and max of |error| and the P10–P90 coverage of ``preds`` (None when there are none)."""
    if not preds:
        return None
    err = np.abs([p.error for p in preds])
    return {
        "runs": len(preds),
        "median_abs_error": float(np.median(err)),
        "p90_abs_error": float(np.quantile(err, 0.9)),
        "max_abs_error": float(np.max(err)),
        "coverage": float(np.mean([p.covered for p in preds])),
    }


def conformal_quantiles(residuals: np.ndarray) -> dict[str, float]:
    """Split-conformal percentiles of held-out residuals: the ⌈(n+1)·q⌉-th smallest (n ≥ 9: clipped to n)."""
    r = np.sort(np.asarray(residuals, dtype=float))
    n = len(r)
    out = {}
    for level, q in LEVEL_Q.items():
        if q > 0.5:
            k = min(math.ceil((n + 1) * q), n)
        else:
            k = max(math.floor((n + 1) * q), 1)
        out[level] = float(r[k - 1])
    return out


def _covered(residual: float, band: dict[str, float]) -> bool:
    return band["p10"] <= residual <= band["p90"]


METHOD = (
    "soft_l1 (pseudo-Huber, scale 0.10) robust least squares on log(reported/predicted time), residuals "
    "weighted by sqrt(trust weight), on the fit split only (frozen held-out source families never fitted); "
    "scipy.optimize.least_squares (trf, bounds) from two starts; P10/P80/P90 split-conformal from "
    "leave-one-source-family-out residuals of the fit split; coverage measured on the frozen holdout; "
    "uncalibrated families widen each percentile by its normal quantile x std of the log family factors"
)


@dataclass(frozen=True)
class Refit:
    """What :func:`refit` found: the constants, the predictions, and (unless skipped) the leave-one-group-out
    check, the band, the held-out figures and the document to store."""

    values: dict  # the fitted constants (and family factors, "factor:<family>")
    info: FitInfo
    predictions: list[Prediction]  # the fit runs, in-sample
    in_sample: dict  # {"all": summary, <file name>: summary, ...}
    held_out: dict[str, list[Prediction]] | None = None  # {fit family: predictions by a fit without it}
    held_out_summary: dict | None = None  # leave-one-group-out over the fit runs: summarise()
    frozen: list[Prediction] | None = None  # the frozen holdout, predicted with the final constants and band
    residual_p10: float | None = None
    residual_p90: float | None = None
    document: dict | None = None  # what efficiency_fit.json holds


def refit(files: dict[Path, list[Run]], catalog, *, held_out: bool = True) -> Refit:
    """Fit on the fit split of ``files`` ({path: its runs}), predict it in-sample and, with ``held_out``,
    run leave-one-group-out (the band), predict the frozen holdout and build the document to store."""
    runs = [r for group in files.values() for r in group]
    fit_runs, frozen_runs = split_runs(runs)
    values, params, info = fit(fit_runs, catalog)
    preds = predict_stacked(stack_runs(fit_runs, catalog), params)
    in_sample = {"all": summarise(preds)}
    for path, group in files.items():
        ids = {r.run_id for r in group}
        in_sample[path.name] = summarise([p for p in preds if p.run.run_id in ids])
    if not held_out:
        return Refit(values=values, info=info, predictions=preds, in_sample=in_sample)
    logo = leave_one_group_out(fit_runs, catalog, start=values)
    held = [p for group in logo.values() for p in group]
    residuals = np.asarray([p.log_time_ratio for p in held])
    band = conformal_quantiles(residuals)
    # Unseen hardware families: each percentile moves out by its normal quantile × the between-family spread
    # of the ceiling (standard deviation of the log factors, base family = 0).
    logs = [0.0] + [math.log(v) for k, v in values.items() if k.startswith(FACTOR_PREFIX)]
    spread = float(np.std(logs))
    params = params.with_values(
        **{f"log_ratio_{lv}": band[lv] for lv in band},
        **{f"log_ratio_{lv}_uncalibrated": band[lv] + Z_OF_LEVEL[lv] * spread for lv in band},
        fitted_on=f"{len(fit_runs)} published runs of {len({r.family for r in fit_runs})} source families "
        f"(the frozen holdout of {len(frozen_runs)} runs never fitted; "
        f"{', '.join(sorted({r.hardware for r in fit_runs}))})",
        fitted_date=datetime.date.today().isoformat(),
    )
    # Leave-one-family-out coverage: each family against the band of the other families' residuals.
    logo_cover = []
    for fam, group in logo.items():
        others = np.asarray([p.log_time_ratio for f, g in logo.items() if f != fam for p in g])
        fam_band = conformal_quantiles(others)
        logo_cover += [_covered(p.log_time_ratio, fam_band) for p in group]
    logo_summary = {fam: summarise(group) for fam, group in logo.items()}
    held_summary = summarise(held)
    held_summary["coverage"] = float(np.mean(logo_cover))
    in_sample_preds = predict_stacked(stack_runs(fit_runs, catalog), params)
    in_sample["all"] = summarise(in_sample_preds)
    frozen = predict_stacked(stack_runs(frozen_runs, catalog), params) if frozen_runs else []
    frozen_summary = summarise(frozen)
    doc = params.to_dict()
    doc["fitted_files"] = [path.name for path in files]
    doc["holdout_families"] = sorted({r.family for r in frozen_runs})
    doc["fit_families"] = sorted({r.family for r in fit_runs})
    doc["bounds"] = {n: list(_bounds(n)) for n in info.names}
    doc["pinned"] = dict(PINNED)
    doc["on_bound"] = info.on_bound
    doc["std_error"] = info.std_error
    doc["correlation"] = info.correlation
    doc["loss_cost"] = info.cost
    doc["in_sample"] = in_sample["all"]
    doc["in_sample_by_file"] = {k: v for k, v in in_sample.items() if k != "all" and v is not None}
    doc["leave_one_group_out"] = {**logo_summary, "all": held_summary}
    doc["held_out"] = frozen_summary
    doc["held_out_runs"] = {p.run.run_id: p.predicted for p in frozen}
    doc["regression_bar"] = (
        None
        if frozen_summary is None
        else {
            "median_abs_error_max": frozen_summary["median_abs_error"] + REGRESSION_MARGIN_MEDIAN,
            "p90_abs_error_max": frozen_summary["p90_abs_error"] + REGRESSION_MARGIN_P90,
            "coverage_min": frozen_summary["coverage"] - REGRESSION_MARGIN_COVERAGE,
        }
    )
    doc["source_families"] = {fam: sorted(p.run.run_id for p in group) for fam, group in logo.items()}
    doc["method"] = METHOD
    return Refit(
        values=values,
        info=info,
        predictions=in_sample_preds,
        in_sample=in_sample,
        held_out=logo,
        held_out_summary=held_summary,
        frozen=frozen,
        residual_p10=band["p10"],
        residual_p90=band["p90"],
        document=doc,
    )


def fit_text(document: dict) -> str:
    """The fit file's text: two-space indented JSON and a final newline."""
    return json.dumps(document, indent=2) + "\n"


def write_fit(document: dict, path: Path | None = None) -> Path:
    """Store ``document`` where the estimator reads it (default: efficiency.fit_path()); returns the path."""
    path = Path(path) if path is not None else fit_path()
    path.write_text(fit_text(document), encoding="utf-8")
    return path


__all__ = ["fit", "holdout_families", "leave_one_group_out", "refit", "summarise", "write_fit"]
