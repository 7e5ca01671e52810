"""A profile's ``family`` decides its calibration and ``compute_capability`` its fused attention: for shipped
profiles and for a user's own file alike. Expected values come from the sources (the CUDA Programming Guide
table) and from the shipped fit file's stored numbers, never from the code under test."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

import flopcast
from flopcast.estimator.efficiency import EfficiencyParams, fit_path, fused_attention_supported
from flopcast.hardware import load_catalog, shipped_profiles_dir

SHIPPED_H100 = shipped_profiles_dir() / "h100-80gb.yaml"
# (family, CUDA compute capability): NVIDIA CUDA C++ Programming Guide, "Compute Capabilities" (V100 7.0,
# A100 8.0, H100/H200 9.0); TPUs and CPUs have none.
EXPECTED = {
    "v100-16gb": ("nvidia-volta", 7.0),
    "v100-32gb": ("nvidia-volta", 7.0),
    "a100-40gb": ("nvidia-ampere", 8.0),
    "a100-80gb": ("nvidia-ampere", 8.0),
    "h100-80gb": ("nvidia-hopper", 9.0),
    "h200-141gb": ("nvidia-hopper", 9.0),
    "tpu-v3": ("google-tpu-v3", None),
    "tpu-v4": ("google-tpu", None),
    "tpu-v5e": ("google-tpu", None),
    "tpu-v5p": ("google-tpu", None),
    "epyc-9654": ("amd-zen4", None),
    # the hardware of 2026 (issue 15): same chip, same family (B200 10.0, Ada 8.9, Orin 8.7 per the Guide)
    "b200-180gb": ("nvidia-blackwell", 10.0),
    "gb200-nvl72": ("nvidia-blackwell", 10.0),
    "h800-80gb": ("nvidia-hopper", 9.0),
    "h20-96gb": ("nvidia-hopper", 9.0),
    "l40s-48gb": ("nvidia-ada", 8.9),
    "rtx4090-24gb": ("nvidia-ada", 8.9),
    "jetson-agx-orin-64gb": ("nvidia-orin", 8.7),
    "mi300x-192gb": ("amd-cdna3", None),
    "mi325x-256gb": ("amd-cdna3", None),
    "mi355x-288gb": ("amd-cdna4", None),
    "gaudi3-128gb": ("intel-gaudi3", None),
    "tpu-v6e": ("google-tpu", None),
    "tpu7x": ("google-tpu", None),
    "trainium2": ("aws-trainium2", None),
    "m2-ultra-192gb": ("apple-m2", None),
    "m4-max-128gb": ("apple-m4", None),
    "xeon-8592plus": ("intel-emerald-rapids", None),
}
JOB = dict(model="llama-2-7b", tokens="1T", devices=64, tp=1, pp=1, micro_batch=4, global_batch=512, zero=1)


@pytest.fixture(scope="module")
def stored() -> dict:
    """The shipped fit file's numbers, read as data."""
    return json.loads(fit_path().read_text(encoding="utf-8"))


def _user_profile(directory: Path, pid: str, family: str | None, capability: str | None = "keep") -> Path:
    """A copy of the shipped H100 profile under another id, with its family (and capability) replaced."""
    lines = []
    for line in SHIPPED_H100.read_text(encoding="utf-8").splitlines():
        if line.startswith("id:"):
            line = f"id: {pid}"
        elif line.startswith("aliases:"):
            line = "aliases: []"
        elif line.startswith("family:"):
            if family is None:
                continue
            line = f"family: {family}"
        elif line.startswith("compute_capability:") and capability != "keep":
            if capability is None:
                continue
            line = f"compute_capability: {capability}"
        lines.append(line)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{pid}.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_every_shipped_profile_is_listed_here():
    assert {p.stem for p in shipped_profiles_dir().glob("*.yaml")} == set(EXPECTED)


@pytest.mark.parametrize(("hardware_id", "expected"), sorted(EXPECTED.items()))
def test_every_shipped_profile_names_its_family(hardware_id, expected):
    p = load_catalog().get(hardware_id)
    assert (p.family, p.compute_capability) == expected
    if p.compute_capability is not None:
        assert any("CUDA C++ Programming Guide" in s for s in p.sources)


def test_a_user_profile_of_a_hopper_gets_exactly_the_hopper_ceiling(tmp_path, stored):
    _user_profile(tmp_path, "my-h100", "nvidia-hopper")
    catalog = load_catalog([tmp_path])
    mine = catalog.get("my-h100")
    assert mine.family == "nvidia-hopper"
    hopper = min(1.0, stored["gemm_ceiling"] * stored["family_ceiling_factor"]["nvidia-hopper"])
    params = EfficiencyParams.load()
    assert params.gemm_ceiling_for(mine) == (pytest.approx(hopper, rel=1e-12), True)
    assert params.gemm_ceiling_for(catalog.get("h100-80gb")) == params.gemm_ceiling_for(mine)


def test_a_user_hopper_profile_estimates_like_the_shipped_h100(tmp_path):
    _user_profile(tmp_path, "my-h100", "nvidia-hopper")
    mine = flopcast.estimate(hardware="my-h100", profiles=[tmp_path], **JOB)
    shipped = flopcast.estimate(hardware="h100-80gb", **JOB)
    for field in ("step_seconds", "device_hours", "device_hours_p10", "device_hours_p90"):
        assert getattr(mine.time, field) == getattr(shipped.time, field), field
    assert mine.efficiency.mfu == shipped.efficiency.mfu
    assert not any("no published runs" in w for w in mine.warnings)


@pytest.mark.parametrize("family", [None, "acme-x1"])
def test_missing_or_unknown_family_gets_the_base_ceiling_and_the_wide_band(tmp_path, stored, family):
    _user_profile(tmp_path, "my-gpu", family)
    catalog = load_catalog([tmp_path])
    assert EfficiencyParams.load().gemm_ceiling_for(catalog.get("my-gpu")) == (stored["gemm_ceiling"], False)
    report = flopcast.estimate(hardware="my-gpu", profiles=[tmp_path], **JOB)
    t = report.time
    assert t.device_hours_p90 / t.device_hours == pytest.approx(math.exp(stored["log_ratio_p90_uncalibrated"]))
    assert t.device_hours_p10 / t.device_hours == pytest.approx(math.exp(stored["log_ratio_p10_uncalibrated"]))
    assert any("no published runs of my-gpu's hardware family" in w for w in report.warnings)
    # the same chip with its family is faster: the Hopper factor on the ceiling is above 1
    assert stored["family_ceiling_factor"]["nvidia-hopper"] > 1
    hopper = flopcast.estimate(hardware="h100-80gb", **JOB)
    assert hopper.time.step_seconds < t.step_seconds


def test_fused_attention_follows_the_compute_capability(tmp_path):
    _user_profile(tmp_path / "a", "old-gpu", "nvidia-hopper", capability="7.0")
    _user_profile(tmp_path / "b", "new-gpu", "nvidia-hopper", capability="8.0")
    assert fused_attention_supported(load_catalog([tmp_path / "a"]).get("old-gpu")) is False
    assert fused_attention_supported(load_catalog([tmp_path / "b"]).get("new-gpu")) is True
    shipped = load_catalog()
    assert [fused_attention_supported(shipped.get(i)) for i in ("v100-32gb", "a100-80gb", "h200-141gb")] == [
        False,
        True,
        True,
    ]
    # TPUs fuse in XLA; PyTorch runs SDPA on a CPU as a flash kernel (measured by bench --verify-train)
    assert fused_attention_supported(shipped.get("tpu-v4")) and fused_attention_supported(shipped.get("epyc-9654"))


@pytest.mark.parametrize(
    ("replace", "with_", "fragments"),
    [
        ("family: nvidia-hopper", "family: Nvidia_Hopper", ["family:", "lower-case slug"]),
        ("family: nvidia-hopper", "family: nvidia--hopper", ["family:", "lower-case slug"]),
        ("family: nvidia-hopper", "family: 5", ["family:", "string"]),
        ("compute_capability: 9.0", "compute_capability: yes", ["compute_capability:", "number"]),
        ("compute_capability: 9.0", "compute_capability: 0", ["compute_capability:", "greater than or equal to 1"]),
        ("kind: gpu", "kind: tpu", ["compute_capability:", "NVIDIA GPU"]),
    ],
)
def test_hardware_validate_reports_a_bad_family_or_capability(cli, tmp_path, replace, with_, fragments):
    text = SHIPPED_H100.read_text(encoding="utf-8")
    assert replace in text
    path = tmp_path / "bad.yaml"
    path.write_text(text.replace(replace, with_, 1), encoding="utf-8")
    result = cli("hardware", "validate", str(path))
    assert result.exit_code == 2
    problem = result.stderr.splitlines()[0]
    line = next(i for i, t in enumerate(text.splitlines(), 1) if t.startswith(fragments[0]))
    assert problem.startswith(f"{path}:{line}: ")
    for fragment in fragments:
        assert fragment in problem, problem


def test_hardware_show_json_has_family_and_capability(cli):
    doc = json.loads(cli("hardware", "show", "h100-80gb", "--format", "json").stdout)
    assert doc["family"] == "nvidia-hopper" and doc["compute_capability"] == 9.0
    tpu = json.loads(cli("hardware", "show", "tpu-v4", "--format", "json").stdout)
    assert tpu["family"] == "google-tpu" and tpu["compute_capability"] is None


def test_a_bench_profile_declares_an_uncalibrated_local_family(tmp_path):
    """`bench --save-profile` writes a family, so its profile validates; measured peaks get no published
    family's factor: the base ceiling and the wide band."""
    from flopcast.bench.kernel import NumpyOps
    from flopcast.bench.plan import make_config
    from flopcast.bench.profile import build_profile, save_profile
    from flopcast.bench.run import run_bench
    from flopcast.hardware import profile_problems

    ops = NumpyOps(seed=0)
    with ops.session(1):
        info = ops.describe(1)
        config = make_config(
            device="cpu", quick=True, dtypes=("float64", "float32"), cache_bytes=info.cache_bytes, size_scale=0.01
        )
        report = run_bench(config, ops, info)
    path = save_profile(build_profile(report, "my-box"), tmp_path / "my-box.yaml")
    assert profile_problems(path)[1] == []
    assert "family: local-cpu" in path.read_text(encoding="utf-8").splitlines()
    profile = load_catalog([tmp_path]).get("my-box")
    assert EfficiencyParams.load().gemm_ceiling_for(profile)[1] is False


def test_a_new_family_starts_from_its_measured_matmul_efficiency(tmp_path, stored):
    """A profile of a family no published run calibrates, with a measured ``calibration.matmul_efficiency``:
    the estimate uses that ceiling (not the base one) end to end, and keeps the uncalibrated range."""
    path = _user_profile(tmp_path, "acme-measured", "acme-x1")
    text = path.read_text(encoding="utf-8") + "calibration:\n  matmul_efficiency: 0.4\n  fitted_on: local GEMM sweep\n"
    path.write_text(text, encoding="utf-8")
    plain = _user_profile(tmp_path / "plain", "acme-plain", "acme-x1")
    catalog = load_catalog([tmp_path, plain.parent])
    params = EfficiencyParams.load()
    assert params.gemm_ceiling_for(catalog.get("acme-measured")) == (0.4, False)
    measured = flopcast.estimate(hardware="acme-measured", profiles=[tmp_path], **JOB)
    base = flopcast.estimate(hardware="acme-plain", profiles=[plain.parent], **JOB)
    assert stored["gemm_ceiling"] > 0.4
    assert measured.efficiency.gemm_efficiency / base.efficiency.gemm_efficiency == pytest.approx(
        0.4 / stored["gemm_ceiling"], rel=1e-9
    )
    assert measured.time.step_seconds > base.time.step_seconds
    t = measured.time
    assert t.device_hours_p90 / t.device_hours == pytest.approx(math.exp(stored["log_ratio_p90_uncalibrated"]))
