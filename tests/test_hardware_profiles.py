"""The shipped hardware profiles against the published figures they were taken from.

Expected values are written out here from shared/data/hardware_specs.csv and cloud_prices.csv (and the
derivations stated next to them), independently of the YAML files.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from flopcast.hardware import PRICE_TIERS_KNOWN, load_catalog, profile_problems, shipped_profiles_dir

REQUIRED_IDS = [
    "v100-16gb", "v100-32gb", "a100-40gb", "a100-80gb", "h100-80gb", "h200-141gb",
    "tpu-v3", "tpu-v4", "tpu-v5e", "tpu-v5p", "epyc-9654",
]  # fmt: skip
GIB = 2**30
GB = 1e9
TERA = 1e12
GBIT = 1e9 / 8  # one gigabit in bytes

SHIPPED_FILES = sorted(shipped_profiles_dir().glob("*.yaml"))


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


def test_every_required_id_ships(catalog):
    assert set(REQUIRED_IDS) <= set(catalog.ids())


@pytest.mark.parametrize("path", SHIPPED_FILES, ids=lambda p: p.stem)
def test_shipped_profile_validates_and_is_sourced(path: Path):
    profile, problems = profile_problems(path)
    assert problems == []
    assert profile is not None
    assert profile.id == path.stem, "a shipped profile is named <id>.yaml"
    assert len(profile.sources) >= 1 and all(s.strip() for s in profile.sources)
    for tier, price in profile.prices_usd_per_device_hour.items():
        assert tier in PRICE_TIERS_KNOWN
        assert price.date.strip() and price.source.strip()


@pytest.mark.parametrize("path", SHIPPED_FILES, ids=lambda p: p.stem)
def test_every_absent_fact_is_declared_missing(path: Path):
    """A null link, power or price is explained under `missing:` (never silently absent)."""
    profile, _ = profile_problems(path)
    missing = " ".join(profile.missing).lower()
    if profile.inter_node_bandwidth_bytes_per_s is None:
        assert "inter-node" in missing
    if profile.intra_node_bandwidth_bytes_per_s is None:
        assert "intra-node" in missing
    if profile.tdp_watts is None:
        assert "tdp" in missing
    if not profile.prices_usd_per_device_hour:
        assert "price" in missing


# The 2:4-sparse headline figures of hardware_specs.csv (dense x 2), per dtype: none may be used as a peak.
SPARSE_HEADLINES = {
    "a100-40gb": {"tf32": 312e12, "bf16": 624e12, "fp16": 624e12, "int8": 1248e12},
    "a100-80gb": {"tf32": 312e12, "bf16": 624e12, "fp16": 624e12, "int8": 1248e12},
    "h100-80gb": {"tf32": 989e12, "bf16": 1979e12, "fp16": 1979e12, "fp8": 3958e12, "int8": 3958e12},
    "h200-141gb": {"tf32": 989e12, "bf16": 1979e12, "fp16": 1979e12, "fp8": 3958e12, "int8": 3958e12},
}


@pytest.mark.parametrize("hardware_id", sorted(SPARSE_HEADLINES))
def test_no_peak_is_a_sparse_headline(catalog, hardware_id):
    peaks = catalog.get(hardware_id).peak_flops_per_s
    for dtype, sparse in SPARSE_HEADLINES[hardware_id].items():
        value = peaks.get(dtype)
        assert value is not None
        assert value == pytest.approx(sparse / 2, rel=1e-3), f"{hardware_id} {dtype} must be the dense peak"
        assert value != pytest.approx(sparse, rel=1e-2)


# (id, field path, expected, how the expected value follows from the CSV)
PUBLISHED = [
    ("h100-80gb", "peak.bf16", 989.4e12, "CSV: 989.4 dense (1,979 sparse)"),
    ("h100-80gb", "peak.fp8", 1978.9e12, "CSV: 1,978.9 dense (3,958 sparse)"),
    ("h100-80gb", "peak.tf32", 494.7e12, "CSV: 494.7 dense"),
    ("h100-80gb", "memory_bandwidth_bytes_per_s", 3350 * GB, "3,350 GB/s"),
    ("h100-80gb", "intra_node_bandwidth_bytes_per_s", 900 * GB / 2, "NVLink 4: 900 GB/s total, halved"),
    ("h100-80gb", "inter_node_bandwidth_bytes_per_s", 400 * GBIT, "one 400 Gb/s NDR NIC per GPU"),
    ("h200-141gb", "memory_bytes", 141 * GB, "141 GB HBM3e"),
    ("h200-141gb", "memory_bandwidth_bytes_per_s", 4800 * GB, "4.8 TB/s"),
    ("h200-141gb", "inter_node_bandwidth_bytes_per_s", 3200 * GBIT / 8, "p5en: 3200 Gb/s per 8-GPU node"),
    ("a100-40gb", "peak.bf16", 312e12, "CSV: 312 dense"),
    ("a100-40gb", "memory_bandwidth_bytes_per_s", 1555 * GB, "1,555 GB/s"),
    ("a100-40gb", "intra_node_bandwidth_bytes_per_s", 600 * GB / 2, "NVLink 3: 600 GB/s total, halved"),
    ("a100-40gb", "inter_node_bandwidth_bytes_per_s", 200 * GBIT, "one 200 Gb/s HDR NIC per GPU"),
    ("a100-80gb", "memory_bandwidth_bytes_per_s", 2039 * GB, "2,039 GB/s"),
    ("v100-16gb", "peak.fp16", 125e12, "tensor fp16 125 TFLOPS"),
    ("v100-16gb", "peak.fp32", 15.7e12, "final datasheet 15.7"),
    ("v100-16gb", "intra_node_bandwidth_bytes_per_s", 300 * GB / 2, "NVLink 2: 300 GB/s total, halved"),
    ("v100-32gb", "memory_bytes", 32 * GB, "32 GB"),
    ("tpu-v3", "memory_bytes", 32 * GIB, "32 GiB"),
    ("tpu-v3", "peak.bf16", 123e12, "123 TFLOP/s bf16"),
    ("tpu-v3", "intra_node_bandwidth_bytes_per_s", 340e12 / 1024, "all-reduce 340 TB/s per 1024-chip pod"),
    ("tpu-v3", "devices_per_node", 1024, "pod"),
    ("tpu-v4", "memory_bytes", 32 * GIB, "32 GiB"),
    ("tpu-v4", "memory_bandwidth_bytes_per_s", 1200 * GB, "1200 GB/s"),
    ("tpu-v4", "intra_node_bandwidth_bytes_per_s", 1.1e15 / 4096, "all-reduce 1.1 PB/s per 4096-chip pod"),
    ("tpu-v4", "devices_per_node", 4096, "pod"),
    ("tpu-v5e", "peak.bf16", 197e12, "197 TFLOP/s bf16"),
    ("tpu-v5e", "intra_node_bandwidth_bytes_per_s", 400 * GB / 2, "ICI 400 GB/s bidirectional per chip"),
    ("tpu-v5e", "inter_node_bandwidth_bytes_per_s", 2 * 100 * GBIT / 8, "2x 100 Gb/s NIC per 8-chip host"),
    ("tpu-v5e", "devices_per_node", 256, "pod"),
    ("tpu-v5p", "peak.bf16", 459e12, "459 TFLOP/s bf16"),
    ("tpu-v5p", "intra_node_bandwidth_bytes_per_s", 4800 * GBIT, "ICI 4800 Gb/s per chip"),
    ("tpu-v5p", "memory_bandwidth_bytes_per_s", 2765 * GB, "2765 GB/s"),
    ("epyc-9654", "peak.fp64", 96 * 2.4e9 * 16, "96 cores x 2.4 GHz x 16 fp64 FLOPs/cycle"),
    ("epyc-9654", "peak.fp32", 96 * 2.4e9 * 32, "96 cores x 2.4 GHz x 32 fp32 FLOPs/cycle"),
    ("epyc-9654", "memory_bandwidth_bytes_per_s", 12 * 4800e6 * 8, "12 channels x 4800 MT/s x 8 B"),
    ("epyc-9654", "devices_per_node", 2, "a 2-socket server"),
    ("epyc-9654", "tdp_watts", 360, "default TDP"),
]


def _field(profile, path: str):
    if path.startswith("peak."):
        return profile.peak_flops_per_s.get(path.removeprefix("peak."))
    return getattr(profile, path)


@pytest.mark.parametrize(("hardware_id", "path", "expected", "why"), PUBLISHED, ids=lambda v: str(v)[:30])
def test_profile_matches_published_figure(catalog, hardware_id, path, expected, why):
    assert _field(catalog.get(hardware_id), path) == pytest.approx(expected, rel=1e-9), why


@pytest.mark.parametrize(
    ("hardware_id", "dtype", "why"),
    [
        ("v100-16gb", "bf16", "Volta has no BF16"),
        ("v100-32gb", "bf16", "Volta has no BF16"),
        ("a100-40gb", "fp8", "Ampere has no FP8"),
        ("a100-80gb", "fp8", "Ampere has no FP8"),
    ],
)
def test_absent_dtypes_stay_empty(catalog, hardware_id, dtype, why):
    assert catalog.get(hardware_id).peak_flops_per_s.get(dtype) is None, why


def test_training_peak_falls_back_to_fp16_then_fp32(catalog):
    assert catalog.get("v100-16gb").peak_flops_per_s.for_training() == ("fp16", 125e12)
    assert catalog.get("h100-80gb").peak_flops_per_s.for_training() == ("bf16", 989.4e12)
    assert catalog.get("epyc-9654").peak_flops_per_s.for_training()[0] == "fp32"


def test_power_uses_measured_mean_only_where_tdp_is_unpublished(catalog):
    assert catalog.get("tpu-v4").tdp_watts is None
    assert catalog.get("tpu-v4").power_watts == 170  # Google docs: mean 170 W
    assert catalog.get("tpu-v3").power_watts == 450  # TDP published (Patterson Table 4) wins over the 220 W mean
    assert catalog.get("tpu-v5e").power_watts is None


@pytest.mark.parametrize(
    ("hardware_id", "tier", "usd", "why"),
    [
        ("h100-80gb", "on-demand", 55.04 / 8, "AWS p5.48xlarge after the June-2025 cut"),
        ("h100-80gb", "spot", 20.787 / 8, "AWS p5.48xlarge spot"),
        ("h100-80gb", "reserved-1y", 23.777 / 8, "AWS p5.48xlarge 1-yr reserved"),
        ("a100-40gb", "capacity-block", 14.75 / 8, "AWS p4d Capacity Block"),
        ("tpu-v5e", "reserved-3y", 0.54, "GCP 3-yr commitment per chip"),
        ("tpu-v5p", "on-demand", 4.20, "GCP per chip-hour"),
    ],
)
def test_prices_are_per_device_hour(catalog, hardware_id, tier, usd, why):
    price = catalog.get(hardware_id).prices_usd_per_device_hour[tier]
    assert price.usd_per_device_hour == pytest.approx(usd, rel=2e-3), why


def test_links_are_slower_between_nodes_than_inside(catalog):
    for pid in catalog.ids():
        p = catalog.get(pid)
        if p.intra_node_bandwidth_bytes_per_s and p.inter_node_bandwidth_bytes_per_s:
            assert p.inter_node_bandwidth_bytes_per_s < p.intra_node_bandwidth_bytes_per_s, pid


@pytest.mark.parametrize(
    ("alias", "hardware_id"),
    [("h100", "h100-80gb"), ("h200", "h200-141gb"), ("v5e", "tpu-v5e"), ("v5p", "tpu-v5p"), ("tpuv4", "tpu-v4"),
     ("a100-40", "a100-40gb"), ("a100-80", "a100-80gb"), ("v100-32", "v100-32gb"), ("v100-16", "v100-16gb"),
     ("H100", "h100-80gb")],
)  # fmt: skip
def test_aliases_resolve(catalog, alias, hardware_id):
    assert catalog.resolve_id(alias) == hardware_id


def test_shipped_aliases_are_unique_and_never_an_id(catalog):
    owners: dict[str, str] = {}
    for pid in catalog.ids():
        for alias in catalog.get(pid).aliases:
            assert alias not in catalog.entries, alias
            assert alias not in owners, (alias, owners.get(alias), pid)
            owners[alias] = pid
    assert catalog.ambiguous_aliases == {}
    assert "a100" not in owners and "v100" not in owners, "ambiguous between memory sizes"
