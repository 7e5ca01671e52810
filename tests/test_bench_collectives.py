"""`flopcast bench --collectives`: real Gloo collectives on loopback, the fit, the bus-bandwidth convention, the
saved profile, the measured-latency hook of the estimator, and bad input.

Expected values are written here from their sources (nccl-tests doc/PERFORMANCE.md for the bus-bandwidth
factors; hand-made timings for the fit), never read from the code under test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from flopcast.bench.collectives import (
    COLLECTIVES,
    bus_factor,
    fit_latency_bandwidth,
    message_sizes,
    summarise,
)
from flopcast.cli import app

GLOO_RUN = ["bench", "--collectives", "--quick", "--max-bytes", "1MiB"]


def run(*args, env=None):
    return CliRunner().invoke(app, [str(a) for a in args], env=env)


@pytest.fixture(autouse=True)
def _not_under_torchrun(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)


# --- the bus-bandwidth convention and the fit (no torch) ----------------------------------------------------


@pytest.mark.parametrize("n", [2, 3, 4, 8, 16])
def test_bus_factors_are_nccl_tests_formulas(n):
    # nccl-tests doc/PERFORMANCE.md: AllReduce busBw = algBw * 2(n-1)/n; ReduceScatter and AllGather (n-1)/n;
    # AllToAll (alltoall.cu) (n-1)/n; SendRecv: busBw = algBw
    expected = {
        "all-reduce": 2 * (n - 1) / n,
        "all-gather": (n - 1) / n,
        "reduce-scatter": (n - 1) / n,
        "all-to-all": (n - 1) / n,
        "send-recv": 1.0,
    }
    assert set(COLLECTIVES) == set(expected)
    for name, factor in expected.items():
        assert bus_factor(name, n) == pytest.approx(factor)


def test_fit_recovers_a_known_latency_and_bandwidth():
    latency, busbw, factor = 45e-6, 2.5e9, 1.5  # all-reduce on 4 ranks: 2·3/4
    sizes = [1024 * 4**k for k in range(10)]
    wobble = [1.01, 0.99, 1.015, 0.985, 1.0, 1.01, 0.99, 1.005, 0.995, 1.0]  # ±1.5% measurement noise
    seconds = [(latency + factor * s / busbw) * w for s, w in zip(sizes, wobble, strict=True)]
    fit = fit_latency_bandwidth(sizes, seconds, factor)
    assert fit.latency_s == pytest.approx(latency, rel=0.05)
    assert fit.bus_bandwidth_bytes_per_s == pytest.approx(busbw, rel=0.03)
    assert fit.max_relative_residual < 0.03


def test_fit_of_pure_bandwidth_has_no_negative_latency_and_flat_times_no_bandwidth():
    sizes = [1e3, 1e4, 1e5, 1e6]
    fit = fit_latency_bandwidth(sizes, [s / 1e9 * (1 + 0.02 * (-1) ** i) for i, s in enumerate(sizes)], 1.0)
    assert fit.latency_s >= 0 and fit.bus_bandwidth_bytes_per_s == pytest.approx(1e9, rel=0.05)
    flat = fit_latency_bandwidth(sizes, [1e-3, 0.9e-3, 1.1e-3, 0.95e-3], 1.0)
    assert flat.bus_bandwidth_bytes_per_s is None and flat.latency_s == pytest.approx(1e-3, rel=0.1)


def test_message_sizes_run_from_a_kib_to_the_top_in_fours_divisible_by_the_ranks():
    sizes = message_sizes(256 * 2**20, 2)
    assert sizes[0] == 1024 and sizes[-1] == 256 * 2**20 and len(sizes) == 10
    assert all(b == 4 * a for a, b in zip(sizes, sizes[1:], strict=False))
    assert all(s % (4 * 3) == 0 for s in message_sizes(4 * 2**20, 3))  # float32 elements, 3 equal parts


def test_a_repeat_counts_as_its_slowest_rank():
    # two ranks, three repeats: the slowest rank per repeat is 3, 5, 4 ms -> median 4, fastest 3, spread 2/4
    median, fastest, spread = summarise([[1e-3, 5e-3, 4e-3], [3e-3, 2e-3, 1e-3]])
    assert (median, fastest, spread) == pytest.approx((4e-3, 3e-3, 0.5))


# --- the estimator's measured-latency hook (estimator/comms.py) ---------------------------------------------


def test_measured_latency_replaces_the_modelled_intra_node_latency_only():
    from flopcast.estimator.comms import measured_latency_s, measured_latency_shift_s, ring_group

    bw, size = 100e9, 1e6
    group = ring_group(np.array([8.0, 16.0, 1.0]), 1.0, 8.0, bw, 25e9)  # one node, two nodes, a single rank
    measured = np.full(3, 80e-6)
    total = group.all_reduce_seconds(size, measured)
    assert total[0] == pytest.approx(2 * 7 / 8 * size / bw + 80e-6)  # ring bandwidth term + the measured latency
    small = group.all_reduce_seconds(1e3, measured)  # LL's modelled latency gives way to the measured one too
    assert small[0] == pytest.approx(2 * 7 / 8 * 1e3 / bw + 80e-6)
    assert total[1] == pytest.approx(group.all_reduce_seconds(size)[1])  # across nodes: the model stays
    assert total[2] == 0.0
    gather = group.gather_seconds(size) + measured_latency_shift_s(group, measured, "all-gather")
    assert gather[0] == pytest.approx(7 / 8 * size / bw + 80e-6)
    nothing = measured_latency_shift_s(group, np.full(3, np.nan), "all-gather")
    assert np.all(nothing == 0.0)

    class Datasheet:
        collective_latency_s = None

    class Measured:
        collective_latency_s = 3e-5

    assert np.isnan(measured_latency_s(Datasheet())) and measured_latency_s(Measured()) == 3e-5


# --- real Gloo runs on loopback ----------------------------------------------------------------------------


# flopcast's console entry point in a fresh interpreter, listing at exit the modules it loaded
WRAPPER = (
    "import atexit, json, os, sys\n"
    "atexit.register(lambda: json.dump(sorted(sys.modules), open(os.environ['MODULES_FILE'], 'w')))\n"
    "from flopcast.cli import main\n"
    "main(sys.argv[1:])\n"
)


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory):
    """One real 2-process Gloo run, as a user runs it (a subprocess), that also saves a profile."""
    pytest.importorskip("torch")
    home = tmp_path_factory.mktemp("config")
    out, modules = home / "collectives.json", home / "modules.json"
    # the --quick default top size, 4 MiB: ~10× the latency on loopback Gloo, so even a busy machine fits a bandwidth
    args = ["bench", "--collectives", "--quick", "--nproc", "2", "--hardware", "epyc-9654", "--save-profile", "my-gloo",
            "-f", "json", "-o", out]  # fmt: skip
    env = {**os.environ, "FLOPCAST_CONFIG_DIR": str(home), "MODULES_FILE": str(modules)}
    proc = subprocess.run(
        [sys.executable, "-c", WRAPPER, *map(str, args)], capture_output=True, text=True, timeout=120, env=env
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""  # the report went to --output
    loaded = {m.partition(".")[0] for m in json.loads(modules.read_text())}
    assert "rich" not in loaded  # --format json never imports rich (no progress bar off a terminal either)
    return home, json.loads(out.read_text())


def test_two_gloo_processes_time_every_collective_and_fit_each(saved_run):
    _, doc = saved_run
    s = doc["settings"]
    assert doc["report"] == "collectives" and s["backend"] == "gloo" and s["ranks"] == 2 and s["nodes"] == 1
    assert s["launcher"] == "nproc" and s["max_bytes"] == 4 * 2**20 and s["min_bytes"] == 1024
    fitted = {f["collective"] for f in doc["fits"]}
    assert fitted | set(doc["unsupported"]) == set(COLLECTIVES) and "all-reduce" in fitted
    for p in doc["points"]:
        algbw = p["bytes"] / p["seconds"]
        factor = {"all-reduce": 1.0, "send-recv": 1.0}.get(p["collective"], 0.5)  # 2 ranks: 2·1/2, 1/2, 1
        assert p["algorithm_bandwidth_bytes_per_s"] == pytest.approx(algbw)
        assert p["bus_bandwidth_bytes_per_s"] == pytest.approx(algbw * factor)
        assert p["seconds_min"] <= p["seconds"]
    ar = next(f for f in doc["fits"] if f["collective"] == "all-reduce")
    assert 1e-7 < ar["latency_s"] < 0.05 and 1e6 < ar["bus_bandwidth_bytes_per_s"] < 1e12
    points = sorted((p for p in doc["points"] if p["collective"] == "all-reduce"), key=lambda p: p["bytes"])
    # the fit is a fit of these points (loosely: CI machines are shared): t = latency + 2·(n-1)/n·bytes / busbw
    for p in points:
        model = ar["latency_s"] + 1.0 * p["bytes"] / ar["bus_bandwidth_bytes_per_s"]
        assert abs(model / p["seconds"] - 1) <= ar["max_relative_residual"] + 1e-9
    assert ar["latency_s"] <= max(p["seconds"] for p in points)


def test_the_saved_profile_has_the_measured_link_and_plans(saved_run, tmp_path):
    home, doc = saved_run
    env = {"FLOPCAST_CONFIG_DIR": str(home)}
    shown = run("hardware", "show", "my-gloo", "-f", "json", env=env)
    assert shown.exit_code == 0, shown.stderr
    profile = json.loads(shown.stdout)
    ar = next(f for f in doc["fits"] if f["collective"] == "all-reduce")
    assert profile["intra_node_bandwidth_bytes_per_s"] == pytest.approx(ar["bus_bandwidth_bytes_per_s"])
    assert profile["collective_latency_s"] == pytest.approx(ar["latency_s"])
    assert set(profile["measured"]) == {"intra_node_bandwidth_bytes_per_s", "collective_latency_s"}
    assert profile["peak_flops_per_s"]["fp64"] > 0  # the compute figures come from the base, epyc-9654
    assert doc["saved_profile"].endswith("my-gloo.yaml")
    card = run("hardware", "show", "my-gloo", env=env).stdout
    assert "collective latency" in card and "(the rest: datasheet)" in card
    estimate = run("estimate", "-m", "125M", "-t", "1B", "--hardware", "my-gloo", "-n", "2", "--precision", "fp32",
                   "-f", "json", env=env)  # fmt: skip
    assert estimate.exit_code == 0, estimate.stderr
    measured = {"intra_node_bandwidth_bytes_per_s", "collective_latency_s"}
    assert set(json.loads(estimate.stdout)["hardware"]["measured"]) == measured  # the estimate says what was measured
    table = run(
        "estimate", "-m", "125M", "-t", "1B", "--hardware", "my-gloo", "-n", "2", "--precision", "fp32", env=env
    )
    assert "collective_latency_s" in table.stdout and "datasheet" in table.stdout
    datasheet = run("estimate", "-m", "125M", "-t", "1B", "--hardware", "epyc-9654", "-n", "2", "--precision", "fp32",
                    "-f", "json", env=env)  # fmt: skip
    assert json.loads(datasheet.stdout)["hardware"]["measured"] == []
    # the same file found through --profiles DIR
    folder = tmp_path / "profiles"
    folder.mkdir()
    (folder / "my-gloo.yaml").write_text((home / "profiles" / "my-gloo.yaml").read_text())
    other = tmp_path / "empty-config"
    by_dir = run("estimate", "-m", "125M", "-t", "1B", "--hardware", "my-gloo", "--profiles", folder, "-n", "2",
                 "--precision", "fp32", "-f", "json", env={"FLOPCAST_CONFIG_DIR": str(other)})  # fmt: skip
    assert by_dir.exit_code == 0, by_dir.stderr
    assert json.loads(by_dir.stdout)["hardware"]["id"] == "my-gloo"


@pytest.mark.parametrize(("fmt", "needle"), [("table", "bus bandwidth"), ("markdown", "## flopcast bench"),
                                             ("csv", "collective,bytes,seconds")])  # fmt: skip
def test_a_saved_report_re_renders(saved_run, fmt, needle):
    home, _ = saved_run
    result = run("report", home / "collectives.json", "-f", fmt)
    assert result.exit_code == 0, result.stderr
    assert needle in result.stdout and "all-reduce" in result.stdout


def test_three_gloo_processes_use_the_three_rank_factors():
    pytest.importorskip("torch")
    result = run("bench", "--collectives", "--quick", "--max-bytes", "16KiB", "--nproc", "3", "-f", "json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["settings"]["ranks"] == 3
    factors = {f["collective"]: f["bus_factor"] for f in doc["fits"]}
    assert factors["all-reduce"] == pytest.approx(4 / 3)
    assert factors["all-gather"] == pytest.approx(2 / 3)
    assert all(p["bytes"] % 12 == 0 for p in doc["points"])


def test_under_torchrun_only_rank_zero_prints():
    pytest.importorskip("torch")
    argv = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
            "-m", "flopcast", *GLOO_RUN[:3], "--max-bytes", "64KiB", "-f", "json"]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")}
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, env={**env, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)  # exactly one JSON document: rank 1 printed nothing
    assert doc["settings"]["launcher"] == "torchrun" and doc["settings"]["ranks"] == 2


# --- bad input ---------------------------------------------------------------------------------------------


def _one_line(result) -> str:
    err = result.stderr.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


def test_collectives_outside_a_distributed_launch_without_nproc_is_usage():
    result = run("bench", "--collectives", "--quick")
    assert result.exit_code == 2
    assert "--nproc" in _one_line(result) and "torchrun" in result.stderr


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["bench", "--collectives", "--nproc", "1"], "at least 2"),
        (["bench", "--collectives", "--nproc", "0"], "--nproc"),
        (["bench", "--nproc", "2"], "--collectives"),
        (["bench", "--collectives", "--nproc", "2", "--dtype", "float32"], "--dtype"),
        (["bench", "--collectives", "--nproc", "2", "--max-bytes", "lots"], "--max-bytes"),
        (["bench", "--collectives", "--nproc", "2", "--max-bytes", "1PiB"], "--max-bytes"),
        (["bench", "--collectives", "--nproc", "2", "--max-bytes", "2KiB"], "--max-bytes 4KiB"),
        (["bench", "--collectives", "--nproc", "2", "--save-profile", "never-seen"], "--hardware"),
    ],
)
def test_bad_collectives_options_are_one_line_exit_2(args, needle, tmp_path):
    result = run(*args, env={"FLOPCAST_CONFIG_DIR": str(tmp_path)})
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert needle in _one_line(result)


def test_nproc_under_torchrun_and_a_single_rank_world_are_usage():
    both = run("bench", "--collectives", "--nproc", "2", env={"RANK": "0", "WORLD_SIZE": "2"})
    assert both.exit_code == 2 and "torchrun" in _one_line(both)
    alone = run("bench", "--collectives", env={"RANK": "0", "WORLD_SIZE": "1"})
    assert alone.exit_code == 2 and "at least 2" in _one_line(alone)


def test_without_torch_it_says_how_to_install_it_and_exits_1_like_verify_train():
    code = (
        "import sys; sys.modules['torch'] = None\n"  # `import torch` now raises ImportError
        "from flopcast.cli import main\n"
        "main(sys.argv[1:])\n"
    )
    for flag in (["--collectives", "--nproc", "2"], ["--verify-train"]):
        proc = subprocess.run([sys.executable, "-c", code, "bench", *flag], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 1, (flag, proc.stderr)
        assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
        assert "flopcast[torch]" in proc.stderr
    assert "pip install 'flopcast[torch]'" in proc.stderr or "pip install" in proc.stderr


def test_cuda_without_a_gpu_is_one_line_exit_1_before_any_worker_starts():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    result = run("bench", "--collectives", "--nproc", "2", "--device", "cuda", "--quick")
    assert result.exit_code == 1 and "no CUDA device" in _one_line(result)


def test_a_rank_failing_mid_run_stops_the_others_exit_1_and_writes_nothing(tmp_path):
    pytest.importorskip("torch")
    out = tmp_path / "collectives.json"
    env = {"FLOPCAST_CONFIG_DIR": str(tmp_path)}
    args = [*GLOO_RUN, "--nproc", "2", "--fail-rank", "1", "-f", "json", "-o", out, "--hardware", "epyc-9654",
            "--save-profile", "broken"]  # fmt: skip
    result = run(*args, env=env)
    assert result.exit_code == 1, (result.stdout, result.stderr)
    line = _one_line(result)
    assert "rank 1 of 2 failed" in line and "injected failure" in line
    assert not out.exists() and not (tmp_path / "profiles" / "broken.yaml").exists()
    assert result.stdout == ""


# --- the profile a run writes (hand-made reports: no torch) ------------------------------------------------


def _report(nodes: int, ranks: int, per_node: int, busbw: float, latency: float):
    from flopcast.reports.bench_collectives import CollectiveFit, CollectivesReport, CollectivesSettings

    settings = CollectivesSettings(
        mode="quick", launcher="torchrun", backend="nccl", device="cuda", device_name="NVIDIA H100 80GB HBM3",
        torch_version="2.13.0", ranks=ranks, nodes=nodes, ranks_per_node=per_node, min_bytes=1024,
        max_bytes=4 * 2**20, warmup_iterations=2, repeats=5,
    )  # fmt: skip
    fit = CollectiveFit(
        collective="all-reduce", bus_factor=2 * (ranks - 1) / ranks, latency_s=latency,
        bus_bandwidth_bytes_per_s=busbw, max_relative_residual=0.05, points=7,
    )  # fmt: skip
    return CollectivesReport(settings=settings, fits=[fit], points=[], elapsed_seconds=1.0)


def test_one_node_measures_the_intra_node_link_and_many_nodes_the_nic_per_device():
    from flopcast.bench.collectives_profile import build_collectives_profile
    from flopcast.request import resolve_hardware

    h100 = resolve_hardware("h100-80gb")
    one = build_collectives_profile(_report(1, 8, 8, 360e9, 30e-6), h100, "my-h100")
    assert one.intra_node_bandwidth_bytes_per_s == 360e9 and one.collective_latency_s == 30e-6
    assert one.inter_node_bandwidth_bytes_per_s == h100.inter_node_bandwidth_bytes_per_s  # not measured: kept
    assert one.measured == ["intra_node_bandwidth_bytes_per_s", "collective_latency_s"]
    assert one.peak_flops_per_s == h100.peak_flops_per_s and one.aliases == []
    # 2 nodes × 8 GPUs: 8 ranks per node drive 8 NICs, so the per-device inter-node figure is busbw / 8
    two = build_collectives_profile(_report(2, 16, 8, 320e9, 60e-6), one, "my-h100")
    assert two.inter_node_bandwidth_bytes_per_s == pytest.approx(40e9)
    assert two.intra_node_bandwidth_bytes_per_s == 360e9  # the one-node measurement survives the refresh
    assert sorted(two.measured) == sorted(
        ["intra_node_bandwidth_bytes_per_s", "inter_node_bandwidth_bytes_per_s", "collective_latency_s"]
    )
    assert sum("bench --collectives" in s for s in two.sources) == 1  # the newest run's source replaces the old


def test_save_profile_refreshes_a_profile_already_in_the_user_dir(tmp_path, monkeypatch):
    from flopcast.bench.collectives_profile import build_collectives_profile, plan_profile
    from flopcast.bench.profile import save_profile
    from flopcast.request import resolve_hardware

    monkeypatch.setenv("FLOPCAST_CONFIG_DIR", str(tmp_path))
    first = build_collectives_profile(_report(1, 2, 2, 1e9, 3e-4), resolve_hardware("epyc-9654"), "my-box")
    save_profile(first, tmp_path / "profiles" / "my-box.yaml")
    target, base = plan_profile("my-box", None, None, force=False)  # no --hardware: NAME itself is the base
    assert target == tmp_path / "profiles" / "my-box.yaml" and base.collective_latency_s == 3e-4
    measured = [m.strip() for m in (tmp_path / "profiles" / "my-box.yaml").read_text().split("measured:")[1:2]]
    assert "collective_latency_s" in measured[0]
