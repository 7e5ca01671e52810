"""One `flopcast bench` run: sweep, fit, check against a direct GEMM, then close the loop.

Order: for each dtype, the k sweep on one preallocated X (row-slices of it for the compute-bound points)
followed at once by a square GEMM (an independent figure for the fitted peak, measured under the same
conditions); then the roofline fit over every point; then the training runs of
:mod:`flopcast.bench.verify`, predicted with the fit. Ctrl-C at any moment ends the run early: the report
then holds what was measured, fitted if possible, with ``partial: true``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from flopcast.bench.kernel import GradientDescent, gd_step_counts, measure
from flopcast.bench.machine import cpu_time_snapshot, other_cpu_share
from flopcast.bench.plan import ITEMSIZE_BYTES, MIN_CACHE_MULTIPLE, BenchConfig
from flopcast.bench.roofline import METHOD, DtypePoints, fit_roofline, model_seconds
from flopcast.bench.verify import VERIFY_TARGET_ABS_ERROR, predict_training, verify_run
from flopcast.estimator.roofline import attainable_flops_per_s, ridge_point_flops_per_byte
from flopcast.reports.bench import (
    BenchPoint,
    BenchReport,
    BenchSettings,
    GemmCheck,
    MachineInfo,
    RooflineFit,
    Verify,
)
from flopcast.units import format_si

# DESIGN §8 "bench" bar: the fitted peak within 10 % of a direct GEMM measurement.
GEMM_TARGET_ABS_DIFFERENCE = 0.10
# Other programs using more than this share of the CPUs during the run make the timings unreliable.
BUSY_SHARE = 0.10
# A point whose samples spread more than this was disturbed (another program, frequency changes).
NOISY_SPREAD = 0.10
# The roofline is fitted on each point's fastest sample (and the GEMM check uses its fastest sample too):
# other programs and frequency changes only ever slow a sample down, so the fastest is the least disturbed
# estimate of what the machine can do (the advice of Python's timeit). Tables report medians and spread.
FIT_ON = "each point's fastest sample (tables show medians)"

# A busy machine gives numbers that cannot all be true (issue 19: float64 peak 42.6 vs 87.6 GFLOP/s in two
# --quick runs; bandwidth 3x apart between dtypes of one memory system). Two checks inside one run:
# - the fitted peak of a dtype against its direct GEMM: within GEMM_TARGET_ABS_DIFFERENCE (the DESIGN §8 bar);
# - the streaming bandwidth of the dtypes against each other: within BANDWIDTH_DTYPE_SPREAD. They read the same
#   memory with the same kernel (k = 1 is two matrix-vector products), so on a quiet machine they agree to a
#   few per cent (10-15 % on the 2-core dev machine); 25 % leaves room for vector-width effects, 3x does not.
# When a check fails the sweep and GEMM of the dtypes involved are measured again (each point keeps its
# fastest sample over the attempts: disturbances only slow a sample down), at most RETRIES[mode] times; what
# is still inconsistent after that is a warning in the report.
BANDWIDTH_DTYPE_SPREAD = 0.25
RETRIES = {"quick": 1, "default": 2}

Progress = Callable[[str, int, int], None]


def _no_progress(label: str, done: int, total: int) -> None:
    """Default progress sink: nothing."""


class _Counter:
    def __init__(self, total: int, sink: Progress):
        self.done, self.total, self.sink = 0, total, sink

    def start(self, label: str) -> None:
        self.sink(label, self.done, self.total)

    def finish(self) -> None:
        self.done += 1


def _sweep_dtype(ops, config: BenchConfig, dtype: str, counter: _Counter, raw: list[dict]) -> None:
    d = config.features
    rows_full = config.rows_full(dtype)
    sample = ops.min_sample_seconds * config.size_scale  # tests shrink the samples with the sizes
    X = ops.uniform((rows_full, d), dtype, -1.0, 1.0)
    s = ITEMSIZE_BYTES[dtype]
    for k in config.ks:
        m = config.rows_for(dtype, k)
        counter.start(f"{dtype} k={k} (m={m}, d={d})")
        gd = GradientDescent(ops, X[:m], k, dtype)
        timing = measure(ops, gd.step, warmup=config.warmup_calls, repeats=config.repeats, min_sample_seconds=sample)
        gd.free()
        flops, bytes_ = gd_step_counts(m, d, k, s)
        raw.append(
            {
                "dtype": dtype, "k": k, "m": m, "d": d, "x_bytes": float(m * d * s),
                "beyond_cache": m * d * s >= MIN_CACHE_MULTIPLE * config.cache_bytes,
                "repeats": len(timing.seconds), "calls_per_sample": timing.calls_per_sample,
                "seconds": timing.median, "seconds_min": min(timing.seconds), "seconds_max": max(timing.seconds),
                "spread": timing.spread, "op_flops": flops, "op_bytes": bytes_,
            }
        )  # fmt: skip
        counter.finish()
    ops.free(X)


def inconsistencies(fit, gemm: dict[str, GemmCheck]) -> tuple[list[str], set[str]]:
    """What in one run's numbers cannot all be true (see BANDWIDTH_DTYPE_SPREAD), and the dtypes to measure again."""
    problems, redo = [], set()
    for dtype, check in gemm.items():
        peak = fit.peak_flops_per_s.get(dtype)
        if peak is not None and abs(peak / check.flops_per_s - 1) > GEMM_TARGET_ABS_DIFFERENCE:
            problems.append(
                f"{dtype}: fitted peak {format_si(peak, 'FLOP/s')} is {peak / check.flops_per_s:.2f}× the direct "
                f"GEMM's {format_si(check.flops_per_s, 'FLOP/s')} (bound ±{GEMM_TARGET_ABS_DIFFERENCE:.0%})"
            )
            redo.add(dtype)
    bands = fit.bandwidth_by_dtype
    if len(bands) > 1:
        low, high = min(bands, key=bands.get), max(bands, key=bands.get)
        if bands[high] / bands[low] - 1 > BANDWIDTH_DTYPE_SPREAD:
            problems.append(
                f"bandwidth differs {bands[high] / bands[low]:.2f}× between dtypes of one memory system ({high} "
                f"{format_si(bands[high], 'B/s')}, {low} {format_si(bands[low], 'B/s')}; bound "
                f"{1 + BANDWIDTH_DTYPE_SPREAD:.2f}×)"
            )
            redo |= {low, high}
    return problems, redo


def _keep_fastest(raw: list[dict], again: list[dict]) -> list[dict]:
    """``raw`` with each point replaced by its new measurement where that one's fastest sample is faster."""
    new = {(r["dtype"], r["k"]): r for r in again}
    return [new[(r["dtype"], r["k"])] if new.get((r["dtype"], r["k"]), r)["seconds_min"] < r["seconds_min"] else r
            for r in raw]  # fmt: skip


def _measure_again(ops, config, raw, gemm, counter, fit):
    """Re-measure the dtypes whose numbers disagree, at most RETRIES[mode] times; returns the raw points, GEMM
    checks, fit and how many times it measured again."""
    problems, redo = inconsistencies(fit, gemm)
    attempts = 0
    while redo and attempts < RETRIES.get(config.mode, 1):
        attempts += 1
        counter.total += len(redo) * (len(config.ks) + 1)
        for dtype in [d for d in config.dtypes if d in redo]:
            again: list[dict] = []
            _sweep_dtype(ops, config, dtype, counter, again)
            raw = _keep_fastest(raw, again)
            counter.start(f"{dtype} GEMM check again (n={config.gemm_n()})")
            check = _gemm_check(ops, config, dtype)
            gemm[dtype] = check if check.seconds_min < gemm[dtype].seconds_min else gemm[dtype]
            counter.finish()
        fit = _fit(raw)
        problems, redo = inconsistencies(fit, gemm)
    return raw, gemm, fit, attempts


def _fit(raw: list[dict]):
    by_dtype: dict[str, DtypePoints] = {}
    for dtype in dict.fromkeys(r["dtype"] for r in raw):
        rows = [r for r in raw if r["dtype"] == dtype]
        by_dtype[dtype] = DtypePoints(
            flops=np.stack([r["op_flops"] for r in rows]),
            bytes=np.stack([r["op_bytes"] for r in rows]),
            seconds=np.array([r["seconds_min"] for r in rows]),  # FIT_ON: each point's fastest sample
        )
    return fit_roofline(by_dtype)


def _points(raw: list[dict], fit) -> list[BenchPoint]:
    points = []
    for r in raw:
        flops, bytes_ = float(r["op_flops"].sum()), float(r["op_bytes"].sum())
        extra = {}
        if fit is not None:
            peak, bw = fit.peak_flops_per_s[r["dtype"]], fit.bandwidth_by_dtype[r["dtype"]]
            attainable = float(attainable_flops_per_s(flops / bytes_, peak, bw))
            extra = {
                "attainable_flops_per_s": attainable,
                "efficiency": flops / r["seconds"] / attainable,
                "model_seconds": float(model_seconds(r["op_flops"], r["op_bytes"], peak, bw)),
            }
        fields = {key: v for key, v in r.items() if not key.startswith("op_")}
        points.append(
            BenchPoint(
                **fields, flops=flops, bytes=bytes_, flops_per_s=flops / r["seconds"],
                bytes_per_s=bytes_ / r["seconds"], intensity_flops_per_byte=flops / bytes_, **extra,
            )
        )  # fmt: skip
    return points


def _gemm_check(ops, config: BenchConfig, dtype: str) -> GemmCheck:
    n = config.gemm_n()
    A = ops.uniform((n, n), dtype, -1.0, 1.0)
    B = ops.uniform((n, n), dtype, -1.0, 1.0)
    C = ops.empty((n, n), dtype)
    timing = measure(
        ops, lambda: ops.matmul(A, B, C), warmup=config.warmup_calls, repeats=config.repeats,
        min_sample_seconds=ops.min_sample_seconds * config.size_scale,
    )  # fmt: skip
    ops.free(A, B, C)
    return GemmCheck(
        dtype=dtype, n=n, seconds=timing.median, seconds_min=min(timing.seconds), spread=timing.spread,
        flops_per_s=2.0 * n**3 / min(timing.seconds),  # the fastest sample, like the fit (FIT_ON)
    )  # fmt: skip


def run_bench(config: BenchConfig, ops, machine: MachineInfo, progress: Progress | None = None) -> BenchReport:
    """Run the benchmark described by ``config`` on the array backend ``ops``; never raises on Ctrl-C."""
    started = time.perf_counter()
    cpu_start = cpu_time_snapshot()
    counter = _Counter(config.tasks(), progress or _no_progress)
    raw: list[dict] = []
    fit = None
    gemm: dict[str, GemmCheck] = {}
    runs = []
    partial = False
    remeasured = 0
    try:
        for dtype in config.dtypes:
            _sweep_dtype(ops, config, dtype, counter, raw)
            # right after the dtype's plateau points, so both see the same machine (other load, clocks)
            counter.start(f"{dtype} GEMM check (n={config.gemm_n()})")
            gemm[dtype] = _gemm_check(ops, config, dtype)
            counter.finish()
        fit = _fit(raw)
        raw, gemm, fit, remeasured = _measure_again(ops, config, raw, gemm, counter, fit)
        if config.verify:
            for dtype in config.dtypes:
                peak = fit.peak_flops_per_s[dtype]
                for regime, m, d, kk in (
                    ("memory-bound", config.verify_memory_rows(dtype), config.verify_memory_features, 1),
                    ("compute-bound", config.verify_compute_rows(), config.verify_features, config.verify_k),
                ):
                    bw = fit.bandwidth_by_dtype[dtype]
                    step = predict_training(m, d, kk, ITEMSIZE_BYTES[dtype], 1, peak, bw)[0]
                    steps = config.verify_steps_for(step)
                    counter.start(f"{dtype} training, {regime} (m={m}, d={d}, k={kk}, {steps} steps)")
                    runs.append(verify_run(ops, dtype, regime, m, d, kk, steps, peak, bw, config.verify_repeats))
                    counter.finish()
    except KeyboardInterrupt:
        partial = True
    if fit is None and raw:
        fit = _fit(raw)
    if fit is not None:
        gemm = {
            d: g.model_copy(update={"fitted_over_gemm": fit.peak_flops_per_s[d] / g.flops_per_s})
            for d, g in gemm.items()
            if d in fit.peak_flops_per_s
        }
    counter.sink("done", counter.total, counter.total)
    report = _report(config, machine, raw, fit, gemm, runs, partial, time.perf_counter() - started, remeasured)
    report.other_cpu_share = other_cpu_share(cpu_start, cpu_time_snapshot())
    if report.other_cpu_share is not None and report.other_cpu_share > BUSY_SHARE:
        report.warnings.insert(
            0,
            f"other programs used {report.other_cpu_share:.0%} of the CPU time during the run: the timings are "
            "disturbed (rerun on a quiet machine)",
        )
    return report


def _report(config, machine, raw, fit, gemm, runs, partial, elapsed, remeasured: int = 0) -> BenchReport:
    warnings: list[str] = []
    retried = f" (still so after measuring again {remeasured}×: a busy machine?)" if remeasured else ""
    if fit is not None:  # the GEMM check's own warning follows below
        warnings += [f"inconsistent: {p}{retried}" for p in inconsistencies(fit, {})[0]]
    roofline = None
    if fit is not None:
        warnings += fit.warnings
        roofline = RooflineFit(
            peak_flops_per_s=fit.peak_flops_per_s,
            bandwidth_bytes_per_s=fit.bandwidth_bytes_per_s,
            bandwidth_bytes_per_s_by_dtype=fit.bandwidth_by_dtype,
            ridge_flops_per_byte={
                d: float(ridge_point_flops_per_byte(p, fit.bandwidth_by_dtype[d]))
                for d, p in fit.peak_flops_per_s.items()
            },
            peak_points=fit.peak_points,
            bandwidth_points=fit.bandwidth_points,
            method=f"{METHOD}; fitted on {FIT_ON}",
        )
    if config.size_bytes < MIN_CACHE_MULTIPLE * config.cache_bytes:
        warnings.append(
            f"X at the memory-bound points ({format_si(config.size_bytes, 'B')}) is less than "
            f"{MIN_CACHE_MULTIPLE:g}× the cache ({format_si(config.cache_bytes, 'B')}): the bandwidth may be "
            "overstated (give a larger --size)"
        )
    noisy = [r for r in raw if r["spread"] > NOISY_SPREAD]
    if noisy:
        worst = max(noisy, key=lambda r: r["spread"])
        warnings.append(
            f"{len(noisy)} of {len(raw)} points spread more than {NOISY_SPREAD:.0%} between repeats (worst "
            f"{worst['spread']:.0%} at {worst['dtype']} k={worst['k']}): another program may be using the machine"
        )
    for check in gemm.values():
        if check.fitted_over_gemm is not None and abs(check.fitted_over_gemm - 1) > GEMM_TARGET_ABS_DIFFERENCE:
            warnings.append(
                f"{check.dtype}: fitted peak is {check.fitted_over_gemm:.2f}× a direct {check.n}×{check.n} GEMM "
                f"(target within {GEMM_TARGET_ABS_DIFFERENCE:.0%}){retried}"
            )
    verify = None
    if runs:
        predicted = sum(r.predicted_seconds for r in runs)  # measured: each run's fastest training
        measured = sum(r.measured_seconds for r in runs)
        error = predicted / measured - 1
        verify = Verify(
            predicted_seconds=predicted,
            measured_seconds=measured,
            error=error,
            target_abs_error=VERIFY_TARGET_ABS_ERROR,
            within_target=abs(error) <= VERIFY_TARGET_ABS_ERROR,
            peak_source="the fitted peak and bandwidth of the run's dtype (roofline.*_by_dtype)",
            runs=runs,
        )
        for r in runs:
            if abs(r.error) > VERIFY_TARGET_ABS_ERROR:
                warnings.append(
                    f"training {r.dtype} {r.regime}: predicted {r.predicted_seconds:.3g} s, measured "
                    f"{r.measured_seconds:.3g} s ({r.error:+.0%}, target ±{VERIFY_TARGET_ABS_ERROR:.0%})"
                )
            if not r.loss_fell:
                warnings.append(f"training {r.dtype} {r.regime}: the loss did not fall")
    if partial:
        warnings.insert(0, "interrupted: this report holds only what was measured before Ctrl-C")
    settings = BenchSettings(
        mode=config.mode, device=config.device, dtypes=list(config.dtypes), size_bytes=config.size_bytes,
        features=config.features, ks=list(config.ks), flops_per_step_target=config.flops_per_step,
        repeats=config.repeats, warmup_calls=config.warmup_calls, verify=config.verify, size_scale=config.size_scale,
    )  # fmt: skip
    return BenchReport(
        partial=partial,
        settings=settings,
        machine=machine,
        roofline=roofline,
        points=_points(raw, fit),
        gemm_check=gemm,
        verify=verify,
        elapsed_seconds=elapsed,
        warnings=warnings,
    )
