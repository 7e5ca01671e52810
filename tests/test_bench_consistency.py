"""bench on a busy machine (issue 19 item 13): numbers of one run that cannot all be true are measured again
(bounded) and, if they stay so, flagged in the report.

The measurements are synthetic here (a machine that follows a perfect roofline, disturbed on purpose), so the
tests do not depend on how busy the test machine is.
"""

from __future__ import annotations

import numpy as np
import pytest

import flopcast.bench.run as bench_run
from flopcast.bench.kernel import gd_step_counts
from flopcast.bench.plan import ITEMSIZE_BYTES
from flopcast.bench.roofline import Fit
from flopcast.reports.bench import GemmCheck

PEAK = {"float64": 50e9, "float32": 100e9}  # the synthetic machine's FLOP/s ...
BANDWIDTH = 15e9  # ... and its bytes/s, one memory system for every dtype


def _fit(bands: dict[str, float], peaks: dict[str, float] | None = None) -> Fit:
    peaks = peaks or {d: PEAK[d] for d in bands}
    return Fit(peaks, max(bands.values()), bands, {d: 3 for d in bands}, 3)


def _gemm(dtype: str, flops_per_s: float) -> GemmCheck:
    seconds = 2.0 * 1000**3 / flops_per_s
    return GemmCheck(dtype=dtype, n=1000, seconds=seconds, seconds_min=seconds, spread=0.0, flops_per_s=flops_per_s)


def test_bandwidth_three_times_apart_between_dtypes_is_inconsistent():
    problems, redo = bench_run.inconsistencies(_fit({"float64": 15e9, "float32": 5e9}), {})
    assert redo == {"float64", "float32"}
    assert len(problems) == 1 and "differs 3.00× between dtypes" in problems[0] and "bound 1.25×" in problems[0]
    assert bench_run.inconsistencies(_fit({"float64": 15e9, "float32": 14e9}), {}) == ([], set())


def test_fitted_peak_far_from_the_gemm_is_inconsistent():
    fit = _fit({"float64": 15e9})
    problems, redo = bench_run.inconsistencies(fit, {"float64": _gemm("float64", 2 * PEAK["float64"])})
    assert redo == {"float64"} and "0.50× the direct GEMM" in problems[0]
    assert bench_run.inconsistencies(fit, {"float64": _gemm("float64", 1.05 * PEAK["float64"])}) == ([], set())


@pytest.fixture
def synthetic(monkeypatch):
    """A machine on a perfect roofline; ``slow[dtype]`` lists slow-down factors for that dtype's next sweeps."""
    slow: dict[str, list[float]] = {}
    calls: list[str] = []

    def sweep(ops, config, dtype, counter, raw):
        calls.append(dtype)
        factor = slow.get(dtype, []).pop(0) if slow.get(dtype) else 1.0
        for k in config.ks:
            m = config.rows_for(dtype, k)
            flops, bytes_ = gd_step_counts(m, config.features, k, ITEMSIZE_BYTES[dtype])
            seconds = factor * float(np.maximum(flops / PEAK[dtype], bytes_ / BANDWIDTH).sum())
            raw.append({
                "dtype": dtype, "k": k, "m": m, "d": config.features, "x_bytes": float(m * config.features * 8),
                "beyond_cache": True, "repeats": 3, "calls_per_sample": 1, "seconds": seconds,
                "seconds_min": seconds, "seconds_max": seconds, "spread": 0.0, "op_flops": flops, "op_bytes": bytes_,
            })  # fmt: skip

    monkeypatch.setattr(bench_run, "_sweep_dtype", sweep)
    monkeypatch.setattr(bench_run, "_gemm_check", lambda ops, config, dtype: _gemm(dtype, PEAK[dtype]))
    monkeypatch.setattr(bench_run, "other_cpu_share", lambda *a: 0.0)
    return slow, calls


def _run(quick: bool = True):
    from flopcast.bench import plan
    from flopcast.bench.kernel import NumpyOps

    ops = NumpyOps()
    machine = ops.describe(1)
    config = plan.make_config(
        device="cpu", quick=quick, dtypes=["float64", "float32"], cache_bytes=machine.cache_bytes or 0.0,
        size_bytes=None, verify=False, threads=1, size_scale=0.01,
    )  # fmt: skip
    return bench_run.run_bench(config, ops, machine)


def test_a_disturbed_sweep_is_measured_again_and_the_faster_kept(synthetic):
    slow, calls = synthetic
    slow["float32"] = [3.0]  # the first float32 sweep ran 3x slow (another program), the second did not
    report = _run()
    assert calls == ["float64", "float32", "float64", "float32"]  # both dtypes measured again, once
    bands = report.roofline.bandwidth_bytes_per_s_by_dtype
    assert bands["float32"] == pytest.approx(BANDWIDTH, rel=0.02) == bands["float64"]
    assert not [w for w in report.warnings if "inconsistent" in w]


def test_retries_are_bounded_and_what_stays_inconsistent_is_a_warning(synthetic):
    slow, calls = synthetic
    slow["float32"] = [3.0] * 10  # always slow: no retry can fix it
    report = _run(quick=True)
    assert calls.count("float32") == 1 + bench_run.RETRIES["quick"]
    warning = next(w for w in report.warnings if w.startswith("inconsistent: bandwidth differs"))
    assert "still so after measuring again 1×" in warning
    calls.clear()
    slow["float32"] = [3.0] * 10
    _run(quick=False)
    assert calls.count("float32") == 1 + bench_run.RETRIES["default"]
