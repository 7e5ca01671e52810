"""The GD kernel: FLOP and byte counts by hand derivation, the step's arithmetic, and the timer."""

import numpy as np
import pytest

from flopcast.bench.kernel import (
    GD_STEP_OPS,
    GradientDescent,
    NumpyOps,
    Timing,
    gd_step_counts,
    measure,
    training_step_counts,
)


def test_counts_match_hand_derivation():
    # m=1000, d=100, k=10, float64 (8 bytes).
    # FLOPs: X·W = 2·m·d·k = 2e6; P−Y = m·k = 1e4; Xᵀ·R = 2e6; (α/m)·G = d·k = 1e3; W−G = 1e3.
    # Elements: X·W reads X (1e5) + W (1e3), writes P (1e4) = 111,000; P−Y 3·m·k = 30,000;
    #           Xᵀ·R reads X (1e5) + R (1e4), writes G (1e3) = 111,000; scale 2·d·k = 2,000; update 3·d·k = 3,000.
    flops, bytes_ = gd_step_counts(1000, 100, 10, 8)
    assert flops.tolist() == [2e6, 1e4, 2e6, 1e3, 1e3]
    assert bytes_.tolist() == [8 * 111_000, 8 * 30_000, 8 * 111_000, 8 * 2_000, 8 * 3_000]
    # the closed forms of the module docstring: 4mdk + mk + 2dk and itemsize·(2md + 5mk + 7dk)
    assert flops.sum() == 4 * 1000 * 100 * 10 + 1000 * 10 + 2 * 100 * 10 == 4_012_000
    assert bytes_.sum() == 8 * (2 * 1000 * 100 + 5 * 1000 * 10 + 7 * 100 * 10) == 2_056_000


def test_k1_is_two_gemv_streaming_x_twice():
    # At k = 1 the step reads X twice (2·m·d elements) and does ≈ 4·m·d FLOPs: intensity ≈ 2/itemsize.
    m, d = 1_000_000, 512
    for itemsize, expected in ((8, 0.25), (4, 0.5)):
        flops, bytes_ = gd_step_counts(m, d, 1, itemsize)
        assert bytes_.sum() == pytest.approx(itemsize * 2 * m * d, rel=0.01)
        assert flops.sum() / bytes_.sum() == pytest.approx(expected, rel=0.01)


def test_counts_broadcast_over_points():
    flops, bytes_ = gd_step_counts(np.array([1000, 2000]), 100, np.array([1, 10]), 4)
    assert flops.shape == bytes_.shape == (2, len(GD_STEP_OPS))
    assert flops[1].tolist() == [4e6, 2e4, 4e6, 1e3, 1e3]


def test_training_step_adds_the_loss():
    # loss = ‖R‖² is one dot product over m·k elements: 2·m·k FLOPs, m·k·itemsize bytes read.
    flops, bytes_ = training_step_counts(1000, 100, 10, 4)
    assert flops.shape == (6,)
    assert flops[-1] == 2 * 1000 * 10 and bytes_[-1] == 4 * 1000 * 10
    base_f, base_b = gd_step_counts(1000, 100, 10, 4)
    assert flops[:5].tolist() == base_f.tolist() and bytes_[:5].tolist() == base_b.tolist()


class CountingOps(NumpyOps):
    """NumpyOps that tallies FLOPs and bytes from the shapes of the arrays each call touches."""

    def __init__(self):
        super().__init__(seed=1)
        self.flops: list[float] = []
        self.bytes: list[float] = []

    def matmul(self, a, b, out):
        self.flops.append(2 * a.shape[0] * a.shape[1] * b.shape[1])
        self.bytes.append((a.size + b.size + out.size) * out.itemsize)
        super().matmul(a, b, out)

    def sub(self, a, b, out):
        self.flops.append(out.size)
        self.bytes.append(3 * out.size * out.itemsize)
        super().sub(a, b, out)

    def scale(self, a, factor, out):
        self.flops.append(out.size)
        self.bytes.append(2 * out.size * out.itemsize)
        super().scale(a, factor, out)


def test_step_issues_exactly_the_counted_operations():
    ops = CountingOps()
    X = ops.uniform((64, 16), "float32", -1, 1)
    gd = GradientDescent(ops, X, 3, "float32")
    gd.step()
    flops, bytes_ = gd_step_counts(64, 16, 3, 4)
    assert ops.flops == flops.tolist()
    assert ops.bytes == bytes_.tolist()


def test_step_is_gradient_descent():
    ops = NumpyOps(seed=3)
    X = ops.uniform((50, 8), "float64", -1, 1)
    gd = GradientDescent(ops, X, 2, "float64", learning_rate=0.7)
    W0 = np.array(ops.uniform((8, 2), "float64", -1, 1))
    gd.W[...] = W0
    gd.step()
    expected = W0 - 0.7 / 50 * X.T @ (X @ W0 - gd.Y)
    np.testing.assert_allclose(gd.W, expected, rtol=1e-12)


def test_uniform_range_and_dtype():
    a = NumpyOps(seed=0).uniform((1000,), "float32", -2.0, 3.0)
    assert a.dtype == np.float32 and a.min() >= -2.0 and a.max() < 3.0


class FakeClock(NumpyOps):
    """time_calls returns 1 ms per call, except the samples listed."""

    def __init__(self, samples):
        super().__init__()
        self.samples = list(samples)

    def time_calls(self, fn, calls):
        return self.samples.pop(0) * calls if self.samples else 0.001 * calls


def test_measure_sizes_samples_and_reports_median_and_spread():
    ops = FakeClock([0.001, 0.001, 0.001, 0.003, 0.002])  # warm-up, one call, then three samples per call
    timing = measure(ops, lambda: None, warmup=1, repeats=3)
    # a 1 ms call needs ceil(5 ms / 1 ms) = 5 calls per sample
    assert timing.calls_per_sample == 5
    assert timing.seconds == pytest.approx((0.001, 0.003, 0.002))
    assert timing.median == pytest.approx(0.002)
    assert timing.spread == pytest.approx((0.003 - 0.001) / 0.002)


def test_timing_spread_zero_for_identical_samples():
    assert Timing(seconds=(0.5, 0.5), calls_per_sample=1).spread == 0
