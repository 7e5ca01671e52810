"""`bench --save-profile`: a valid profile in the shipped schema, found by the catalogue, written atomically."""

import datetime as dt
import os

import pytest

import flopcast.bench.profile as bench_profile
from flopcast.bench.kernel import NumpyOps
from flopcast.bench.plan import make_config
from flopcast.bench.profile import build_profile, check_profile_target, profile_path, save_profile, shipped_names
from flopcast.bench.run import run_bench
from flopcast.errors import ConflictingOptions, InvalidValue, RuntimeFailure
from flopcast.hardware import load_catalog, profile_problems


@pytest.fixture(scope="module")
def tiny_report():
    ops = NumpyOps(seed=0)
    with ops.session(1):  # one BLAS thread: fast for tiny sizes even on a loaded machine
        info = ops.describe(1)
        config = make_config(
            device="cpu", quick=True, dtypes=("float64", "float32"), cache_bytes=info.cache_bytes, size_scale=0.01
        )
        return run_bench(config, ops, info)


@pytest.fixture
def config_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("FLOPCAST_CONFIG_DIR", str(tmp_path / "cfg"))
    return tmp_path / "cfg"


def test_profile_holds_the_fitted_numbers(tiny_report):
    p = build_profile(tiny_report, "my-box", today=dt.date(2026, 1, 2))
    fit = tiny_report.roofline
    assert p.id == "my-box" and p.kind == "cpu"
    assert p.peak_flops_per_s.fp64 == fit.peak_flops_per_s["float64"]
    assert p.peak_flops_per_s.fp32 == fit.peak_flops_per_s["float32"]
    assert p.memory_bandwidth_bytes_per_s == fit.bandwidth_bytes_per_s
    assert p.memory_bytes == tiny_report.machine.memory_total_bytes
    assert p.sources[0].startswith("measured by flopcast bench on 2026-01-02")
    assert p.calibration.fitted_on.startswith("measured by flopcast bench on 2026-01-02")


def test_saved_profile_round_trips_through_the_catalogue(tiny_report, config_dir):
    path = check_profile_target("my-box", force=False)
    assert path == config_dir / "profiles" / "my-box.yaml"
    save_profile(build_profile(tiny_report, "my-box"), path)
    assert profile_problems(path)[1] == []
    entry = load_catalog().entry("my-box")
    assert entry.origin == "user config" and entry.path == path
    assert entry.profile.peak_flops_per_s.fp64 == pytest.approx(tiny_report.roofline.peak_flops_per_s["float64"])
    assert [p.name for p in path.parent.iterdir()] == ["my-box.yaml"]  # no temporary left behind


def test_shipped_ids_and_aliases_are_refused_without_force(config_dir):
    assert "a100-80gb" in shipped_names() and "a100-80" in shipped_names()
    for name in ("a100-80gb", "a100-80"):
        with pytest.raises(ConflictingOptions, match="shipped"):
            check_profile_target(name, force=False)
    assert check_profile_target("a100-80gb", force=True) == profile_path("a100-80gb")


def test_existing_profile_needs_force(tiny_report, config_dir):
    path = check_profile_target("box", force=False)
    save_profile(build_profile(tiny_report, "box"), path)
    with pytest.raises(InvalidValue, match="exists"):
        check_profile_target("box", force=False)
    assert check_profile_target("box", force=True) == path


@pytest.mark.parametrize("name", ["My Box", "-box", "", "x" * 65, "box/../../etc"])
def test_bad_names_are_refused(name, config_dir):
    with pytest.raises(InvalidValue, match="profile id"):
        check_profile_target(name, force=False)


def test_an_invalid_profile_is_never_written(tiny_report, config_dir, monkeypatch):
    path = check_profile_target("box", force=False)
    monkeypatch.setattr(bench_profile, "profile_problems", lambda p: (None, [f"{p}:1: id: broken"]))
    with pytest.raises(RuntimeFailure, match="invalid"):
        save_profile(build_profile(tiny_report, "box"), path)
    assert not path.exists() and os.listdir(path.parent) == []


def test_partial_report_without_fit_cannot_be_saved(tiny_report):
    with pytest.raises(RuntimeFailure):
        build_profile(tiny_report.model_copy(update={"roofline": None}), "box")
