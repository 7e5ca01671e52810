"""Measured models in the core: CNNs, vision transformers, recommendation models, any PyTorch model.

A measured model (``flopcast.measured_models.MeasuredModel``) is described by what was counted, not by a
transformer's shape: its parameters (dense ones, replicated over the data-parallel devices and all-reduced, and
embedding-table ones, sharded over them), its forward FLOPs per sample, the activation bytes a sample leaves for
the backward and the embedding bytes a sample looks up. Its ModelArrays row has ``measured`` = 1, one "layer"
holding the dense parameters, no heads, vocabulary or head, and ``seq_len`` 1: a sample is its token, so every
per-token quantity of the core is per sample. Transformer rows have ``measured`` = 0 and every function here
returns their transformer value unchanged (and costs nothing when no row is measured).

Terms (each replaces its transformer counterpart on measured rows only):
  FLOPs        training = forward + backward = 3 × the forward's FLOPs (the backward's two matmuls per forward
               matmul, gradients of inputs and of weights: Kaplan et al. 2020 Sec. 2.1, the 6 = 3 × 2 of 6·N)
  activations  the stored bytes per sample, measured at 2 B per element, scaled to the precision's element
  tables       4-byte fp32 rows with a fused row-wise AdaGrad update in the backward (FBGEMM's
               ``SplitTableBatchedEmbeddingBagsCodegen`` with ``EmbOptimType.EXACT_ROWWISE_ADAGRAD``, TorchRec's
               default for DLRM): no dense gradient and one fp32 state per row (< 1% of a 128-wide row, left
               out); sharded over the dp devices (Naumov et al. 2019 Sec. 4: model-parallel embeddings,
               data-parallel MLPs)
  compute      one roofline of 3 × forward FLOPs against the dense weights read once per pass, at the GEMM
               efficiency of ``rows`` = samples × forward FLOPs / (2 × dense parameters) per micro-batch (how
               many rows each weight multiplies: ~160 for ResNet-50 at 224², 1 for an MLP; the layer widths
               are not measured, so the width term is taken as large); plus the memory-bound passes over the
               stored activations (``memory_passes``, as for a transformer's elementwise ops) and the table
               rows read in the forward and read + written by the fused update (3 passes of 4-byte rows)
  all-to-all   with the tables sharded over dp > 1 devices, every micro-batch exchanges the looked-up
               embeddings in the forward and their gradients in the backward: two all-to-alls of the
               micro-batch's lookups (16-bit) over the dp group (Naumov et al. 2019 Sec. 4, Fig. 3; Mudigere et
               al. 2022 "High-performance, distributed training of large-scale DLRMs" Sec. 3), on the critical
               path (the top MLP waits for them), reported in the ep_comm slot (the core's all-to-all term)
The data-parallel all-reduce of the dense gradients and the optimizer step are the transformer's
(estimator/timing.py) over the dense parameters.
"""

from __future__ import annotations

import numpy as np

MEASURED_ELEMENT_BYTES = 2.0  # activations and lookups are measured at 2 B per element (torch_model.py)
TABLE_BYTES_PER_PARAM = 4.0  # fp32 embedding rows (module docstring)
TABLE_TRAFFIC_PASSES = 3.0  # forward read, fused update's read and write
EMBEDDING_ALL_TO_ALLS_PER_MICRO_BATCH = 2  # looked-up embeddings forward, their gradients backward


def any_measured(m) -> bool:
    return bool(np.any(np.asarray(m.measured) > 0))


def training_flops_per_sample(m, transformer):
    """Model FLOPs per token (sample) of measured rows: 3 × forward; ``transformer`` elsewhere."""
    if not any_measured(m):
        return transformer
    from flopcast.estimator.flops import TRAINING_PASSES

    return np.where(m.measured > 0, TRAINING_PASSES * m.forward_flops_per_sample, transformer)


def stored_bytes_per_sample(m, element_bytes: float, transformer):
    """What a measured row keeps for the backward per sample, at the precision's element size."""
    if not any_measured(m):
        return transformer
    return np.where(
        m.measured > 0, m.activation_bytes_per_sample * (element_bytes / MEASURED_ELEMENT_BYTES), transformer
    )


def table_bytes_per_device(m, dp) -> np.ndarray | float:
    """Embedding-table bytes on each device, the tables sharded over the dp devices (0 for a transformer)."""
    if not any_measured(m):
        return 0.0
    return np.where(m.measured > 0, TABLE_BYTES_PER_PARAM * m.embedding_table_params / dp, 0.0)


def _rows_per_weight(m, samples):
    dense = np.maximum(m.params - m.embedding_table_params, 1.0)
    return samples * np.maximum(m.forward_flops_per_sample / (2.0 * dense), 1.0)


def stage_seconds(m, hw, lay, params, element_bytes: float, stage_compute, ep_seconds, eta):
    """(stage compute, all-to-all, GEMM efficiency) per micro-batch, measured rows replacing the transformer's."""
    if not any_measured(m):
        return stage_compute, ep_seconds, eta
    from flopcast.estimator.efficiency import gemm_efficiency
    from flopcast.estimator.experts import all_to_all_seconds
    from flopcast.estimator.flops import TRAINING_PASSES
    from flopcast.estimator.roofline import roofline_seconds

    samples = lay.micro_batch
    dense = m.params - m.embedding_table_params
    rows = _rows_per_weight(m, samples)
    measured_eta = gemm_efficiency(hw.gemm_ceiling, np.inf, rows, params.gemm_half_width)
    flops = TRAINING_PASSES * m.forward_flops_per_sample * samples
    matmul = roofline_seconds(
        flops,
        element_bytes * dense * TRAINING_PASSES,
        hw.peak_flops_per_s,
        hw.memory_bandwidth_bytes_per_s,
        measured_eta,
    )
    scale = element_bytes / MEASURED_ELEMENT_BYTES
    activations = params.memory_passes * m.activation_bytes_per_sample * scale * samples
    rows_read = TABLE_TRAFFIC_PASSES * m.lookup_bytes_per_sample * (TABLE_BYTES_PER_PARAM / MEASURED_ELEMENT_BYTES)
    memory = (activations + rows_read * samples) / hw.memory_bandwidth_bytes_per_s
    sharded = (m.embedding_table_params > 0) & (lay.dp > 1)
    exchange = EMBEDDING_ALL_TO_ALLS_PER_MICRO_BATCH * all_to_all_seconds(
        m.lookup_bytes_per_sample * samples,
        lay.dp,
        lay.tp,
        hw.devices_per_node,
        hw.intra_node_bandwidth_bytes_per_s,
        hw.inter_node_bandwidth_bytes_per_s,
    )
    on = m.measured > 0
    return (
        np.where(on, matmul + memory, stage_compute),
        np.where(on, np.where(sharded, exchange, 0.0), ep_seconds),
        np.where(on, measured_eta, eta),
    )
