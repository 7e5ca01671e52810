"""Checkpoints and the dataset on storage: sizes, write and load times, the optimal interval, cost (DESIGN §4).

Checkpoint (what a restart needs): the 16-bit weights and the optimizer's fp32 master weights, momentum and
variance — 2 + 12 = 14 bytes per parameter for mixed-precision Adam (Rajbhandari et al. 2020, ZeRO Sec. 3.1:
the model states less the gradients, which a restart recomputes); fp32 training keeps 4 + 8 = 12. Gradients are
not saved. Each rank also saves its RNG and data-loader state, an allowance per rank below. Megatron-LM's
distributed checkpoints and PyTorch DCP have every rank write its own shard in parallel, so a checkpoint takes
``bytes / min(nodes × per-node bandwidth, the tier's aggregate)``. A weights-only export is the parameters in the
dtype asked.

Interval: Young (1974) and Daly (2006): the checkpoint interval that minimises lost time is
``sqrt(2 · write time · MTBF)``, the job's MTBF being 1 / (interruptions per device-second × devices) with the
rate of estimator/reliability.py (Llama 3's). The share of the run spent writing is then write / interval.

Dataset: Megatron-LM's indexed dataset stores token ids in the smallest integer type that holds the vocabulary
(``megatron/core/datasets/indexed_dataset.py``, ``DType.optimal_dtype``: uint16 below 65,500 ids, else int32):
2 or 4 bytes per token; raw English text is about 4 bytes (characters) per token (OpenAI tokenizer guide: "one
token generally corresponds to ~4 characters of text").
"""

from __future__ import annotations

import numpy as np

CHECKPOINT_BYTES_PER_PARAM_MIXED = 2.0 + 12.0  # 16-bit weights + fp32 master, m, v
CHECKPOINT_BYTES_PER_PARAM_FP32 = 4.0 + 8.0  # fp32 weights + m, v
# RNG states (CPU and CUDA generators), the data loader's position and the scheduler: kilobytes to a megabyte
# per rank (Llama 3 reports per-GPU checkpoint shards of 1 MB to 4 GB, Dubey et al. 2024 Sec. 3.3.4).
RANK_STATE_BYTES = 1.0e6
EXPORT_BYTES_PER_PARAM = {"fp32": 4.0, "bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "int8": 1.0, "int4": 0.5}
TOKEN_ID_BYTES_SMALL_VOCAB = 2.0  # uint16
TOKEN_ID_BYTES = 4.0  # int32
SMALL_VOCAB_LIMIT = 65_500  # Megatron's DType.optimal_dtype threshold
RAW_TEXT_BYTES_PER_TOKEN = 4.0
SECONDS_PER_MONTH = 30.4375 * 86_400.0  # a Gregorian month: 365.25 / 12 days


def checkpoint_bytes(params: float, precision: str, devices: int) -> float:
    """Bytes of one full training checkpoint (all ranks together)."""
    per_param = CHECKPOINT_BYTES_PER_PARAM_FP32 if precision in ("fp32", "tf32") else CHECKPOINT_BYTES_PER_PARAM_MIXED
    if precision == "fp64":
        per_param = 2 * CHECKPOINT_BYTES_PER_PARAM_FP32
    return params * per_param + RANK_STATE_BYTES * devices


def export_bytes(params: float, dtype: str = "bf16") -> float:
    """Bytes of a weights-only export in ``dtype``."""
    return params * EXPORT_BYTES_PER_PARAM[dtype]


def tier_bandwidth_bytes_per_s(nodes, per_node_bytes_per_s=None, aggregate_bytes_per_s=None) -> float:
    """What ``nodes`` nodes move at once: their per-node streams, capped by the tier's aggregate; NaN when the
    tier publishes neither."""
    limits = [nodes * per_node_bytes_per_s] if per_node_bytes_per_s is not None else []
    limits += [aggregate_bytes_per_s] if aggregate_bytes_per_s is not None else []
    return float(min(limits)) if limits else float("nan")


def transfer_seconds(total_bytes, nodes, per_node_bytes_per_s=None, aggregate_bytes_per_s=None) -> float:
    """Seconds to move ``total_bytes`` from (or to) ``nodes`` nodes in parallel (:func:`tier_bandwidth_bytes_per_s`)."""
    return float(total_bytes) / tier_bandwidth_bytes_per_s(nodes, per_node_bytes_per_s, aggregate_bytes_per_s)


def young_daly_interval_seconds(write_seconds, mtbf_seconds):
    """``sqrt(2 · write · MTBF)`` (Young 1974; Daly 2006, first-order optimum)."""
    return np.sqrt(2.0 * np.asarray(write_seconds, dtype=float) * mtbf_seconds)


def token_bytes(vocab: int) -> float:
    """Bytes per token of a pre-tokenised dataset (Megatron's indexed dataset)."""
    return TOKEN_ID_BYTES_SMALL_VOCAB if vocab < SMALL_VOCAB_LIMIT else TOKEN_ID_BYTES


def storage_usd(stored_bytes, seconds, usd_per_gb_month):
    """List-price cost of keeping ``stored_bytes`` for ``seconds``."""
    return np.asarray(stored_bytes, dtype=float) / 1e9 * usd_per_gb_month * (np.asarray(seconds) / SECONDS_PER_MONTH)
