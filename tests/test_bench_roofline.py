"""The roofline fit recovers a known peak and bandwidth from synthetic points generated on that roofline."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flopcast.bench.kernel import gd_step_counts
from flopcast.bench.roofline import DtypePoints, fit_roofline, model_seconds
from flopcast.estimator.roofline import attainable_flops_per_s

KS = np.array([1, 2, 4, 8, 16, 32, 64, 128, 256, 512])
D = 512


def synthetic(peak: float, bandwidth: float, itemsize: int, slowdown=None) -> DtypePoints:
    """Points of the k sweep whose times are exactly the per-operation roofline (times a slowdown ≥ 1).

    Each operation's time is max(flops/peak, bytes/bandwidth) — written out here, not taken from the code."""
    m = np.where(KS <= 16, 65536, np.maximum(1024, 3e9 // (4 * D * KS))).astype(float)
    flops, bytes_ = gd_step_counts(m, D, KS, itemsize)
    seconds = np.maximum(flops / peak, bytes_ / bandwidth).sum(axis=1)
    if slowdown is not None:
        seconds = seconds * slowdown
    return DtypePoints(flops=flops, bytes=bytes_, seconds=seconds)


def test_recovers_peak_and_bandwidth_exactly():
    fit = fit_roofline({"float64": synthetic(60e9, 12e9, 8)})
    assert fit.peak_flops_per_s["float64"] == pytest.approx(60e9, rel=1e-6)
    assert fit.bandwidth_bytes_per_s == pytest.approx(12e9, rel=1e-6)
    assert fit.peak_points["float64"] >= 2 and fit.bandwidth_points >= 1  # k = 256, 512 are on the plateau
    assert fit.warnings == []


def test_two_dtypes_share_one_bandwidth():
    fit = fit_roofline({"float64": synthetic(60e9, 12e9, 8), "float32": synthetic(130e9, 12e9, 4)})
    assert fit.peak_flops_per_s == pytest.approx({"float64": 60e9, "float32": 130e9}, rel=1e-6)
    assert fit.bandwidth_bytes_per_s == pytest.approx(12e9, rel=1e-6)


def test_slow_middle_points_do_not_pull_the_roof_down():
    # Real BLAS is slow at small k > 1 (k = 2..32 run at a third of the roof here): the roof is an envelope,
    # set by the memory-bound k = 1 point and the compute-bound plateau, so it is unchanged.
    slowdown = np.where((KS > 1) & (KS <= 32), 3.0, 1.0)
    fit = fit_roofline({"float32": synthetic(150e9, 20e9, 4, slowdown)})
    assert fit.peak_flops_per_s["float32"] == pytest.approx(150e9, rel=1e-6)
    assert fit.bandwidth_bytes_per_s == pytest.approx(20e9, rel=1e-6)


def test_noisy_points_give_a_roof_within_the_noise():
    rng = np.random.default_rng(7)
    slowdown = 1 + rng.uniform(0, 0.05, size=KS.size)  # every point up to 5 % slower than the roof
    fit = fit_roofline({"float64": synthetic(60e9, 12e9, 8, slowdown)})
    assert fit.peak_flops_per_s["float64"] == pytest.approx(60e9, rel=0.05)
    assert 12e9 / 1.05 <= fit.bandwidth_bytes_per_s <= 12e9 * (1 + 1e-9)  # bytes/s never beats the truth


def test_hand_computed_two_point_example():
    # One memory-bound point (k = 1) and one compute-bound point (k = 512), float64, d = 512:
    # k = 1, m = 65536: bytes = 8·(2·m·d + 5·m + 7·d) = 8·(67,108,864 + 327,680 + 3,584) = 539,521,024 B.
    # With B = 10 GB/s and every op memory bound (GEMV: 67 MFLOP take 1.3 ms at 50 GFLOP/s, its 269 MB
    # take 26.9 ms) its time is 0.0539521024 s.
    # k = 512, m = 1024: GEMM FLOPs 2·1024·512·512 = 536,870,912 each; at P = 50 GFLOP/s each takes
    # 0.01073741824 s; P−Y moves 8·3·1024·512 = 12,582,912 B (1.2582912 ms), (α/m)·G 8·2·512·512 = 4,194,304 B
    # (0.4194304 ms), W−G 8·3·512·512 = 6,291,456 B (0.6291456 ms): 0.02378170368 s in all.
    flops, bytes_ = gd_step_counts(np.array([65536, 1024]), 512, np.array([1, 512]), 8)
    assert bytes_[0].sum() == 539_521_024
    seconds = np.array([0.0539521024, 0.02378170368])
    fit = fit_roofline({"float64": DtypePoints(flops=flops, bytes=bytes_, seconds=seconds)})
    assert fit.bandwidth_bytes_per_s == pytest.approx(10e9, rel=1e-6)
    assert fit.peak_flops_per_s["float64"] == pytest.approx(50e9, rel=1e-6)


def test_only_memory_bound_points_fall_back_with_a_warning():
    pts = synthetic(60e9, 12e9, 8)
    only_k1 = DtypePoints(flops=pts.flops[:1], bytes=pts.bytes[:1], seconds=pts.seconds[:1])
    fit = fit_roofline({"float64": only_k1})
    assert fit.bandwidth_bytes_per_s == pytest.approx(12e9, rel=1e-6)
    # the peak is only what k = 1 reveals: its GEMV intensity (≈ 0.25 FLOP/byte) times the bandwidth
    assert fit.peak_flops_per_s["float64"] == pytest.approx(0.25 * 12e9, rel=0.01)
    assert any("compute bound" in w for w in fit.warnings)


def test_model_seconds_is_the_sum_of_per_operation_rooflines():
    flops, bytes_ = gd_step_counts(1000, 100, 10, 8)
    expected = sum(max(f / 1e9, b / 1e9) for f, b in zip(flops, bytes_, strict=True))
    assert float(model_seconds(flops, bytes_, 1e9, 1e9)) == pytest.approx(expected)


@settings(max_examples=40, deadline=None)
@given(
    peak=st.floats(1e9, 1e15),
    bandwidth=st.floats(1e9, 5e12),
    slow=st.lists(st.floats(1.0, 3.0), min_size=KS.size, max_size=KS.size),
)
def test_no_point_beats_the_fitted_roof(peak, bandwidth, slow):
    pts = synthetic(peak, bandwidth, 4, np.array(slow))
    fit = fit_roofline({"float32": pts})
    p, b = fit.peak_flops_per_s["float32"], fit.bandwidth_bytes_per_s
    intensity = pts.flops.sum(axis=1) / pts.bytes.sum(axis=1)
    assert np.all(pts.flops_per_s <= attainable_flops_per_s(intensity, p, b) * (1 + 1e-6))
    assert np.all(model_seconds(pts.flops, pts.bytes, p, b) <= pts.seconds * (1 + 1e-6))
    assert b <= bandwidth * (1 + 1e-6)  # no point streams faster than the true bandwidth
