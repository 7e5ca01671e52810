"""Closing the loop (DESIGN §5): train a real model, having *predicted* how long the training will take.

The model is linear least squares fitted by full-batch gradient descent on synthetic data with known true
weights: ``X`` has independent unit-variance features (uniform on [−√3, √3)), ``W_true`` is uniform on
[−1, 1)/√d (so each target has variance ≈ 1/3 whatever d is, and 16-bit GPU runs cannot overflow), and
``Y = X·W_true + noise`` (noise uniform with standard deviation :data:`NOISE_STD`). Training
starts from ``W = 0`` and minimises ``‖X·W − Y‖² / 2m``; the loss must fall, and ``W`` approaches ``W_true``.

The prediction is made *before* the run, from the shapes alone: the FLOPs and bytes of every operation of a
training step (:func:`flopcast.bench.kernel.training_step_counts`) through the estimator core's roofline with
the fitted peak and bandwidth (:func:`flopcast.bench.roofline.model_seconds`), times the number of steps.
The training is then run (a few times, from ``W = 0`` each time, the fastest reported — the roofline is
fitted on fastest samples too, and other programs only ever slow a run down). The error is
``predicted / measured − 1``.
"""

from __future__ import annotations

import math
import time

from flopcast.bench.kernel import GradientDescent, training_step_counts
from flopcast.bench.roofline import model_seconds
from flopcast.reports.bench import VerifyRun

# With unit-variance independent features XᵀX/m ≈ I; for m ≥ 1.25·d its eigenvalues lie below
# (1 + √(d/m))² ≤ 3.59 (Marchenko–Pastur edge), so α = 0.5 < 2/3.59 makes every step a descent.
VERIFY_LEARNING_RATE = 0.5
UNIT_VARIANCE_HALF_WIDTH = math.sqrt(3.0)  # uniform on [−a, a) has variance a²/3
NOISE_STD = 0.1
# DESIGN §8 "local loop" bar: predicted vs measured GD training time within ±15 %.
VERIFY_TARGET_ABS_ERROR = 0.15


def predict_training(
    m: int, d: int, k: int, itemsize: int, steps: int, peak_flops_per_s: float, bandwidth_bytes_per_s: float
) -> tuple[float, float, float]:
    """(seconds, FLOPs, bytes) of ``steps`` training steps on the fitted roofline."""
    flops, bytes_ = training_step_counts(m, d, k, itemsize)
    seconds = float(model_seconds(flops, bytes_, peak_flops_per_s, bandwidth_bytes_per_s)) * steps
    return seconds, float(flops.sum()) * steps, float(bytes_.sum()) * steps


def make_problem(ops, m: int, d: int, k: int, dtype: str):
    """Synthetic data with known weights: returns (X, Y, W_true)."""
    a = UNIT_VARIANCE_HALF_WIDTH
    X = ops.uniform((m, d), dtype, -a, a)
    W_true = ops.uniform((d, k), dtype, -1.0, 1.0)
    ops.scale(W_true, ops.scalar(1.0 / math.sqrt(d), dtype), W_true)
    Y = ops.empty((m, k), dtype)
    ops.matmul(X, W_true, Y)
    noise = ops.uniform((m, k), dtype, -a * NOISE_STD, a * NOISE_STD)
    ops.sub(Y, noise, Y)
    ops.free(noise)
    return X, Y, W_true


def train(ops, X, Y, W_true, steps: int, dtype: str) -> tuple[float, list[float], float, float]:
    """Run ``steps`` GD steps; return (wall seconds, loss before each step, final loss, weight error)."""
    gd = GradientDescent(ops, X, Y.shape[1], dtype, learning_rate=VERIFY_LEARNING_RATE, Y=Y)
    half_over_m = 0.5 / gd.m
    ops.sync()
    start = time.perf_counter()
    sums = [gd.step_with_loss() for _ in range(steps)]
    ops.sync()
    elapsed = time.perf_counter() - start
    losses = [ops.to_float(s) * half_over_m for s in sums]
    final = ops.to_float(gd.step_with_loss()) * half_over_m  # loss at the trained weights (not timed)
    weight_error = ops.relative_error(gd.W, W_true)
    gd.free()
    return elapsed, losses, final, weight_error


def verify_run(
    ops,
    dtype: str,
    regime: str,
    m: int,
    d: int,
    k: int,
    steps: int,
    peak: float,
    bandwidth: float,
    repeats: int = 1,
) -> VerifyRun:
    """Predict, then train and time one linear least-squares model ``repeats`` times from ``W = 0``.

    ``measured_seconds`` is the fastest training — the one least disturbed by other programs, as the
    roofline is fitted on each point's fastest sample; every training's time is kept in ``measured_all``."""
    predicted, flops, bytes_ = predict_training(m, d, k, ops.itemsize(dtype), steps, peak, bandwidth)
    X, Y, W_true = make_problem(ops, m, d, k, dtype)
    times = []
    try:
        for _ in range(max(1, repeats)):
            elapsed, losses, final, weight_error = train(ops, X, Y, W_true, steps, dtype)
            times.append(elapsed)
    finally:
        ops.free(X, Y, W_true)
    measured = min(times)
    initial = losses[0]
    return VerifyRun(
        dtype=dtype,
        regime=regime,
        m=m,
        d=d,
        k=k,
        steps=steps,
        flops=flops,
        bytes=bytes_,
        predicted_seconds=predicted,
        measured_seconds=measured,
        measured_all=times,
        error=predicted / measured - 1.0,
        loss_initial=initial,
        loss_final=final,
        loss_fell=bool(math.isfinite(final) and final < initial),
        weight_error=weight_error,
    )
