"""`flopcast estimate` through typer's CliRunner (and one real subprocess), plus the Python API."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

import pytest

from flopcast.errors import FlopcastError

LLAMA7B = ["--model", "llama-2-7b", "--tokens", "2T", "--hardware", "a100-80gb", "--devices", "256"]


def _no_nan(name: str):
    raise AssertionError(f"{name} is not valid JSON")


def _json(result) -> dict:
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return json.loads(result.stdout, parse_constant=_no_nan)  # strict JSON: no NaN or Infinity


def test_json_has_the_design_fields(cli):
    """DESIGN §7: the estimate report's required fields, under these names."""
    doc = _json(cli("estimate", *LLAMA7B, "--format", "json"))
    assert doc["report"] == "estimate" and doc["schema_version"] and doc["flopcast_version"]
    required = {
        "model": ["params"],
        "hardware": ["id"],
        "parallelism": ["tp", "pp", "dp", "zero", "recompute", "micro_batch", "global_batch"],
        "flops": ["per_token", "total", "hardware_total"],
        "memory": ["per_device_bytes", "capacity_bytes", "fits", "breakdown"],
        "time": ["step_seconds", "wall_clock_seconds", "device_hours", "device_hours_p10", "device_hours_p90"],
        "efficiency": ["mfu", "hfu"],
        "throughput": ["tokens_per_second", "model_tflops_per_device"],
        "cost": ["total_usd", "usd_per_device_hour", "tier"],
        "energy": ["kwh", "co2_kg"],
    }
    for section, keys in required.items():
        for key in keys:
            assert key in doc[section], f"{section}.{key}"
    assert isinstance(doc["warnings"], list) and isinstance(doc["inputs"], dict)
    assert doc["hardware"]["id"] == "a100-80gb" and doc["memory"]["fits"] is True
    # tp·pp·dp uses every device; cost = device-hours × price
    p = doc["parallelism"]
    assert p["tp"] * p["pp"] * p["dp"] == 256 and p["layout_chosen_automatically"] is True
    assert doc["cost"]["total_usd"] == pytest.approx(doc["time"]["device_hours"] * doc["cost"]["usd_per_device_hour"])
    # FLOPs by hand (PaLM App. B): 6·N + 12·L·d·s, N = matmul parameters; Llama 2 7B: L=32, d=4096, s=4096
    n = doc["model"]["matmul_params"]
    assert doc["flops"]["per_token"] == pytest.approx(6 * n + 12 * 32 * 4096 * 4096)
    assert doc["flops"]["total"] == pytest.approx(doc["flops"]["per_token"] * 2e12)
    assert doc["time"]["device_hours_p10"] < doc["time"]["device_hours"] < doc["time"]["device_hours_p90"]


def test_json_writer_matches_pydantic(cli):
    """The fast JSON writer produces the same document pydantic's own serializer does."""
    import flopcast

    report = flopcast.estimate(model="llama-2-7b", tokens="2T", hardware="a100-80gb", devices=256)
    assert json.loads(report.to_json()) == json.loads(report.model_dump_json())
    # and the document validates against the report model
    from flopcast.reports.estimate import EstimateReport

    EstimateReport.model_validate_json(report.to_json())


def test_given_layout_is_used_and_reported(cli):
    doc = _json(
        cli(
            "estimate",
            *LLAMA7B,
            "--tp",
            "2",
            "--pp",
            "2",
            "--micro-batch",
            "1",
            "--global-batch",
            "512",
            "--zero",
            "1",
            "--recompute",
            "selective",
            "--format",
            "json",
        )
    )
    p = doc["parallelism"]
    assert (p["tp"], p["pp"], p["dp"], p["zero"], p["recompute"]) == (2, 2, 64, 1, "selective")
    assert p["layout_chosen_automatically"] is False
    assert doc["time"]["step_breakdown"]["bubble_seconds"] > 0  # pp = 2 has a bubble


def test_table_is_the_default(cli):
    result = cli("estimate", *LLAMA7B)
    assert result.exit_code == 0, result.stderr
    for part in ("Memory per device", "Where the time goes", "compute", "pipeline bubble", "device-hours", "MFU"):
        assert part in result.stdout


def test_csv_and_markdown_give_one_row(cli):
    result = cli("estimate", *LLAMA7B, "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert result.exit_code == 0 and len(rows) == 1
    assert rows[0]["hardware"] == "a100-80gb" and float(rows[0]["device_hours"]) > 0
    md = cli("estimate", *LLAMA7B, "--format", "markdown", "--quiet")
    lines = [line for line in md.stdout.splitlines() if line.startswith("|")]
    assert md.exit_code == 0 and len(lines) == 3  # header, separator, one row
    assert md.stderr == ""


def test_output_file_is_written_atomically_and_not_overwritten(cli, tmp_path, one_line_error):
    out = tmp_path / "est.json"
    result = cli("estimate", *LLAMA7B, "--format", "json", "--output", str(out))
    assert result.exit_code == 0 and result.stdout == ""
    assert json.loads(out.read_text())["report"] == "estimate"
    before = out.read_text()
    again = cli("estimate", *LLAMA7B, "--format", "json", "--output", str(out))
    one_line_error(again, 2, "exists")
    assert out.read_text() == before
    forced = cli("estimate", *LLAMA7B, "--format", "json", "--output", str(out), "--force", "--quiet")
    assert forced.exit_code == 0 and forced.stderr == ""


def test_does_not_fit_is_exit_0_with_the_nearest_fix(cli):
    """Llama 2 7B (6.74e9 params) on 8 A100-80GB, plain data parallel, no ZeRO: model states alone need
    16 B × 6.74e9 = 107.8 GB per device (ZeRO paper: 2 + 2 + 12 bytes/param) > 80 GB. Not an error:
    fits is false and the warnings name the smallest changes that fit (ZeRO shards 12 B/param over 8)."""
    assert pytest.approx(107.8, abs=0.05) == 16 * 6.74e9 / 1e9
    doc = _json(
        cli(
            "estimate",
            "--model",
            "llama-2-7b",
            "--tokens",
            "1B",
            "--devices",
            "8",
            "--tp",
            "1",
            "--pp",
            "1",
            "--micro-batch",
            "1",
            "--global-batch",
            "64",
            "--zero",
            "0",
            "--recompute",
            "none",
            "--format",
            "json",
        )
    )
    assert doc["memory"]["fits"] is False
    assert doc["memory"]["per_device_bytes"] > 107.8e9 > doc["memory"]["capacity_bytes"]
    text = " ".join(doc["warnings"])
    assert "does not fit" in text and "fits with:" in text and "--zero" in text
    assert doc["fit_suggestions"] and all(s["per_device_bytes"] <= 80e9 for s in doc["fit_suggestions"])


def test_mfu_override_gives_narayanan_eq4(cli):
    """Narayanan et al. 2021 eq. 4: 8·T·P/(n·X) = 8·300e9·175e9/(1024·140e12) s = 33.9 days for GPT-3 on
    1024 A100 at 140 TFLOP/s (hardware FLOPs, i.e. 6/8 of it model FLOPs); our FLOPs add attention (+4.7%)."""
    mfu = round(140 / 312 * 6 / 8, 6)
    doc = _json(
        cli(
            "estimate",
            "--model",
            "gpt3-175b",
            "--tokens",
            "300B",
            "--devices",
            "1024",
            "--tp",
            "8",
            "--pp",
            "8",
            "--recompute",
            "full",
            "--mfu",
            str(mfu),
            "--format",
            "json",
        )
    )
    days = doc["time"]["training_seconds"] / 86400
    assert days == pytest.approx(8 * 300e9 * 175e9 / (1024 * 140e12) / 86400, rel=0.05)
    assert doc["efficiency"]["mfu"] == pytest.approx(mfu, rel=1e-6) and doc["efficiency"]["mfu_forced"]


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--tokens", "0"], ["--tokens", "zero"]),
        (["--tokens", "-5T"], ["--tokens", "negative"]),
        (["--devices", "0"], ["--devices", "zero"]),
        (["--devices", "-8"], ["--devices", "negative"]),
        (["--tp", "2", "--pp", "2", "--dp", "3"], ["tp·pp·dp", "12", "256"]),
        (["--tp", "3"], ["--tp 3", "32 attention heads"]),
        (["--pp", "33"], ["--pp 33", "32 layers"]),  # uneven stages are fine; more stages than layers are not
        (["--pp", "5", "--interleave", "2"], ["--interleave 2", "7 layers", "fullest"]),  # ⌈32/5⌉ = 7
        (["--dp", "256", "--micro-batch", "4", "--global-batch", "100"], ["--global-batch 100", "not divisible"]),
        (["--price-tier", "spot"], ["--price-tier spot", "on-demand"]),
        (["--zero", "4"], ["--zero"]),
        (["--recompute", "some"], ["--recompute"]),
        (["--mfu", "1.5"], ["--mfu"]),
        (["--hardware", "a100-90gb"], ["unknown hardware", "did you mean"]),
    ],
)
def test_bad_input_is_one_line_exit_2(cli, one_line_error, args, fragments):
    base = {"--model": "llama-2-7b", "--tokens": "2T", "--hardware": "a100-80gb", "--devices": "256"}
    for flag, value in zip(args[::2], args[1::2], strict=True):
        base[flag] = value
    argv = [x for kv in base.items() for x in kv]
    one_line_error(cli("estimate", *argv), 2, *fragments)


def test_unknown_preset_suggests(cli, one_line_error):
    line = one_line_error(cli("estimate", "--model", "llama-2-7", "--tokens", "2T", "--devices", "8"), 2)
    assert "llama-2-7b" in line


def test_size_with_architecture_flag_conflicts(cli, one_line_error):
    one_line_error(
        cli("estimate", "--model", "7B", "--layers", "32", "--tokens", "2T", "--devices", "8"), 2, "--layers"
    )


def test_missing_tokens_or_devices(cli, one_line_error):
    one_line_error(cli("estimate", "--model", "llama-2-7b", "--devices", "8"), 2, "--tokens")
    one_line_error(cli("estimate", "--model", "llama-2-7b", "--tokens", "2T"), 2, "--devices")


def test_explicit_architecture_and_units(cli):
    doc = _json(
        cli(
            "estimate",
            "--layers",
            "24",
            "--d-model",
            "2048",
            "--heads",
            "16",
            "--vocab",
            "50k",
            "--seq-len",
            "2k",
            "--tokens",
            "300B",
            "--devices",
            "64",
            "--hardware",
            "a100-40gb",
            "--price-per-hour",
            "$1.10",
            "--format",
            "json",
        )
    )
    assert doc["model"]["seq_len"] == 2000 and doc["model"]["vocab"] == 50000
    assert doc["cost"]["usd_per_device_hour"] == pytest.approx(1.10) and doc["cost"]["tier"] == "custom"


def test_v100_falls_back_to_fp16_and_warns(cli):
    doc = _json(
        cli(
            "estimate",
            "--model",
            "gpt3-1.3b",
            "--tokens",
            "26B",
            "--hardware",
            "v100-32gb",
            "--devices",
            "64",
            "--price-per-hour",
            "1",
            "--format",
            "json",
        )
    )
    assert doc["hardware"]["precision"] == "fp16" and doc["hardware"]["fused_attention"] is False
    assert any("fp16" in w for w in doc["warnings"])
    # Volta is a calibrated family since the fit includes the V100 runs of holdout_runs.csv (Megatron-LM 2019 ...)
    assert doc["hardware"]["calibrated"] is True and not any("wider" in w for w in doc["warnings"])


def test_api_accepts_numbers_and_strings():
    import flopcast

    a = flopcast.estimate(model="llama-2-7b", tokens=2e12, hardware="a100-80gb", devices=256)
    b = flopcast.estimate(model="llama-2-7b", tokens="2T", hardware="a100-80gb", devices="256")
    assert a.time.wall_clock_seconds == b.time.wall_clock_seconds
    with pytest.raises(FlopcastError):
        flopcast.estimate(model="llama-2-7b", tokens="lots", devices=8)


def test_real_subprocess_json_only_on_stdout():
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "flopcast",
            "estimate",
            "--model",
            "llama-2-7b",
            "--tokens",
            "2T",
            "--devices",
            "256",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["report"] == "estimate"
    assert proc.stderr == ""


def test_user_profile_dir_is_used(cli, tmp_path):
    """A profile from --profiles (an id and no family flopcast knows) works, with the wider uncalibrated range."""
    from flopcast.hardware import shipped_profiles_dir

    text = (shipped_profiles_dir() / "a100-80gb.yaml").read_text(encoding="utf-8")
    text = text.replace("id: a100-80gb", "id: my-gpu").replace("aliases: [a100-80, a100-sxm4-80gb]", "aliases: []")
    text = text.replace("family: nvidia-ampere", "family: my-chip")  # a family without calibration runs
    (tmp_path / "my-gpu.yaml").write_text(text, encoding="utf-8")
    doc = _json(
        cli(
            "estimate",
            *LLAMA7B[:-4],
            "--hardware",
            "my-gpu",
            "--devices",
            "256",
            "--profiles",
            str(tmp_path),
            "--format",
            "json",
        )
    )
    assert doc["hardware"]["id"] == "my-gpu" and doc["hardware"]["calibrated"] is False
    calibrated = _json(cli("estimate", *LLAMA7B, "--format", "json"))
    # same physics, wider range: P90/P10 spread larger than for the calibrated a100-80gb
    spread = doc["time"]["device_hours_p90"] / doc["time"]["device_hours_p10"]
    assert spread > calibrated["time"]["device_hours_p90"] / calibrated["time"]["device_hours_p10"]
