"""Bench planning (dtypes, sizes, memory check), machine facts and the text chart."""

from dataclasses import replace

import pytest

from flopcast.bench import machine
from flopcast.bench.chart import roofline_chart
from flopcast.bench.plan import (
    FREE_MEMORY_USABLE_FRACTION,
    MIB,
    fit_to_memory,
    make_config,
    parse_device,
    parse_dtypes,
)
from flopcast.errors import InvalidValue, flag_style
from flopcast.reports.bench import BenchPoint, RooflineFit


def test_dtype_aliases_and_order():
    assert parse_dtypes("fp32, float64,f32", "cpu") == ("float32", "float64")
    assert parse_dtypes(None, "cpu") == ("float64", "float32")
    assert parse_dtypes("bf16,half", "cuda") == ("bfloat16", "float16")


@pytest.mark.parametrize(("text", "device"), [("float16", "cpu"), ("int8", "cpu"), ("float64", "cuda"), (",", "cpu")])
def test_unsupported_dtypes_are_refused(text, device):
    with pytest.raises(InvalidValue) as err:
        parse_dtypes(text, device)
    assert str(err.value).startswith("dtype: ") and "choose from" in err.value.one_line()
    assert err.value.one_line(flag_style).startswith("--dtype: ")


def test_device_names():
    assert parse_device("CUDA") == "cuda" and parse_device("gpu") == "cuda" and parse_device("cpu") == "cpu"
    with pytest.raises(InvalidValue):
        parse_device("tpu")


def cpu_config(**kw):
    return make_config(device="cpu", quick=True, dtypes=("float64", "float32"), cache_bytes=32 * MIB, **kw)


def test_sizes_follow_the_cache_and_the_flop_budget():
    c = cpu_config()
    # quick: X = max(64 MiB, 4 × 32 MiB) = 128 MiB; float64 rows = 128 MiB / (2048 · 8 B) = 8192
    assert c.size_bytes == 128 * MIB and c.features == 2048
    assert c.rows_full("float64") == 8192 and c.rows_full("float32") == 16384
    # k = 64 at 2e9 FLOPs per step: m = 2e9 / (4 · 2048 · 64) = 3814
    assert c.rows_for("float64", 64) == 3814
    # k = 256 would give m = 953 < d/2: the floor d/2 = 1024 keeps the GD stable (α = 0.5)
    assert c.rows_for("float64", 256) == 1024
    # k = 1 wants more rows than X has: all of X
    assert c.rows_for("float64", 1) == 8192
    # the GEMM check: 2·n³ ≈ 6e9 → n = 1442 → nearest multiple of 64 = 1472
    assert c.gemm_n() == 1472


def test_required_memory_by_hand():
    c = replace(cpu_config(verify=False), dtypes=("float64",))
    # sweep: X (8192·2048 = 16,777,216) + the largest per-point buffers Y, P (m·k each) and W, G (d·k each):
    #   k = 512: m = max(2048/2, 2e9/(4·2048·512) = 476) = 1024 → 2·1024·512 + 2·2048·512 = 3,145,728 (largest)
    #   k = 256: m = 1024 → 1,572,864; k = 64: m = 3814 → 750,336; k = 16: m = 8192 → 327,680
    # (16,777,216 + 3,145,728)·8 B + 64 MiB overhead; the GEMM check alone (3·1472² elements) is smaller.
    assert c.required_bytes() == (16_777_216 + 3_145_728) * 8 + 64 * MIB


def test_a_size_that_does_not_fit_is_refused_with_one_that_does():
    c = cpu_config(size_bytes=8 * 2**30)
    available = 4 * 2**30
    with pytest.raises(InvalidValue) as err:
        fit_to_memory(c, available, size_given=True)
    hint = err.value.hint
    assert hint.startswith("use size ") and hint.endswith("MiB or less")
    assert err.value.one_line(flag_style).startswith("--size 8.59 GB: ")
    assert err.value.one_line(flag_style).endswith(f"(use --size {hint.split()[2]} or less)")
    suggested = int(hint.split()[2].removesuffix("MiB")) * MIB
    assert replace(c, size_bytes=suggested).required_bytes() <= FREE_MEMORY_USABLE_FRACTION * available
    assert replace(c, size_bytes=suggested + 64 * MIB).required_bytes() > FREE_MEMORY_USABLE_FRACTION * available


def test_the_default_size_shrinks_to_fit():
    c = cpu_config()
    small = fit_to_memory(c, 200 * MIB, size_given=False)
    assert small.size_bytes < c.size_bytes
    assert small.required_bytes() <= FREE_MEMORY_USABLE_FRACTION * 200 * MIB
    assert fit_to_memory(c, None, size_given=False) is c  # unknown free memory: no check


def test_nothing_fits_is_refused():
    with pytest.raises(InvalidValue, match="free"):
        fit_to_memory(cpu_config(), 10 * MIB, size_given=False)


def test_size_scale_shrinks_everything():
    c = cpu_config(size_scale=0.01)
    assert c.size_bytes == pytest.approx(128 * MIB * 0.01)
    assert c.features == 208 and c.flops_per_step == pytest.approx(2e7)  # d = 2048·√0.01 → multiple of 16
    with pytest.raises(InvalidValue):
        cpu_config(size_scale=2.0)


@pytest.mark.parametrize(
    ("text", "expected"), [("32768K", 32 * 2**20), ("1M", 2**20), ("512 KiB", 512 * 1024), ("33554432", 33554432)]
)
def test_cache_size_strings(text, expected):
    assert machine.parse_cache_size(text) == expected


def test_cache_size_junk():
    assert machine.parse_cache_size("lots") is None


def test_machine_facts_are_plausible():
    size, source = machine.last_level_cache()
    assert size >= 64 * 1024 and source
    assert machine.usable_cores() >= 1 and machine.logical_cores() >= machine.usable_cores()
    total, free = machine.total_memory_bytes(), machine.available_memory_bytes()
    assert total is None or (free is not None and 0 < free <= total)
    info = machine.describe_cpu(None)
    assert info.device == "cpu" and info.name and info.numpy_version


def test_blas_threads_limit_is_reported():
    if not machine.blas_pools():
        pytest.skip("numpy has no BLAS thread pool threadpoolctl can see")
    with machine.blas_threads(1):
        assert machine.describe_cpu(1).threads == 1


def _point(dtype, k, intensity, flops_per_s):
    return BenchPoint(
        dtype=dtype, k=k, m=1, d=1, x_bytes=1, beyond_cache=True, repeats=1, calls_per_sample=1, seconds=1,
        seconds_min=1, seconds_max=1, spread=0, flops=flops_per_s, bytes=flops_per_s / intensity,
        flops_per_s=flops_per_s, bytes_per_s=flops_per_s / intensity, intensity_flops_per_byte=intensity,
    )  # fmt: skip


def test_chart_draws_roof_and_points():
    fit = RooflineFit(
        peak_flops_per_s={"float64": 60e9, "float32": 120e9}, bandwidth_bytes_per_s=12e9,
        bandwidth_bytes_per_s_by_dtype={"float64": 12e9, "float32": 12e9},
        ridge_flops_per_byte={"float64": 5.0, "float32": 10.0}, peak_points={}, bandwidth_points=1, method="m",
    )  # fmt: skip
    points = [_point("float64", 1, 0.25, 3e9), _point("float64", 256, 40, 58e9), _point("float32", 1, 0.5, 6e9)]
    text = roofline_chart(points, fit, width=50, height=12)
    lines = text.splitlines()
    assert len(lines) == 12 + 3
    assert sum(line.count("D") for line in lines[:12]) == 2 and any("S" in line for line in lines[:12])
    assert "/" in text and "-" in text and "float64 peak" in text and "FLOP/byte" in text


def test_other_cpu_share_by_hand():
    # between the snapshots all CPUs were busy 20 s out of 40 s; this process used 10 CPU-seconds of that,
    # so other programs used (20 − 10) / 40 = 25 % of the CPU time
    assert machine.other_cpu_share((10.0, 100.0, 1.0), (30.0, 140.0, 11.0)) == pytest.approx(0.25)
    assert machine.other_cpu_share(None, (1.0, 2.0, 3.0)) is None
    assert machine.other_cpu_share((1.0, 5.0, 0.0), (1.0, 5.0, 0.0)) is None  # no time passed
    snap = machine.cpu_time_snapshot()
    assert snap is None or (snap[0] <= snap[1] and snap[2] >= 0)
