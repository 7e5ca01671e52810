"""Storage tiers (``flopcast/data/storage_tiers.yaml``) and the storage block of an estimate (issue 16).

``--storage ID`` names a tier; the block gives the checkpoint's size, its write and load times on that tier, the
Young/Daly interval and its share of wall-clock, the dataset's size and the read rate the run needs, and the
storage and egress cost (formulas: estimator/checkpoint.py). Without a tier the tier-free figures (sizes, read
rate) are still given. With a tier the estimate's wall-clock (and device-hours, cost, energy) uses the tier's
writes, loads and Young/Daly interval in place of reliability.py's pinned allowance (:func:`with_tier_wall_clock`);
without one the pinned allowance the calibration was fitted with stays.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import NamedTuple

from flopcast.errors import InvalidValue, RuntimeFailure, opt

TIERS_FILE = Path(__file__).resolve().parent / "data" / "storage_tiers.yaml"
DEFAULT_KEEP_CHECKPOINTS = 2  # the latest and one before it (a corrupt last write still leaves one)


class StorageRequest(NamedTuple):
    """What the user asked of storage: a tier (None: tier-free figures only), checkpoints kept, a transfer rate."""

    tier: StorageTier | None = None
    keep: int = DEFAULT_KEEP_CHECKPOINTS
    transfer_gbps: float | None = None


def storage_request(storage=None, keep_checkpoints=None, transfer_gbps=None) -> StorageRequest:
    """Parse the storage options (one-line errors for an unknown tier, keep < 1, a rate of 0)."""
    return StorageRequest(
        None if storage is None else get_tier(storage), parse_keep(keep_checkpoints), parse_transfer_gbps(transfer_gbps)
    )


class StorageTier(NamedTuple):
    id: str
    title: str
    write_bytes_per_s_per_node: float | None = None
    read_bytes_per_s_per_node: float | None = None
    bytes_per_s_per_tib: float | None = None
    min_capacity_bytes: float | None = None
    aggregate_bytes_per_s: float | None = None
    usd_per_gb_month: float | None = None
    egress_usd_per_gb: float | None = None
    durable: bool = True
    sources: tuple[str, ...] = ()

    def aggregate(self, stored_bytes: float) -> float | None:
        """The tier's aggregate bandwidth with ``stored_bytes`` on it (capacity-coupled tiers scale with it)."""
        if self.bytes_per_s_per_tib is not None:
            capacity = max(stored_bytes, self.min_capacity_bytes or 0.0)
            return self.bytes_per_s_per_tib * capacity / 2**40
        return self.aggregate_bytes_per_s


_NUMBERS = (
    "write_bytes_per_s_per_node", "read_bytes_per_s_per_node", "bytes_per_s_per_tib", "min_capacity_bytes",
    "aggregate_bytes_per_s", "usd_per_gb_month", "egress_usd_per_gb",
)  # fmt: skip


def _tier(entry: dict) -> StorageTier:
    """One tier from the file (YAML 1.1 reads ``1.2e12`` as text: numbers are converted here)."""
    fields = dict(entry)
    for name in _NUMBERS:
        if fields.get(name) is not None:
            value = float(fields[name])
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"tier {fields.get('id')}: {name} {value} is not a sane quantity")
            fields[name] = value
    fields["sources"] = tuple(fields.get("sources") or ())
    return StorageTier(**fields)


@functools.lru_cache(maxsize=1)
def tiers() -> dict[str, StorageTier]:
    """Every shipped tier by id (the data file is ours: C-accelerated SafeLoader)."""
    import yaml

    try:
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        doc = yaml.load(TIERS_FILE.read_text(encoding="utf-8"), Loader=loader)  # noqa: S506 - a safe loader
        return {str(t["id"]): _tier(t) for t in doc["tiers"]}
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError) as exc:
        raise RuntimeFailure(f"cannot read the storage tiers {TIERS_FILE}: {exc}", hint="reinstall flopcast") from None


def get_tier(name: str) -> StorageTier:
    """The tier ``name``; an unknown one is a one-line error with the closest ids."""
    from flopcast.units import suggest

    known = tiers()
    key = str(name).strip().lower()
    if key in known:
        return known[key]
    close = suggest(key, list(known))
    did = f"did you mean {' or '.join(close)}? " if close else ""
    raise InvalidValue(f"{opt('storage')}: unknown storage tier {name!r}", hint=f"{did}tiers: {', '.join(known)}")


def parse_keep(value) -> int:
    """``--keep-checkpoints``: a positive count (units.parse_int refuses 0 and negatives in one line)."""
    from flopcast.units import parse_int

    return DEFAULT_KEEP_CHECKPOINTS if value is None else parse_int(value, what=opt("keep_checkpoints"))


def parse_transfer_gbps(value) -> float | None:
    if value is None:
        return None
    try:
        rate = float(str(value).strip())
    except ValueError:
        raise InvalidValue(f"{opt('transfer_gbps')}: {value!r} is not a number", hint="e.g. 10 (Gb/s)") from None
    if not math.isfinite(rate) or rate <= 0:
        raise InvalidValue(f"{opt('transfer_gbps')}: {value} moves nothing", hint="give a rate above 0, e.g. 10")
    return rate


def storage_block(*, spec, precision: str, devices: int, devices_per_node: int, tokens: float,
                  tokens_per_second: float, wall_clock_seconds: float, tier: StorageTier | None,
                  keep: int = DEFAULT_KEEP_CHECKPOINTS, transfer_gbps: float | None = None) -> dict:  # fmt: skip
    """The storage figures of one estimate (plain numbers; reports/estimate.Storage validates them)."""
    from flopcast.estimator import checkpoint as ck
    from flopcast.estimator.reliability import CHECKPOINT_WRITE_FRACTION, INTERRUPTIONS_PER_DEVICE_SECOND

    nodes = max(1, math.ceil(devices / max(devices_per_node, 1)))
    full = ck.checkpoint_bytes(spec.params, precision, devices)
    dataset = tokens * ck.token_bytes(spec.vocab)
    out = {
        "tier": None if tier is None else tier.id,
        "checkpoint_bytes": full,
        "checkpoint_bytes_per_device": full / devices,
        "weights_export_bytes": ck.export_bytes(spec.params, "bf16"),
        "dataset_bytes": dataset,
        "raw_text_bytes": tokens * ck.RAW_TEXT_BYTES_PER_TOKEN,
        "dataset_read_bytes_per_s": tokens_per_second * ck.token_bytes(spec.vocab),
        "keep_checkpoints": keep,
        "mtbf_seconds": 1.0 / (INTERRUPTIONS_PER_DEVICE_SECOND * devices),
        "pinned_checkpoint_share": CHECKPOINT_WRITE_FRACTION,
    }
    stored = dataset + keep * full
    if tier is not None:
        aggregate = tier.aggregate(stored)
        write = ck.transfer_seconds(full, nodes, tier.write_bytes_per_s_per_node, aggregate)
        load = ck.transfer_seconds(full, nodes, tier.read_bytes_per_s_per_node, aggregate)
        interval = float(ck.young_daly_interval_seconds(write, out["mtbf_seconds"]))
        read_bandwidth = ck.tier_bandwidth_bytes_per_s(nodes, tier.read_bytes_per_s_per_node, aggregate)
        out.update(
            checkpoint_write_seconds=write,
            checkpoint_load_seconds=load,
            checkpoint_interval_seconds=interval,
            checkpoint_share_of_wall_clock=write / interval if interval > 0 else 0.0,
            # each interruption costs the restart's load plus half an interval of lost work
            interruption_share_of_wall_clock=(load + interval / 2.0) / out["mtbf_seconds"],
            read_bandwidth_bytes_per_s=read_bandwidth if math.isfinite(read_bandwidth) else None,
            stored_bytes=stored,
            storage_usd=None
            if tier.usd_per_gb_month is None
            else float(
                ck.storage_usd(max(stored, tier.min_capacity_bytes or 0.0), wall_clock_seconds, tier.usd_per_gb_month)
            ),  # fmt: skip
            egress_usd=None if tier.egress_usd_per_gb is None else (dataset + full) / 1e9 * tier.egress_usd_per_gb,
            durable=tier.durable,
            sources=list(tier.sources),
        )
    if transfer_gbps is not None:
        out["transfer_seconds"] = (dataset + full) * 8.0 / (transfer_gbps * 1e9)
    return out


# Row fields that scale with the wall-clock (time, device-hours, cost, energy and their P10-P90 ranges).
_WALL_CLOCK_FIELDS = (
    "wall_clock_seconds", "wall_clock_seconds_p10", "wall_clock_seconds_p80", "wall_clock_seconds_p90",
    "device_hours", "device_hours_p10", "device_hours_p80", "device_hours_p90",
    "cost_usd", "cost_usd_p10", "cost_usd_p80", "cost_usd_p90", "energy_kwh", "co2_kg",
)  # fmt: skip


def tier_wall_clock_seconds(training_seconds: float, devices: int, block: dict) -> float:
    """Wall-clock with the tier's own checkpoint figures in place of reliability.py's pinned ones: each
    interruption costs the restart plus the checkpoint's load plus half the Young/Daly interval of lost work,
    and the writes take write/interval of the run; evaluation and data stalls stay as pinned."""
    from flopcast.estimator import reliability as rel

    lost = rel.RESTART_SECONDS + block["checkpoint_load_seconds"] + block["checkpoint_interval_seconds"] / 2.0
    overhead = block["checkpoint_share_of_wall_clock"] + rel.EVALUATION_FRACTION + rel.DATA_STALL_FRACTION
    return float(training_seconds / rel.effective_fraction(devices, lost) * (1.0 + overhead))


def with_tier_wall_clock(row: dict, block: dict, devices: int) -> dict:
    """The estimate row with its wall-clock (and what scales with it) computed from the tier (a tier that
    publishes no bandwidth leaves the row as it is)."""
    if not (math.isfinite(block["checkpoint_load_seconds"]) and math.isfinite(block["checkpoint_interval_seconds"])):
        return row
    scale = tier_wall_clock_seconds(row["training_seconds"], devices, block) / row["wall_clock_seconds"]
    out = dict(row)
    for name in _WALL_CLOCK_FIELDS:
        out[name] = row[name] * scale
    out["reliability_seconds"] = out["wall_clock_seconds"] - row["training_seconds"]
    return out


def storage_warnings(block: dict) -> list[str]:
    """What a planner must hear: the data pipeline bounding the step, a non-durable tier, slow checkpoints."""
    out = []
    read = block.get("read_bandwidth_bytes_per_s")
    if read is not None and block["dataset_read_bytes_per_s"] > read:
        out.append(
            f"storage {block['tier']}: the run reads {block['dataset_read_bytes_per_s'] / 1e9:.3g} GB/s of tokens, "
            f"more than the tier's {read / 1e9:.3g} GB/s: the data pipeline would bound the step"
        )
    if block.get("durable") is False:
        out.append(f"storage {block['tier']}: not durable — a checkpoint is lost with the node that wrote it")
    share = block.get("checkpoint_share_of_wall_clock")
    if share is not None and share > 0.05:
        out.append(f"storage {block['tier']}: checkpoint writes take {share:.0%} of wall-clock at the optimal interval")
    return out
