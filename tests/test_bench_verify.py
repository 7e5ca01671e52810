"""Closing the loop: the training's loss falls, and its time is predicted by hand-checkable roofline sums."""

import numpy as np
import pytest

import flopcast.bench.roofline as bench_roofline
from flopcast.bench.kernel import NumpyOps
from flopcast.bench.verify import make_problem, predict_training, train, verify_run


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_loss_falls_and_weights_approach_the_truth(dtype):
    ops = NumpyOps(seed=11)
    X, Y, W_true = make_problem(ops, 800, 20, 3, dtype)
    _, losses, final, weight_error = train(ops, X, Y, W_true, steps=25, dtype=dtype)
    # every step lowers the loss (down to float32 rounding once it sits at the noise floor)
    assert all(b <= a * (1 + 1e-4) for a, b in zip(losses, losses[1:], strict=False))
    assert losses[5] < losses[0] / 5
    # start: W = 0, so loss = ‖Y‖²/2m ≈ k·(1/3 + 0.01)/2 ≈ 0.51 (targets have variance ≈ 1/3 + noise 0.1²)
    assert losses[0] == pytest.approx(3 * (1 / 3 + 0.01) / 2, rel=0.25)
    # end: only the noise is left, loss → k·0.1²/2 = 0.015
    assert final == pytest.approx(3 * 0.01 / 2, rel=0.3)
    assert weight_error < 0.05


def test_prediction_is_the_sum_of_per_operation_rooflines_by_hand():
    # m=1000, d=100, k=10, float64, P = B = 1e9. Per step (FLOPs | bytes → seconds = max(FLOPs/P, bytes/B)):
    #   X·W      2e6 | 8·(1e5+1e3+1e4)=888,000  → 2.0e-3   (compute)
    #   P−Y      1e4 | 8·3e4=240,000            → 2.4e-4   (memory)
    #   Xᵀ·R     2e6 | 888,000                  → 2.0e-3
    #   (α/m)·G  1e3 | 8·2e3=16,000             → 1.6e-5
    #   W−G      1e3 | 8·3e3=24,000             → 2.4e-5
    #   loss     2e4 | 8·1e4=80,000             → 8.0e-5
    # = 4.36e-3 s per step; 10 steps = 0.0436 s, 40.32 MFLOP, 20.72 MB.
    seconds, flops, bytes_ = predict_training(1000, 100, 10, 8, 10, 1e9, 1e9)
    assert seconds == pytest.approx(0.0436)
    assert flops == pytest.approx(10 * (2e6 + 1e4 + 2e6 + 1e3 + 1e3 + 2e4))
    assert bytes_ == pytest.approx(10 * 8 * (111_000 + 30_000 + 111_000 + 2_000 + 3_000 + 10_000))


def test_prediction_goes_through_the_estimator_core(monkeypatch):
    calls = []
    real = bench_roofline.roofline_seconds

    def spy(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(bench_roofline, "roofline_seconds", spy)
    predict_training(1000, 100, 10, 8, 1, 1e9, 1e9)
    assert calls, "the prediction must use flopcast.estimator.roofline.roofline_seconds"


def test_verify_run_reports_prediction_error_consistently():
    ops = NumpyOps(seed=2)
    run = verify_run(ops, "float64", "compute-bound", 400, 16, 4, 5, 1e10, 1e10)
    assert run.error == pytest.approx(run.predicted_seconds / run.measured_seconds - 1)
    assert run.loss_fell and run.measured_seconds > 0
    assert (run.m, run.d, run.k, run.steps) == (400, 16, 4, 5)


def test_problem_has_known_weights():
    ops = NumpyOps(seed=5)
    X, Y, W_true = make_problem(ops, 2000, 10, 2, "float64")
    # unit-variance features: XᵀX/m ≈ I (±3/√m ≈ 0.07)
    np.testing.assert_allclose(X.T @ X / 2000, np.eye(10), atol=0.15)
    # Y − X·W_true is the noise: standard deviation 0.1
    assert np.std(Y - X @ W_true) == pytest.approx(0.1, rel=0.1)
