"""Collective-communication time on a link: a bandwidth term and a latency term.

Bandwidth, ring algorithms (Patarasuk & Yuan 2009; NCCL's nccl-tests doc/PERFORMANCE.md "bus bandwidth"):
  all-reduce          2·(n−1)/n · bytes / bw
  reduce-scatter      (n−1)/n · bytes / bw
  all-gather          (n−1)/n · bytes / bw
  point-to-point      bytes / bw
``bytes`` is the size of the full buffer on each rank; ``bw`` the per-device, per-direction link bandwidth.
A group of size 1 communicates nothing. Training (timing.py) and inference (inference.py) place their groups
with the same :func:`ring_group`, so one rule decides a group's link, bandwidth and latency everywhere.

Latency, NCCL's own cost model (NVIDIA/nccl src/graph/tuning.cc, ``ncclTopoTuneModel``; the Simple protocol
that carries large messages). A ring collective takes ``nsteps`` steps, ``n − 1`` for all-gather and
reduce-scatter and ``2·(n − 1)`` for all-reduce; the steps that cross a node boundary (``N − 1`` resp.
``2·N`` of them on N nodes) pay the network hop latency, the others the NVLink hop latency, on top of a base
latency per collective:

    ring latency  = base + (nsteps − inter steps)·hop_nvlink + inter steps·hop_net        grows ∝ n
    tree latency  = 2·((n/N − 1)·hop_tree_intra + log2(N)·hop_tree_net)                   grows ∝ log N

Small all-reduces take NCCL's LL ("low latency") protocol: 8-byte stores of 4 data + 4 flag bytes that the
receiver polls, so no synchronisation per step but a quarter of the bus bandwidth (tuning.cc: ring LL
``busBw *= 1/4`` for all-reduce; base 6.6 µs, hop 0.6 µs on NVLink and 2.7 µs on the network, the NVLink hop
× 1.8 when the group spans nodes). NCCL's tuner takes the protocol its model says is fastest for the size, so
decode's kilobyte all-reduces pay ~15 µs on 8 NVLink GPUs, not the Simple protocol's 56 µs; training's
megabyte messages stay on Simple (the crossover on 8 GPUs is ~2 MB). LL128 (NVLink only, 120 of 128 bytes)
is not modelled: it lies between the two.

NCCL runs all-reduce as a ring or a (double binary) tree, whichever its model says is faster for the size;
the tree reaches 0.92 of the ring's bus bandwidth and moves 2·bytes per rank (tuning.cc: ``busBw*.92``,
algorithm bandwidth ``busBw·0.5``). All-gather and reduce-scatter are rings only. At a thousand ranks the
ring latency of one collective is milliseconds: this is what makes ZeRO-3's per-layer gathers costly at
large data-parallel degree (timing.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import numpy as np

if TYPE_CHECKING:  # numpy.typing costs ~1 ms of start-up; annotations only
    from numpy.typing import ArrayLike

# NCCL src/graph/tuning.cc (NVIDIA/nccl, 2.18-2.21 era), Simple protocol, microseconds → seconds.
NCCL_RING_BASE_LATENCY_S = 8.4e-6  # baseLat[Ring][Simple]
NCCL_RING_NVLINK_HOP_LATENCY_S = 3.4e-6  # hwLat[NVLink][Ring][Simple]
NCCL_RING_NET_HOP_LATENCY_S = 14.0e-6  # hwLat[Net][Ring][Simple]
NCCL_TREE_HOP_LATENCY_S = 28.0e-6  # hwLat[NVLink and Net][Tree][Simple]
NCCL_LL_RING_BASE_LATENCY_S = 6.6e-6  # baseLat[Ring][LL]
NCCL_LL_RING_NVLINK_HOP_LATENCY_S = 0.6e-6  # hwLat[NVLink][Ring][LL]
NCCL_LL_RING_NET_HOP_LATENCY_S = 2.7e-6  # hwLat[Net][Ring][LL]
NCCL_LL_MULTI_NODE_INTRA_HOP_FACTOR = 1.8  # tuning.cc: intraLat *= 1.8 for LL when nNodes > 1
NCCL_LL_BUS_BANDWIDTH_FRACTION = 0.25  # tuning.cc: ring LL busBw *= 1/4 for all-reduce
NCCL_TREE_BUS_BANDWIDTH_FRACTION = 0.92  # tree busBw = 0.92 × the channels' bandwidth
TREE_BYTES_FACTOR = 2.0  # a tree all-reduce moves 2·bytes per rank (algorithm bandwidth = busBw/2)


class RingGroup(NamedTuple):
    """A communication group per row (ranks, bandwidth, nodes spanned); collectives on it, with latency."""

    size: np.ndarray  # ranks
    bandwidth_bytes_per_s: np.ndarray  # bus bandwidth per device (ring_bandwidth_bytes_per_s)
    nodes: np.ndarray  # nodes the group spans

    @property
    def ring_factor(self) -> np.ndarray:
        """(n − 1)/n: 0 for a group of one."""
        return 1.0 - 1.0 / self.size

    @property
    def gather_latency_s(self) -> np.ndarray:
        """One ring all-gather or reduce-scatter: base + (n − N)·NVLink hop + (N − 1)·network hop."""
        n, nodes = self.size, self.nodes
        return (
            (n > 1) * NCCL_RING_BASE_LATENCY_S
            + n * NCCL_RING_NVLINK_HOP_LATENCY_S
            + nodes * (NCCL_RING_NET_HOP_LATENCY_S - NCCL_RING_NVLINK_HOP_LATENCY_S)
            - NCCL_RING_NET_HOP_LATENCY_S
        )

    def gather_seconds(self, bytes_per_rank: ArrayLike) -> np.ndarray:
        """One all-gather (or reduce-scatter) of a ``bytes_per_rank`` buffer: bandwidth + ring latency."""
        return self.ring_factor * bytes_per_rank / self.bandwidth_bytes_per_s + self.gather_latency_s

    def all_reduce_seconds(self, bytes_per_rank: ArrayLike, measured_latency_s: ArrayLike | None = None) -> np.ndarray:
        """One all-reduce: the fastest of NCCL's ring (Simple or LL protocol) and tree, each with its latency
        (0 for one rank). ``measured_latency_s`` (per row, NaN: none; `bench --collectives`) replaces the
        modelled latency inside one node: the Simple ring's bandwidth term + the measured latency there."""
        n, nodes = self.size, self.nodes
        per_byte = np.asarray(bytes_per_rank, dtype=float) / self.bandwidth_bytes_per_s
        multi = nodes > 1
        inter_steps = 2.0 * multi * np.minimum(nodes, n - 1.0)  # NCCL: 2·N steps cross the network
        intra_steps = 2.0 * (n - 1.0) - inter_steps
        ring_bandwidth = 2.0 * (1.0 - 1.0 / n) * per_byte
        ring = (
            ring_bandwidth
            + (n > 1) * NCCL_RING_BASE_LATENCY_S
            + 2.0 * (n - 1.0) * NCCL_RING_NVLINK_HOP_LATENCY_S
            + inter_steps * (NCCL_RING_NET_HOP_LATENCY_S - NCCL_RING_NVLINK_HOP_LATENCY_S)
        )
        ll_hop = NCCL_LL_RING_NVLINK_HOP_LATENCY_S * np.where(multi, NCCL_LL_MULTI_NODE_INTRA_HOP_FACTOR, 1.0)
        ring_ll = (
            ring_bandwidth / NCCL_LL_BUS_BANDWIDTH_FRACTION
            + (n > 1) * NCCL_LL_RING_BASE_LATENCY_S
            + intra_steps * ll_hop
            + inter_steps * NCCL_LL_RING_NET_HOP_LATENCY_S
        )
        ring = np.minimum(ring, ring_ll)
        if measured_latency_s is not None:
            measured = np.asarray(measured_latency_s, dtype=float)
            if np.any(np.isfinite(measured)):
                applies = (n > 1) & ~multi & np.isfinite(measured)
                ring = np.where(applies, ring_bandwidth + np.nan_to_num(measured), ring)
        # Inside one node the ring is always faster; across nodes the tree's latency grows with log2(N)
        # (computed on those rows only: the logarithm is the costliest operation here).
        if not np.any(multi):
            return ring
        ring, n, nodes, per_byte, multi = np.broadcast_arrays(ring, n, nodes, per_byte, multi)
        out = ring.copy()
        rows = np.flatnonzero(multi.ravel())
        n_r, nodes_r = n.ravel()[rows], nodes.ravel()[rows]
        tree = (2.0 * NCCL_TREE_HOP_LATENCY_S) * (n_r / nodes_r - 1.0 + np.floor(np.log2(nodes_r))) + (
            TREE_BYTES_FACTOR / NCCL_TREE_BUS_BANDWIDTH_FRACTION
        ) * per_byte.ravel()[rows]
        out.ravel()[rows] = np.minimum(ring.ravel()[rows], tree)
        return out


def ring_group(
    group_size: ArrayLike,
    rank_stride: ArrayLike,
    devices_per_node: ArrayLike,
    intra_node_bandwidth_bytes_per_s: ArrayLike,
    inter_node_bandwidth_bytes_per_s: ArrayLike,
) -> RingGroup:
    """The group of ``group_size`` ranks placed ``rank_stride`` apart: its bandwidth (see
    :func:`ring_bandwidth_bytes_per_s`), the nodes it spans, and collectives with NCCL's latencies."""
    n = np.asarray(group_size, dtype=float)
    per_node = np.asarray(devices_per_node, dtype=float) / rank_stride  # group members a node can hold
    members = np.minimum(np.maximum(np.floor(per_node), 1.0), n)
    within = n <= per_node  # n·stride ≤ devices per node
    bandwidth = np.where(
        within,
        intra_node_bandwidth_bytes_per_s,
        np.minimum(members * inter_node_bandwidth_bytes_per_s, intra_node_bandwidth_bytes_per_s),
    )
    nodes = np.where(within, 1.0, np.ceil(n / members))
    return RingGroup(n, bandwidth, nodes)


def point_to_point_seconds(
    bytes_moved: ArrayLike, bandwidth_bytes_per_s: ArrayLike, across_nodes: ArrayLike | None = None
) -> np.ndarray:
    """``bytes / bw``; with ``across_nodes`` (bool per row) plus one ring step's latency on that link."""
    seconds = np.asarray(bytes_moved, dtype=float) / bandwidth_bytes_per_s
    if across_nodes is None:
        return seconds
    hop = np.where(across_nodes, NCCL_RING_NET_HOP_LATENCY_S, NCCL_RING_NVLINK_HOP_LATENCY_S)
    return seconds + NCCL_RING_BASE_LATENCY_S + hop


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
    return ring_group(
        group_size, rank_stride, devices_per_node, intra_node_bandwidth_bytes_per_s, inter_node_bandwidth_bytes_per_s
    ).bandwidth_bytes_per_s


# --- measured latency (`flopcast bench --collectives`) ------------------------------------------------------
# A profile may carry ``collective_latency_s``: the launch latency of one collective measured on that hardware
# (the t(0) of the fit t = latency + factor·bytes / busbw, nccl-tests PERFORMANCE.md "Time"). It is measured
# inside one node, so it stands in for NCCL's modelled intra-node latency only; a group that spans nodes keeps
# the model (its network hops were not measured).
# All-reduces take the measured latency in all_reduce_seconds (they choose between protocols); the ring gathers
# below are shifted to it.
LATENCY_COLLECTIVES = ("all-gather", "reduce-scatter")


def measured_latency_s(profile) -> float:
    """A profile's measured per-collective latency in seconds (``collective_latency_s``), NaN when it has none
    (a datasheet profile). Duck-typed: the core imports nothing above it."""
    value = getattr(profile, "collective_latency_s", None)
    return float(value) if value is not None else float("nan")


def modelled_intra_node_latency_s(group: RingGroup, collective: str) -> np.ndarray:
    """NCCL's Simple-protocol latency (tuning.cc, see above) of one all-gather or reduce-scatter on ``group``
    when it stays in one node: base + (n − 1)·hop; 0 for a group of one."""
    if collective not in LATENCY_COLLECTIVES:
        raise ValueError(f"unknown collective {collective!r}: one of {', '.join(LATENCY_COLLECTIVES)}")
    n = np.asarray(group.size, dtype=float)
    return (n > 1) * (NCCL_RING_BASE_LATENCY_S + (n - 1.0) * NCCL_RING_NVLINK_HOP_LATENCY_S)


def measured_latency_shift_s(group: RingGroup, measured_latency_s_: ArrayLike, collective: str) -> np.ndarray:
    """Seconds to add to one ``collective`` of ``group`` (``gather_seconds`` or ``gather_latency_s``; an
    all-reduce takes the measured latency itself, ``all_reduce_seconds(bytes, measured)``, because it chooses
    between protocols) so that its latency is the measured one: measured − modelled intra-node latency on
    rows with a measured latency (not NaN) whose group has two or more ranks in one node; 0 on every other row.
    The result may be negative (a measured latency below NCCL's model)."""
    measured = np.asarray(measured_latency_s_, dtype=float)
    if not np.any(np.isfinite(measured)):  # datasheet profiles only: nothing to shift (the common, fast case)
        return np.zeros(())
    modelled = modelled_intra_node_latency_s(group, collective)
    applies = (np.asarray(group.size) > 1) & (np.asarray(group.nodes) <= 1) & np.isfinite(measured)
    return np.where(applies, np.nan_to_num(measured) - modelled, 0.0)
