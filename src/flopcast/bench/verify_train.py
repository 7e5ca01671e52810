"""Predict, then measure: a real PyTorch transformer's peak memory and step time against flopcast's estimate.

``flopcast bench --verify-train`` takes the model the user asks about, scales it to the local device
(:func:`scaled_shape`: the same head, GQA and FFN ratios in Llama form, fewer and narrower layers, a shorter
vocabulary and sequence, until the predicted peak and the FLOPs of a step fit the budgets below), predicts
the peak allocated bytes and, given a hardware profile, the step time with the estimator core (the same
``flopcast.estimate`` a user runs), then trains the model a few steps under every recompute mode
(bench/transformer.py) and reports predicted vs measured. PyTorch is the optional extra ``flopcast[torch]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from flopcast.errors import FlopcastError, InvalidValue, opt

# DESIGN §8 / issue 13: the verify's memory prediction within ±10% for every recompute mode.
VERIFY_TRAIN_TARGET_ABS_ERROR = 0.10
# Budgets of the scaled model, so that a verify takes seconds: its predicted peak allocation (and at most
# this share of the memory the device has free) and the FLOPs of one training step.
VERIFY_TRAIN_MEMORY_BUDGET_BYTES = 1.0e9
VERIFY_TRAIN_FREE_MEMORY_SHARE = 0.5
VERIFY_TRAIN_STEP_FLOPS_BUDGET = {"cpu": 2.0e11, "cuda": 2.0e13}
VERIFY_TRAIN_MAX_LAYERS = 4
VERIFY_TRAIN_MIN_SEQ_LEN = 128
VERIFY_TRAIN_MIN_VOCAB = 256
VERIFY_TRAIN_MAX_SCALE = 1024
RECOMPUTE_MODES = ("none", "selective", "op", "attention", "full")
TORCH_MISSING = 'bench --verify-train needs PyTorch: pip install "flopcast[torch]"'


@dataclass(frozen=True)
class VerifyPlan:
    shape: object  # bench.transformer.Shape
    scale: int
    micro_batch: int
    precision: str
    grad_dtype: str


def _shape_at(spec, scale: int, layers_cap: int):
    """``spec`` with its width divided by about ``scale``: heads and head width each by √scale (the GQA ratio
    and ffn/d kept), the vocabulary and the sequence by ``scale`` (within their floors)."""
    from flopcast.bench.transformer import Shape

    root = math.sqrt(scale)
    heads = max(2, round(spec.heads / root))
    kv = max(1, round(spec.n_kv_heads * heads / spec.heads))
    while heads % kv:
        kv -= 1
    head_dim = max(16, round(spec.attn_width / spec.heads / root / 2) * 2)
    d = heads * head_dim
    return Shape(
        layers=min(spec.layers, layers_cap),
        d_model=d,
        heads=heads,
        kv_heads=kv,
        ffn=max(8, round(spec.ffn_size * d / spec.d_model / 8) * 8),
        vocab=max(VERIFY_TRAIN_MIN_VOCAB, spec.vocab // scale),
        seq_len=max(VERIFY_TRAIN_MIN_SEQ_LEN, spec.seq_len // scale),
    )


def architecture(shape) -> dict:
    """flopcast's architecture keywords for the transformer bench/transformer.py builds."""
    return dict(
        layers=shape.layers, d_model=shape.d_model, heads=shape.heads, kv_heads=shape.kv_heads, ffn=shape.ffn,
        vocab=shape.vocab, seq_len=shape.seq_len, gated_ffn=True,
    )  # fmt: skip


def predict(shape, *, recompute: str, micro_batch: int, precision: str, grad_dtype: str, hardware=None, profiles=None):
    """flopcast's estimate of one training step of ``shape`` on one device (an EstimateReport)."""
    from flopcast.api import estimate

    return estimate(
        tokens=shape.seq_len * micro_batch, hardware=hardware or _memory_only_hardware(precision), devices=1,
        precision=precision, grad_dtype=grad_dtype, micro_batch=micro_batch, global_batch=micro_batch,
        recompute=recompute, profiles=profiles, memory_headroom=0, **architecture(shape),
    )  # fmt: skip


def _memory_only_hardware(precision: str) -> str:
    """A shipped profile with a peak in ``precision``: the allocated bytes do not depend on the device."""
    return "epyc-9654" if precision in ("fp32", "tf32") else "h100-80gb"


def scaled_shape(spec, *, device: str, free_bytes: float | None, precision: str, grad_dtype: str, scale=None):
    """The :class:`VerifyPlan` for ``spec``: the smallest power-of-two scale-down (or the given ``scale``) whose
    predicted peak allocation fits the memory budget and whose step fits the FLOP budget."""
    budget = VERIFY_TRAIN_MEMORY_BUDGET_BYTES if device == "cpu" else math.inf
    if free_bytes:
        budget = min(budget, VERIFY_TRAIN_FREE_MEMORY_SHARE * free_bytes)
    flops_budget = VERIFY_TRAIN_STEP_FLOPS_BUDGET.get(device, VERIFY_TRAIN_STEP_FLOPS_BUDGET["cpu"])
    scales = [scale] if scale is not None else [2**i for i in range(int(math.log2(VERIFY_TRAIN_MAX_SCALE)) + 1)]
    for k in scales:
        shape = _shape_at(spec, k, VERIFY_TRAIN_MAX_LAYERS if scale is None else spec.layers)
        r = predict(shape, recompute="none", micro_batch=1, precision=precision, grad_dtype=grad_dtype)
        step_flops = r.flops.hardware_per_token * shape.seq_len
        if r.memory.allocated_bytes <= budget and (scale is not None or step_flops <= flops_budget):
            return VerifyPlan(shape, k, 1, precision, grad_dtype)
        if scale is not None:
            largest = _largest_fitting_scale(spec, budget, precision, grad_dtype)
            hint = f"the largest that fits is {opt('verify_scale')} {largest}" if largest else "choose a smaller model"
            raise InvalidValue(
                f"{spec.name} at {opt('verify_scale')} {scale} needs {r.memory.allocated_bytes / 1e9:.2f} GB on "
                f"this {device}, more than the {budget / 1e9:.2f} GB the verify may use",
                hint=hint,
            )
    raise InvalidValue(
        f"{spec.name} does not fit this {device} even scaled down {scales[-1]}x", hint="choose a smaller model"
    )


def _largest_fitting_scale(spec, budget: float, precision: str, grad_dtype: str) -> int | None:
    """The smallest scale-down (all layers kept) whose predicted peak fits ``budget``: the largest model."""
    for k in (2**i for i in range(1, int(math.log2(VERIFY_TRAIN_MAX_SCALE)) + 1)):
        shape = _shape_at(spec, k, spec.layers)
        r = predict(shape, recompute="none", micro_batch=1, precision=precision, grad_dtype=grad_dtype)
        if r.memory.allocated_bytes <= budget:
            return k
    return None


def run_verify_train(plan: VerifyPlan, *, device: str, steps: int, modes=RECOMPUTE_MODES, hardware=None, profiles=None):
    """Measure every mode; returns the report rows (reports.bench_train.TrainVerifyRow)."""
    from flopcast.bench.transformer import measure, torch_available
    from flopcast.reports.bench_train import TrainVerifyRow

    if not torch_available():
        raise FlopcastError(TORCH_MISSING)
    rows = []
    for mode in modes:
        r = predict(
            plan.shape, recompute=mode, micro_batch=plan.micro_batch, precision=plan.precision,
            grad_dtype=plan.grad_dtype, hardware=hardware, profiles=profiles,
        )  # fmt: skip
        m = measure(
            plan.shape, precision=plan.precision, grad_dtype=plan.grad_dtype, recompute=mode,
            micro_batch=plan.micro_batch, steps=steps, device=device,
        )  # fmt: skip
        predicted_step = r.time.step_seconds if hardware is not None else None
        rows.append(
            TrainVerifyRow(
                recompute=mode,
                params=m.params,
                predicted_allocated_bytes=r.memory.allocated_bytes,
                measured_peak_bytes=m.peak_bytes,
                memory_error=r.memory.allocated_bytes / m.peak_bytes - 1.0,
                peak_moment=r.memory.peak_moment,
                predicted_step_seconds=predicted_step,
                measured_step_seconds=m.step_seconds,
                step_error=None if predicted_step is None else predicted_step / m.step_seconds - 1.0,
            )
        )
    return rows
