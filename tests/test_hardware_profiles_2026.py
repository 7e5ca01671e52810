"""The hardware of 2026 (issue 15, item 1): each new profile validates and matches its datasheet.

The expected figures are written out here from the vendor datasheets and product pages named in the comments,
independently of the YAML files: where a datasheet prints the 2:4-sparse headline, the literal is that headline
and the test halves it, so a profile that copied the headline fails.
"""

from __future__ import annotations

import json

import pytest

from flopcast.estimator.efficiency import EfficiencyParams
from flopcast.hardware import load_catalog, profile_problems, shipped_profiles_dir

GB = 1e9
GIB = 2**30
TERA = 1e12
PETA = 1e15
GBIT = 1e9 / 8  # one gigabit in bytes

NEW_IDS = [
    "b200-180gb", "gb200-nvl72", "h800-80gb", "h20-96gb", "l40s-48gb", "rtx4090-24gb",
    "mi300x-192gb", "mi325x-256gb", "mi355x-288gb", "gaudi3-128gb", "tpu-v6e", "tpu7x", "trainium2",
    "jetson-agx-orin-64gb", "m2-ultra-192gb", "m4-max-128gb", "xeon-8592plus",
]  # fmt: skip


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


@pytest.mark.parametrize("hardware_id", NEW_IDS)
def test_new_profile_ships_and_validates(hardware_id):
    path = shipped_profiles_dir() / f"{hardware_id}.yaml"
    profile, problems = profile_problems(path)
    assert problems == []
    assert profile is not None and profile.id == hardware_id
    assert profile.family, "every new profile names its family"
    assert len(profile.sources) >= 2


# (id, bf16 dense FLOP/s, memory bytes, memory bandwidth B/s, where the datasheet says so)
DATASHEET = [
    # NVIDIA HGX B200 table: FP16/BF16 36 PFLOPS* per 8 GPUs (* = with sparsity); DGX B200: 1,440 GB, 64 TB/s per 8
    ("b200-180gb", 36 * PETA / 8 / 2, 1440 * GB / 8, 64e12 / 8, "HGX/DGX B200"),
    # NVIDIA GB200 NVL72 table: FP16/BF16 360 PFLOPS* per 72 GPUs; up to 13.4 TB HBM3e | 576 TB/s per rack
    ("gb200-nvl72", 360 * PETA / 72 / 2, 186 * GB, 576e12 / 72, "GB200 NVL72"),
    # NVIDIA H800 SXM: BF16 1,979 TFLOPS*; 80 GB HBM3, 3.35 TB/s
    ("h800-80gb", 1978.9 * TERA / 2, 80 * GB, 3350 * GB, "H800 SXM"),
    # NVIDIA H20 (secondary restatements): FP16/BF16 148 TFLOPS dense; 96 GB HBM3, 4.0 TB/s
    ("h20-96gb", 148 * TERA, 96 * GB, 4000 * GB, "H20"),
    # NVIDIA L40S datasheet: BF16 362.05 | 733*; 48 GB GDDR6, 864 GB/s
    ("l40s-48gb", 733 * TERA / 2, 48 * GB, 864 * GB, "L40S datasheet (733 sparse -> 366.5; dense column 362.05)"),
    # NVIDIA Ada whitepaper, RTX 4090: BF16 (FP32 accumulate) 330.4 TFLOPS with sparsity; 24 GB, 1,008 GB/s
    ("rtx4090-24gb", 330.4 * TERA / 2, 24 * GB, 1008 * GB, "Ada whitepaper"),
    # AMD MI300X data sheet: BF16 2,614.9 TFLOPS with sparsity (1,307.4 dense); 192 GB HBM3, 5.3 TB/s
    ("mi300x-192gb", 2614.9 * TERA / 2, 192 * GB, 5300 * GB, "MI300X data sheet"),
    # AMD MI325X: BF16 1,307.4 dense (compute as MI300X); 256 GB HBM3E, 6 TB/s
    ("mi325x-256gb", 1307.4 * TERA, 256 * GB, 6000 * GB, "MI325X data sheet"),
    # AMD MI355X: FP16/BF16 5.0 PFLOPS with sparsity (2.5 dense); 288 GB HBM3E, 8 TB/s
    ("mi355x-288gb", 5.0 * PETA / 2, 288 * GB, 8000 * GB, "MI355X data sheet"),
    # Intel Gaudi 3 HL-325L product brief: 1,835 TFLOPS BF16 (MME, dense); 128 GB HBM2e, 3.7 TB/s
    ("gaudi3-128gb", 1835 * TERA, 128 * GB, 3700 * GB, "Gaudi 3 product brief"),
    # Google Cloud docs, TPU v6e: 918 TFLOPs bf16, 32 GB HBM, 1638 GBps
    ("tpu-v6e", 918 * TERA, 32 * GB, 1638 * GB, "cloud.google.com/tpu/docs/v6e"),
    # Google Cloud docs, TPU7x: 2307 TFLOPs BF16, 192 GiB HBM, 7380 GBps
    ("tpu7x", 2307 * TERA, 192 * GIB, 7380 * GB, "cloud.google.com/tpu/docs/tpu7x"),
    # AWS Neuron docs, Trainium2: 667 BF16 TFLOPS dense, 96 GiB, 2.9 TB/s
    ("trainium2", 667 * TERA, 96 * GIB, 2900 * GB, "Neuron 'Trainium2 Architecture'"),
    # Jetson AGX Orin brief: GPU 170 sparse INT8 TOPS -> 85 dense -> FP16/BF16 at half: 42.5; 64 GB, 204.8 GB/s
    ("jetson-agx-orin-64gb", 170 * TERA / 2 / 2, 64 * GB, 204.8 * GB, "Jetson AGX Orin technical brief (derived)"),
]


@pytest.mark.parametrize(("hardware_id", "bf16", "memory", "bandwidth", "where"), DATASHEET, ids=lambda v: str(v)[:24])
def test_profile_matches_its_datasheet(catalog, hardware_id, bf16, memory, bandwidth, where):
    p = catalog.get(hardware_id)
    # 1% on the peak: a sparse-halved headline (733/2 = 366.5) and the dense column (362.05) differ by rounding only
    assert p.peak_flops_per_s.bf16 == pytest.approx(bf16, rel=0.015), where
    assert p.memory_bytes == pytest.approx(memory, rel=0.005), where
    assert p.memory_bandwidth_bytes_per_s == pytest.approx(bandwidth, rel=1e-3), where


def test_xeon_peaks_are_derived_and_plan_in_fp32(catalog):
    p = catalog.get("xeon-8592plus")
    # Intel ARK: 64 cores, 1.9 GHz base, 2 AVX-512 FMA units (32 fp64 / 64 fp32 FLOPs per cycle), 8 x DDR5-5600, 350 W
    assert p.peak_flops_per_s.fp64 == pytest.approx(64 * 1.9e9 * 32)
    assert p.peak_flops_per_s.for_training() == ("fp32", pytest.approx(64 * 1.9e9 * 64))
    assert p.memory_bandwidth_bytes_per_s == pytest.approx(8 * 5600e6 * 8)
    assert (p.devices_per_node, p.tdp_watts) == (2, 350)


# Apple publishes no FLOP/s: derived from GPU cores x 128 FP32 ALUs x 2 x clock (secondary clocks), FP16 = FP32 rate.
APPLE = [
    ("m2-ultra-192gb", 76 * 128 * 2 * 1.398e9, 192 * GB, 800 * GB),  # Apple: 76-core GPU, 192 GB, 800 GB/s
    ("m4-max-128gb", 40 * 128 * 2 * 1.678e9, 128 * GB, 546 * GB),  # Apple: 40-core GPU, 128 GB, 546 GB/s
]


@pytest.mark.parametrize(("hardware_id", "fp16", "memory", "bandwidth"), APPLE)
def test_apple_profiles_match_announced_figures(catalog, hardware_id, fp16, memory, bandwidth):
    p = catalog.get(hardware_id)
    assert p.peak_flops_per_s.for_training() == ("fp16", pytest.approx(fp16, rel=0.01))
    assert p.memory_bytes == memory and p.memory_bandwidth_bytes_per_s == bandwidth
    assert any("derived" in m for m in p.missing)


# The 2:4-sparse headlines the datasheets print: no new profile may carry one as its peak.
SPARSE_HEADLINES = {
    "b200-180gb": {"bf16": 4.5 * PETA, "fp8": 9 * PETA, "tf32": 2.25 * PETA},  # HGX B200 per GPU
    "gb200-nvl72": {"bf16": 5 * PETA, "fp8": 10 * PETA, "tf32": 2.5 * PETA},  # GB200 NVL72 per GPU
    "h800-80gb": {"bf16": 1979 * TERA, "fp8": 3958 * TERA},
    "l40s-48gb": {"bf16": 733 * TERA, "fp8": 1466 * TERA, "tf32": 366 * TERA},
    "rtx4090-24gb": {"bf16": 330.4 * TERA, "fp8": 660.6 * TERA},
    "mi300x-192gb": {"bf16": 2614.9 * TERA, "fp8": 5229.8 * TERA},
    "mi325x-256gb": {"bf16": 2614.9 * TERA, "fp8": 5229.8 * TERA},
    "mi355x-288gb": {"bf16": 5.0 * PETA, "fp8": 10.1 * PETA},
}  # Trainium2's '2,563 sparse TFLOPS' is not 2x its 667 BF16 dense (AWS sparsity is not 2:4): see DATASHEET


@pytest.mark.parametrize("hardware_id", sorted(SPARSE_HEADLINES))
def test_no_new_peak_is_a_sparse_headline(catalog, hardware_id):
    peaks = catalog.get(hardware_id).peak_flops_per_s
    for dtype, sparse in SPARSE_HEADLINES[hardware_id].items():
        assert peaks.get(dtype) == pytest.approx(sparse / 2, rel=0.02), f"{hardware_id} {dtype} must be dense"


# Links per device, per direction: the datasheets' totals (both directions) halved; devices per node as published.
LINKS = [
    ("b200-180gb", 8, 1800 * GB / 2, 400 * GBIT),  # NVLink 5 1.8 TB/s; 8x ConnectX-7 400 Gb/s per DGX B200
    ("gb200-nvl72", 72, 1800 * GB / 2, 400 * GBIT),  # 72 GPUs; NVLink 5 1.8 TB/s per GPU (130 TB/s per rack, rounded)
    ("h800-80gb", 8, 400 * GB / 2, 50 * GB),  # NVLink cut to 400 GB/s; DeepSeek-V3: IB 50 GB/s per GPU
    ("h20-96gb", 8, 900 * GB / 2, None),  # NVLink 900 GB/s kept
    ("mi300x-192gb", 8, 7 * 128 * GB / 2, 400 * GBIT),  # 7 Infinity Fabric links x 128 GB/s; Azure 400 Gb/s per GPU
    ("mi355x-288gb", 8, 7 * 153.6 * GB / 2, None),  # 7 links x 153.6 GB/s
    ("gaudi3-128gb", 8, 21 * 200 * GBIT, 3 * 200 * GBIT),  # 24x 200 GbE: 21 to peers, 3 out of the node
    ("tpu-v6e", 256, 800 * GB / 2, None),  # 256-chip pod, ICI 800 GBps bidirectional
    ("tpu7x", 9216, 1200 * GB / 2, None),  # 9,216-chip pod, ICI 1,200 GBps bidirectional
    ("trainium2", 16, 1.28e12 / 2, 3200 * GBIT / 16),  # trn2.48xlarge: 16 chips, EFAv3 3.2 Tbps per instance
]


@pytest.mark.parametrize(("hardware_id", "per_node", "intra", "inter"), LINKS, ids=lambda v: str(v)[:20])
def test_links_per_device_per_direction(catalog, hardware_id, per_node, intra, inter):
    p = catalog.get(hardware_id)
    assert p.devices_per_node == per_node
    assert p.intra_node_bandwidth_bytes_per_s == pytest.approx(intra, rel=1e-3)
    assert p.inter_node_bandwidth_bytes_per_s == (None if inter is None else pytest.approx(inter, rel=1e-3))


# Families and CUDA capabilities of the new profiles: tests/test_hardware_family.py (EXPECTED).


def test_export_parts_share_the_hopper_calibration_and_blackwell_is_uncalibrated(catalog):
    params = EfficiencyParams.load()
    h100 = params.gemm_ceiling_for(catalog.get("h100-80gb"))
    assert params.gemm_ceiling_for(catalog.get("h800-80gb")) == h100
    assert params.gemm_ceiling_for(catalog.get("h20-96gb")) == h100
    assert params.gemm_ceiling_for(catalog.get("b200-180gb"))[1] is False
    assert params.gemm_ceiling_for(catalog.get("mi300x-192gb"))[1] is False


@pytest.mark.parametrize(
    ("alias", "hardware_id"),
    [("b200", "b200-180gb"), ("gb200", "gb200-nvl72"), ("h800", "h800-80gb"), ("h20", "h20-96gb"),
     ("l40s", "l40s-48gb"), ("mi300x", "mi300x-192gb"), ("mi325x", "mi325x-256gb"), ("mi355x", "mi355x-288gb"),
     ("gaudi3", "gaudi3-128gb"), ("trillium", "tpu-v6e"), ("v6e", "tpu-v6e"), ("ironwood", "tpu7x"),
     ("trn2", "trainium2"), ("orin", "jetson-agx-orin-64gb"), ("m2-ultra", "m2-ultra-192gb"),
     ("m4-max", "m4-max-128gb"), ("rtx4090", "rtx4090-24gb"), ("xeon-8592+", "xeon-8592plus")],
)  # fmt: skip
def test_new_aliases_resolve(catalog, alias, hardware_id):
    assert catalog.resolve_id(alias) == hardware_id


@pytest.mark.parametrize(("alias", "hardware_id"), [("b200", "b200-180gb"), ("mi300x", "mi300x-192gb")])
def test_hardware_show_resolves_the_alias(cli, alias, hardware_id):
    result = cli("hardware", "show", alias, "--format", "json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["id"] == hardware_id


def test_estimate_on_b200_runs_and_warns_its_family_is_uncalibrated(cli):
    result = cli("estimate", "--model", "llama-2-7b", "--tokens", "1T", "--hardware", "b200", "--devices", "64",
                 "--format", "json")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["hardware"]["id"] == "b200-180gb"
    assert any("no published runs" in w and "nvidia-blackwell" in w for w in report["warnings"]), report["warnings"]
