"""The planning rule flopcast must beat: ``6·N·D / (0.4·peak)`` device-seconds for a training run.

The rule counts 6 FLOPs per parameter per token (Kaplan et al. 2020, Sec. 2.1: forward 2N, backward 4N)
and assumes the devices sustain 40% of their dense peak, whatever the model, layout, cluster or run; it is
the back-of-the-envelope figure planners reach for, and the baseline issue 20 asks flopcast to beat on the
same runs. Each published target reads it in the target's own unit:

  device_hours       6·N·D / (0.4·peak) / 3600                  (D = the run's tokens)
  step_seconds       6·N·(batch·seq) / (0.4·peak·devices)       (only where the batch is published)
  mfu                0.4
  tflops_per_device  0.4·peak / 10¹²                             (the rule knows no recompute)

N is the model's parameter count (its active parameters for a mixture of experts), peak the device's dense
training peak for the run's precision.
"""

from __future__ import annotations

import numpy as np

RULE_OF_THUMB_MFU = 0.4  # the rule's assumed fraction of the dense peak
RULE_FLOPS_PER_PARAM_PER_TOKEN = 6.0  # Kaplan et al. 2020, Sec. 2.1
SECONDS_PER_HOUR = 3600.0
RULE_TEXT = "6·N·D / (0.4·peak)"


def rule_of_thumb_value(run, peak_flops_per_s: float) -> float | None:
    """What the rule predicts for ``run``'s target, in its unit; None where the run lacks what it needs."""
    model = run.model
    n = float(model.active_params if model.experts > 1 else model.params)
    rate = RULE_OF_THUMB_MFU * peak_flops_per_s  # FLOP/s per device the rule assumes
    if run.target == "device_hours":
        if not run.tokens:
            return None
        return RULE_FLOPS_PER_PARAM_PER_TOKEN * n * run.tokens / rate / SECONDS_PER_HOUR
    if run.target == "step_seconds":
        if not (run.global_batch and run.devices):
            return None
        tokens_per_step = run.global_batch * model.seq_len
        return RULE_FLOPS_PER_PARAM_PER_TOKEN * n * tokens_per_step / (rate * run.devices)
    if run.target == "mfu":
        return RULE_OF_THUMB_MFU
    if run.target == "tflops_per_device":
        return rate / 1e12
    return None


def rule_of_thumb_comparison(rows, runs_by_id: dict, peaks_by_hardware: dict) -> dict:
    """Median |error| of flopcast and of the rule on the same rows: whole runs (device-hours) and every row the
    rule can read. ``rows``: the validate rows (``run_id``, ``predicted``, ``reported``, ``target``)."""
    out = {"rule": RULE_TEXT}
    for name, keep in (("whole_runs", lambda r: r.target == "device_hours"), ("all", lambda r: True)):
        ours, rule = [], []
        for r in rows:
            if not keep(r):
                continue
            value = rule_of_thumb_value(runs_by_id[r.run_id], peaks_by_hardware[r.hardware])
            if value is None:
                continue
            ours.append(abs(r.predicted / r.reported - 1.0))
            rule.append(abs(value / r.reported - 1.0))
        if ours:
            out[name] = {
                "runs": len(ours),
                "flopcast_median_abs_error": float(np.median(ours)),
                "rule_median_abs_error": float(np.median(rule)),
                "flopcast_p90_abs_error": float(np.quantile(ours, 0.9)),
                "rule_p90_abs_error": float(np.quantile(rule, 0.9)),
            }
    return out
