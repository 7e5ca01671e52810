"""`flopcast bench` through the CLI: bad input, a tiny real run, output files, profiles and Ctrl-C.

Real runs use the hidden test option ``--size-scale 0.01`` (every size shrunk), so each takes well under a
second; their timings mean nothing, only the structure and the invariants are checked.
"""

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

import flopcast.bench.run as bench_run
from flopcast.cli import app

# one BLAS thread: tiny matrices gain nothing from two, and two threads crawl when other programs load the cores
TINY = ["bench", "--quick", "--size-scale", "0.01", "--threads", "1"]


def invoke(args, **kw):
    return CliRunner().invoke(app, args, **kw)


def torch_cuda_available() -> bool:
    try:
        import torch
    except Exception:  # noqa: BLE001 - any import failure means: no GPU path here
        return False
    return bool(torch.cuda.is_available())


@pytest.fixture(autouse=True)
def config_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("FLOPCAST_CONFIG_DIR", str(tmp_path / "cfg"))
    return tmp_path / "cfg"


@pytest.fixture(scope="module")
def tiny_json():
    result = CliRunner().invoke(app, [*TINY, "--format", "json"])
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def one_line_error(result, code=2):
    assert result.exit_code == code, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("flopcast: error:"), result.stderr
    assert result.stdout == ""
    return lines[0]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--threads", "0"], "--threads"),
        (["--threads", "two"], "--threads"),
        (["--dtype", "float16"], "--dtype"),
        (["--dtype", "int8"], "--dtype"),
        (["--device", "tpu"], "--device"),
        (["--size", "lots"], "--size"),
        (["--size", "10PB"], "--size"),  # more than any machine's free memory; the hint gives one that fits
        (["--save-profile", "a100-80gb"], "shipped"),
        (["--save-profile", "Not An Id"], "profile id"),
        (["--output", "/nonexistent-dir/x/bench.json"], "does not exist"),
    ],
)
def test_bad_input_is_one_line_exit_2(args, needle, tmp_path):
    line = one_line_error(invoke(["bench", "--quick", *args]))
    assert needle in line


def test_too_large_size_names_one_that_fits():
    line = one_line_error(invoke(["bench", "--quick", "--size", "10PB"]))
    assert "use --size" in line and "MiB or less" in line


def test_device_cuda_without_gpu_says_how_to_install():
    if torch_cuda_available():
        pytest.skip("this machine has PyTorch with CUDA")
    line = one_line_error(invoke(["bench", "--quick", "--device", "cuda"]))
    assert 'pip install "flopcast[gpu]"' in line


def test_threads_with_cuda_conflict():
    assert "--threads" in one_line_error(invoke(["bench", "--device", "cuda", "--threads", "2"]))


def test_existing_output_is_not_overwritten(tmp_path):
    out = tmp_path / "bench.json"
    out.write_text("keep me")
    one_line_error(invoke([*TINY, "--output", str(out)]))
    assert out.read_text() == "keep me"


def test_tiny_run_json_contract(tiny_json):
    doc = tiny_json
    assert doc["report"] == "bench" and doc["partial"] is False
    roof = doc["roofline"]
    assert roof["peak_flops_per_s"]["float32"] > 0 and roof["peak_flops_per_s"]["float64"] > 0
    assert roof["bandwidth_bytes_per_s"] > 0
    by_dtype = roof["bandwidth_bytes_per_s_by_dtype"]
    assert roof["bandwidth_bytes_per_s"] == max(by_dtype.values())
    for dtype in ("float64", "float32"):
        assert roof["ridge_flops_per_byte"][dtype] == pytest.approx(roof["peak_flops_per_s"][dtype] / by_dtype[dtype])
    assert len(doc["points"]) == 2 * 6  # two dtypes × the quick k sweep 1, 4, 16, 64, 256, 512
    for p in doc["points"]:
        for key in ("k", "dtype", "seconds", "flops_per_s", "bytes_per_s", "spread"):
            assert key in p
        assert p["flops_per_s"] == pytest.approx(p["flops"] / p["seconds"])
        assert p["efficiency"] <= 1 + 1e-6  # the fitted roofline is an upper envelope
    assert {p["k"] for p in doc["points"]} == {1, 4, 16, 64, 256, 512}
    m = doc["machine"]
    assert m["device"] == "cpu" and m["name"] and m["cores_logical"] >= 1
    for dtype in ("float64", "float32"):
        check = doc["gemm_check"][dtype]
        assert check["fitted_over_gemm"] == pytest.approx(roof["peak_flops_per_s"][dtype] / check["flops_per_s"])
    v = doc["verify"]
    assert v["error"] == pytest.approx(v["predicted_seconds"] / v["measured_seconds"] - 1)
    assert len(v["runs"]) == 4 and all(r["loss_fell"] for r in v["runs"])
    assert {r["regime"] for r in v["runs"]} == {"memory-bound", "compute-bound"}


def test_training_shapes_are_not_sweep_points(tiny_json):
    sweep = {(p["d"], p["k"]) for p in tiny_json["points"]}
    assert all((r["d"], r["k"]) not in sweep for r in tiny_json["verify"]["runs"])


def test_dtype_threads_and_no_verify():
    result = invoke([*TINY, "--dtype", "fp32", "--no-verify", "--format", "json"])
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert list(doc["roofline"]["peak_flops_per_s"]) == ["float32"]
    assert doc["verify"] is None and doc["machine"]["threads_requested"] == 1
    if doc["machine"]["blas_library"] not in (None, "none found"):
        assert doc["machine"]["threads"] == 1


@pytest.mark.parametrize("fmt", ["table", "markdown", "csv"])
def test_other_formats(fmt):
    result = invoke([*TINY, "--dtype", "float64", "--format", fmt])
    assert result.exit_code == 0, result.stderr
    if fmt == "csv":
        lines = result.stdout.strip().splitlines()
        assert lines[0].startswith("dtype,k,m,d") and len(lines) == 1 + 6
    else:
        assert "float64" in result.stdout and "FLOP/byte" in result.stdout  # tables and the chart
        assert "predicted" in result.stdout


def test_output_file_and_save_profile(tmp_path, config_dir):
    out = tmp_path / "bench.json"
    result = invoke([*TINY, "--format", "json", "--output", str(out), "--save-profile", "this-box"])
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    doc = json.loads(out.read_text())
    assert doc["saved_profile"] == str(config_dir / "profiles" / "this-box.yaml")
    shown = invoke(["hardware", "show", "this-box", "--format", "json"])
    assert shown.exit_code == 0, shown.stderr
    profile = json.loads(shown.stdout)
    assert profile["kind"] == "cpu" and profile["origin"] == "user config"
    assert profile["peak_flops_per_s"]["fp64"] == pytest.approx(doc["roofline"]["peak_flops_per_s"]["float64"])
    assert profile["memory_bandwidth_bytes_per_s"] == pytest.approx(doc["roofline"]["bandwidth_bytes_per_s"])
    # a second save onto the same name needs --force
    assert "exists" in one_line_error(invoke([*TINY, "--save-profile", "this-box"]))


def interrupt_after(monkeypatch, calls: int):
    real = bench_run.measure
    seen = {"n": 0}

    def measure(*args, **kwargs):
        seen["n"] += 1
        if seen["n"] > calls:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(bench_run, "measure", measure)


def test_ctrl_c_prints_partial_result_and_exits_130(monkeypatch):
    interrupt_after(monkeypatch, 3)
    result = invoke([*TINY, "--format", "json", "--save-profile", "never"])
    assert result.exit_code == 130
    doc = json.loads(result.stdout)
    assert doc["partial"] is True and len(doc["points"]) == 3 and doc["verify"] is None
    assert doc["roofline"] is not None  # fitted on what was measured
    line = result.stderr.strip().splitlines()
    assert len(line) == 1 and "interrupted" in line[0] and "profile not saved" in line[0]


def test_ctrl_c_writes_the_partial_result_to_output(monkeypatch, tmp_path, config_dir):
    """Issue 19: Ctrl-C with --output keeps what was measured, marked partial; a profile is never saved."""
    interrupt_after(monkeypatch, 1)
    out = tmp_path / "bench.json"
    result = invoke([*TINY, "--format", "json", "--output", str(out), "--save-profile", "never"])
    assert result.exit_code == 130 and result.stdout == ""
    assert not (config_dir / "profiles" / "never.yaml").exists()
    doc = json.loads(out.read_text())
    assert doc["partial"] is True and len(doc["points"]) == 1
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "cfg") == ["bench.json"]  # no temporary file
    assert f"partial result written to {out}" in result.stderr
    assert "PARTIAL" in invoke(["report", str(out)]).stdout  # and it reads back as partial


def test_real_subprocess_run(tmp_path):
    out = tmp_path / "b.json"
    args = [*TINY, "--dtype", "float32", "--no-verify", "--format", "json", "-o", str(out)]
    proc = subprocess.run(
        [sys.executable, "-m", "flopcast", *args], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    assert json.loads(out.read_text())["roofline"]["peak_flops_per_s"]["float32"] > 0
