"""Collective-communication time on a link (bandwidth term only; latency is negligible at these sizes).

Ring algorithms (Patarasuk & Yuan 2009; NCCL's nccl-tests doc/PERFORMANCE.md "bus bandwidth"):
  all-reduce          2·(n−1)/n · bytes / bw
  reduce-scatter      (n−1)/n · bytes / bw
  all-gather          (n−1)/n · bytes / bw
  point-to-point      bytes / bw
``bytes`` is the size of the full buffer on each rank; ``bw`` the per-device, per-direction link bandwidth.
A group of size 1 communicates nothing.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike


def _ring_factor(n: ArrayLike) -> np.ndarray:
    n = np.asarray(n, dtype=float)
    return np.where(n > 1, (n - 1) / np.maximum(n, 1), 0.0)


def all_reduce_seconds(
    bytes_per_rank: ArrayLike, group_size: ArrayLike, bandwidth_bytes_per_s: ArrayLike
) -> np.ndarray:
    return 2.0 * _ring_factor(group_size) * np.asarray(bytes_per_rank, dtype=float) / bandwidth_bytes_per_s


def reduce_scatter_seconds(
    bytes_per_rank: ArrayLike, group_size: ArrayLike, bandwidth_bytes_per_s: ArrayLike
) -> np.ndarray:
    return _ring_factor(group_size) * np.asarray(bytes_per_rank, dtype=float) / bandwidth_bytes_per_s


def all_gather_seconds(
    bytes_per_rank: ArrayLike, group_size: ArrayLike, bandwidth_bytes_per_s: ArrayLike
) -> np.ndarray:
    return _ring_factor(group_size) * np.asarray(bytes_per_rank, dtype=float) / bandwidth_bytes_per_s


def point_to_point_seconds(bytes_moved: ArrayLike, bandwidth_bytes_per_s: ArrayLike) -> np.ndarray:
    return np.asarray(bytes_moved, dtype=float) / bandwidth_bytes_per_s


def group_bandwidth_bytes_per_s(
    group_span_devices: ArrayLike,
    devices_per_node: ArrayLike,
    intra_node_bandwidth_bytes_per_s: ArrayLike,
    inter_node_bandwidth_bytes_per_s: ArrayLike,
) -> np.ndarray:
    """A group whose members all sit in one node uses the intra-node link; one that spans nodes runs at
    the inter-node bandwidth per device (the slowest hop of the ring)."""
    return np.where(
        np.asarray(group_span_devices) <= np.asarray(devices_per_node),
        intra_node_bandwidth_bytes_per_s,
        inter_node_bandwidth_bytes_per_s,
    )


def ring_bandwidth_bytes_per_s(
    group_size: ArrayLike,
    rank_stride: ArrayLike,
    devices_per_node: ArrayLike,
    intra_node_bandwidth_bytes_per_s: ArrayLike,
    inter_node_bandwidth_bytes_per_s: ArrayLike,
) -> np.ndarray:
    """Per-device bus bandwidth of a ring collective over ``group_size`` devices placed ``rank_stride``
    apart in rank order (tensor parallel: stride 1; data parallel: stride tp).

    Inside one node the ring runs on the intra-node link. Across nodes, NCCL builds one ring per channel
    and routes each channel through a different NIC, so a node's k group members drive k NICs at once:
    the bus bandwidth is k × the per-device inter-node bandwidth, at most the intra-node link (NCCL docs,
    "NCCL_CROSS_NIC" / nccl-tests PERFORMANCE.md: multi-node all-reduce bus bandwidth approaches the
    node's aggregate NIC bandwidth). With one member per node this is the inter-node bandwidth per device.
    """
    n = np.asarray(group_size, dtype=float)
    stride = np.asarray(rank_stride, dtype=float)
    dpn = np.asarray(devices_per_node, dtype=float)
    span = n * stride
    members_per_node = np.clip(np.floor(dpn / stride), 1.0, None)
    members_per_node = np.minimum(members_per_node, n)
    across = np.minimum(members_per_node * inter_node_bandwidth_bytes_per_s, intra_node_bandwidth_bytes_per_s)
    return np.where(span <= dpn, intra_node_bandwidth_bytes_per_s, across)
