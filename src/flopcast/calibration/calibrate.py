"""`flopcast calibrate`: learn a hardware profile's GEMM ceiling from steps measured on your own cluster.

The constant fitted is the profile's ``calibration.matmul_efficiency``: the large-GEMM fraction of the dense
peak that the estimator's efficiency model scales down for small per-device shapes (estimator/efficiency.py).
It is reported too as a factor on the ceiling flopcast used before (the profile's family ceiling).

Loss: least squares on the residuals ``r = log(measured time / predicted time)`` (a rate's residual is the
negative log ratio, so a 2× miss counts the same on either side and step times and tokens/s share one scale),
every row weighted equally. The predicted time is a min over searched layouts, so the loss is piecewise smooth
in the ceiling: it is minimised by a log-spaced grid over CEILING_BOUNDS, then a golden-section search in the
bracket around the best grid point — no scipy needed.

Optionally (``fit_overhead``), and only when the rows hold at least MIN_LAYOUTS_FOR_OVERHEAD distinct layouts,
a fixed per-step overhead in seconds (data loading, optimizer launch, logging: time no layout changes) is
fitted with it: ``time = predicted(ceiling) + overhead``. The estimator core has no such term, so it is
reported, not written to the profile. With fewer distinct layouts the two are not separable and the request
is refused; with one row the ceiling is still fitted (and the report warns that one point fixes it exactly).

The P10–P90 range of the report is the 10th and 90th percentile of the fitted residuals: in-sample (the rows
fitted are the rows measured), so it is optimistic for other layouts.
"""

from __future__ import annotations

import math
import time
from dataclasses import replace

import numpy as np

from flopcast.calibration.backtest import evaluate_stacked, stack_runs
from flopcast.calibration.measured import MEASURED_TIME_SIGN, MeasuredRun, layout_key
from flopcast.errors import InvalidValue, opt

# The ceiling's search range (fraction of the dense peak): 0.05 — below 5% of peak the misfit is not the
# GEMM ceiling but something the model lacks (a stalled input pipeline, the wrong hardware) — to 1.0 (the
# profile schema's upper bound: no GEMM beats the dense peak).
CEILING_BOUNDS = (0.05, 1.0)
GRID_POINTS = 41  # log-spaced grid over CEILING_BOUNDS (a 7.8% step), then golden section in the best bracket
GOLDEN_TOLERANCE = 1e-6  # relative width of the final bracket on the ceiling
OVERHEAD_GRID_POINTS = 61  # per ceiling: overhead from 0 to the smallest measured step time (linear grid + golden)
MIN_LAYOUTS_FOR_OVERHEAD = 2  # two distinct layouts separate a multiplicative ceiling from an additive overhead
ON_BOUND_FRACTION = 1e-3  # within 0.1% of the range from an end counts as on the bound
INVPHI = (math.sqrt(5.0) - 1.0) / 2.0


def _probe_profile(profile, family: str | None, ceiling: float, fitted_on: str):
    from flopcast.hardware import Calibration

    update = {"calibration": Calibration(matmul_efficiency=ceiling, fitted_on=fitted_on)}
    if family is not None:
        update["family"] = family
    return profile.model_copy(update=update)


def family_for(profile, params, name: str | None) -> str | None:
    """The family the calibrated profile declares: its own when the estimator honours a profile's own
    ``calibration.matmul_efficiency`` for that family (uncalibrated families; every family after the core
    change of README "Calibrate to your cluster"); else a new ``user-<name>`` slug, which no shipped
    calibration covers, so the fitted value is the one used."""
    import re

    probe = 0.123457  # any value no shipped fit produces
    if params.gemm_ceiling_for(_probe_profile(profile, None, probe, "probe"))[0] == probe:
        return None
    slug = re.sub(r"[^a-z0-9]+", "-", (name or profile.id).lower()).strip("-") or "calibrated"
    return f"user-{slug}"


class _Evaluator:
    """Predicted values of every measured row for a candidate ceiling (one vectorised evaluate per call)."""

    def __init__(self, measured: list[MeasuredRun], profile, params, family: str | None):
        from flopcast.hardware import load_catalog

        self.measured, self.profile, self.params, self.family = measured, profile, params, family
        runs = [replace(m.run, hardware=profile.id) for m in measured]
        self.stacked = stack_runs(runs, _OneProfile(profile, load_catalog))
        self.signs = np.asarray([MEASURED_TIME_SIGN[r.target] for r in runs])
        self.targets = np.asarray([r.target_value for r in runs])
        self.calls = 0

    def at(self, ceiling: float | None):
        """(predicted target values, predicted step seconds, predicted memory bytes, chosen layouts)."""
        from flopcast.layout import Layout

        self.calls += 1
        profile = self.profile if ceiling is None else _probe_profile(self.profile, self.family, ceiling, "fit")
        self.stacked.profiles = [profile]
        est, chosen = evaluate_stacked(self.stacked, self.params)
        values, step, memory, layouts = [], [], [], []
        for run, i in zip(self.stacked.runs, chosen, strict=True):
            step.append(float(est.step_seconds[i]))
            memory.append(float(est.memory_bytes[i]))
            layouts.append(Layout.from_arrays(self.stacked.layouts, int(i)))
            if run.target == "step_seconds":
                values.append(step[-1])
            elif run.target == "tokens_per_second":
                values.append(float(est.tokens_per_second[i]))
            else:
                flops = est.hardware_flops_per_token[i] if run.hardware_convention else est.model_flops_per_token[i]
                values.append(float(flops * est.tokens_per_second[i] / run.devices / 1e12))
        return np.asarray(values), np.asarray(step), np.asarray(memory), layouts

    def residuals(self, values: np.ndarray, step: np.ndarray, overhead: float = 0.0) -> np.ndarray:
        """log(measured time / predicted time) per row, the predicted time stretched by ``overhead`` seconds."""
        return self.signs * np.log(self.targets / values) - np.log((step + overhead) / step)


class _OneProfile:
    """A catalogue that answers every id with one profile (the candidate being fitted)."""

    def __init__(self, profile, _loader=None):
        self.profile = profile

    def get(self, _name):
        return self.profile


def _golden(f, lo: float, hi: float, tol: float) -> float:
    a, b = lo, hi
    c, d = b - INVPHI * (b - a), a + INVPHI * (b - a)
    fc, fd = f(c), f(d)
    while (b - a) > tol * max(abs(b), 1e-12):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - INVPHI * (b - a)
            fc = f(c)
        else:
            a, c, fc = c, d, fd
            d = a + INVPHI * (b - a)
            fd = f(d)
    return (a + b) / 2.0


def _best_overhead(ev: _Evaluator, values, step) -> tuple[float, float]:
    """(overhead seconds, loss) minimising the loss at one ceiling: grid on [0, min step], then golden."""
    top = float(np.min(step * np.exp(ev.residuals(values, step))))  # the smallest measured step time
    grid = np.linspace(0.0, top, OVERHEAD_GRID_POINTS)
    losses = [float(np.sum(ev.residuals(values, step, o) ** 2)) for o in grid]
    k = int(np.argmin(losses))
    lo, hi = grid[max(k - 1, 0)], grid[min(k + 1, len(grid) - 1)]
    o = _golden(lambda x: float(np.sum(ev.residuals(values, step, x) ** 2)), lo, hi, 1e-9) if hi > lo else lo
    return o, float(np.sum(ev.residuals(values, step, o) ** 2))


def fit_ceiling(ev: _Evaluator, *, fit_overhead: bool) -> tuple[float, float]:
    """(ceiling, overhead seconds) minimising the sum of squared log residuals (overhead 0 unless fitted)."""
    cache: dict[float, float] = {}

    def loss(c: float) -> float:
        if c not in cache:
            values, step, _, _ = ev.at(c)
            cache[c] = (
                _best_overhead(ev, values, step)[1] if fit_overhead else float(np.sum(ev.residuals(values, step) ** 2))
            )
        return cache[c]

    lo, hi = CEILING_BOUNDS
    grid = np.geomspace(lo, hi, GRID_POINTS)
    losses = [loss(float(c)) for c in grid]
    k = int(np.argmin(losses))
    a, b = float(grid[max(k - 1, 0)]), float(grid[min(k + 1, GRID_POINTS - 1)])
    ceiling = _golden(loss, a, b, GOLDEN_TOLERANCE)
    if loss(float(grid[k])) < loss(ceiling):
        ceiling = float(grid[k])
    overhead = 0.0
    if fit_overhead:
        values, step, _, _ = ev.at(ceiling)
        overhead = _best_overhead(ev, values, step)[0]
    return ceiling, overhead


def calibrate(measured: list[MeasuredRun], profile, *, params=None, name: str | None = None,
              fit_overhead: bool = False, sources: list[str] | None = None):  # fmt: skip
    """Fit ``profile``'s GEMM ceiling to ``measured`` rows; returns a CalibrationReport
    (:func:`flopcast.calibration.save.calibrated_profile` turns it into the profile to save). ``name``: the profile
    name it will be saved as (the ``user-<name>`` family slug, where one is needed)."""
    from flopcast.estimator.efficiency import EfficiencyParams
    from flopcast.reports.calibration import CalibrationReport, CalibrationRow, FittedConstant, Residuals

    started = time.perf_counter()
    params = params or EfficiencyParams.load()
    if not measured:
        raise InvalidValue("no measured steps to calibrate on")
    layouts = len({layout_key(m.run) for m in measured})
    warnings = []
    if fit_overhead and layouts < MIN_LAYOUTS_FOR_OVERHEAD:
        raise InvalidValue(
            f"a per-step overhead needs at least {MIN_LAYOUTS_FOR_OVERHEAD} distinct layouts to separate it from the "
            f"GEMM ceiling; the rows hold {layouts}",
            hint=f"measure another layout (tp, micro-batch or devices), or drop {opt('fit')} overhead",
        )
    if len(measured) == 1:
        warnings.append("one measured row: the ceiling is fixed by one point exactly (no residual is left to judge it)")
    elif layouts < MIN_LAYOUTS_FOR_OVERHEAD:
        warnings.append(f"{layouts} distinct layout: only the GEMM ceiling is fitted (an overhead is not separable)")
    base_ceiling, _ = params.gemm_ceiling_for(profile)
    family = family_for(profile, params, name)
    ev = _Evaluator(measured, profile, params, family)
    before_values, before_step, before_mem, _ = ev.at(None)
    before_res = ev.residuals(before_values, before_step)
    ceiling, overhead = fit_ceiling(ev, fit_overhead=fit_overhead)
    after_values, after_step, after_mem, after_layouts = ev.at(ceiling)
    after_res = ev.residuals(after_values, after_step, overhead)
    # the overhead stretches the predicted time: a time target grows with it, a rate falls
    after_values_oh = after_values * ((after_step + overhead) / after_step) ** ev.signs
    span = CEILING_BOUNDS[1] - CEILING_BOUNDS[0]
    on_bound = min(ceiling - CEILING_BOUNDS[0], CEILING_BOUNDS[1] - ceiling) < ON_BOUND_FRACTION * span
    if on_bound:
        warnings.append(f"the fitted ceiling {ceiling:.3g} sits on its bound {CEILING_BOUNDS}: the model misses "
                        "something the ceiling cannot describe")  # fmt: skip
    fitted = [
        FittedConstant(name="matmul_efficiency", value=ceiling, lower=CEILING_BOUNDS[0], upper=CEILING_BOUNDS[1],
                       on_bound=on_bound, unit="fraction of the dense peak",
                       meaning="large-GEMM fraction of the peak (calibration.matmul_efficiency)"),
    ]  # fmt: skip
    if fit_overhead:
        shortest = float(np.min(after_step * np.exp(ev.residuals(after_values, after_step))))  # measured s
        fitted.append(
            FittedConstant(name="step_overhead_seconds", value=overhead, lower=0.0, upper=shortest,
                           on_bound=overhead <= 0.0, unit="s",
                           meaning="fixed time per step no layout changes (reported, not saved)")
        )  # fmt: skip
    rows = []
    for k, m in enumerate(measured):
        r = m.run
        mem_pred = float(after_mem[k])
        rows.append(CalibrationRow(
            run_id=r.run_id, source=r.source, target=r.target, measured=r.target_value,
            predicted_before=float(before_values[k]), error_before=float(before_values[k] / r.target_value - 1),
            predicted_after=float(after_values_oh[k]), error_after=float(after_values_oh[k] / r.target_value - 1),
            layout=_layout_text(after_layouts[k]), devices=int(r.devices),
            measured_peak_memory_bytes=m.peak_memory_bytes, predicted_memory_bytes=mem_pred,
            memory_error=None if m.peak_memory_bytes is None else mem_pred / m.peak_memory_bytes - 1,
        ))  # fmt: skip
    return CalibrationReport(
        report="calibration",
        hardware=profile.id,
        base_family=profile.family,
        written_family=family or profile.family,
        base_ceiling=base_ceiling,
        ceiling_factor=ceiling / base_ceiling,
        fitted=fitted,
        runs=len(measured),
        distinct_layouts=layouts,
        before=_residuals(before_res, Residuals),
        after=_residuals(after_res, Residuals),
        rows=rows,
        sources=sources or sorted({m.run.source for m in measured}),
        seconds=time.perf_counter() - started,
        evaluations=ev.calls,
        warnings=warnings,
    )


def _residuals(res: np.ndarray, model):
    errors = np.abs(np.exp(-res) - 1.0)  # |predicted / measured time − 1|
    return model(
        median_abs_error=float(np.median(errors)),
        max_abs_error=float(np.max(errors)),
        rms_log_ratio=float(np.sqrt(np.mean(res**2))),
        p10_factor=float(np.exp(np.quantile(res, 0.10))),
        p90_factor=float(np.exp(np.quantile(res, 0.90))),
    )


def _layout_text(layout) -> str:
    text = f"{layout.tp}·{layout.pp}·{layout.dp} mb{layout.micro_batch} gb{layout.global_batch} z{layout.zero}"
    text += f" {layout.recompute}"
    return text + (f" cp{layout.cp}" if getattr(layout, "cp", 1) > 1 else "")
