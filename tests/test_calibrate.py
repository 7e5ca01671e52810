"""`flopcast calibrate`: the GEMM ceiling fitted to measured steps, the logs it reads, the profile it saves.

The synthetic check makes its own truth: a profile whose ``calibration.matmul_efficiency`` is set here,
step figures predicted for it by ``flopcast.estimate`` (the library's search path, not the backtest's
stacked path the fit uses), fed back as measurements on a profile with a wrong ceiling. The log checks use
sample logs in tests/data written for these tests in each framework's step-line layout, measured slower
than flopcast predicts for the shipped H100 profile (the test checks that first).
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import flopcast
from flopcast.calibration.calibrate import calibrate
from flopcast.calibration.logs import read_log
from flopcast.calibration.measured import load_measured
from flopcast.hardware import load_catalog, user_profiles_dir

DATA = Path(__file__).parent / "data"
LOGS = {
    "torchtitan": DATA / "torchtitan_llama2_7b_8xh100.log",
    "megatron": DATA / "megatron_llama2_7b_8xh100.log",
    "deepspeed": DATA / "deepspeed_llama2_7b_8xh100.log",
}
LOG_OPTIONS = ("--model", "llama-2-7b", "--hardware", "h100-80gb", "--devices", "8", "--tp", "1", "--pp", "1",
               "--micro-batch", "1", "--global-batch", "64")  # fmt: skip
TRUE_CEILING = 0.55  # the synthetic cluster's large-GEMM fraction of peak
WRONG_CEILING = 0.85  # what the profile being calibrated claims before


def _lab_profile(profile_id: str, ceiling: float) -> Path:
    """An H100 copy in an uncalibrated family (so its own matmul_efficiency is used) in the user profile dir."""
    doc = load_catalog().get("h100-80gb").model_dump(mode="json", exclude_none=True)
    doc.update(id=profile_id, aliases=[], family="test-lab",
               calibration={"matmul_efficiency": ceiling, "fitted_on": "set by the test"})  # fmt: skip
    folder = user_profiles_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{profile_id}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


# (devices, tp, dp, micro_batch, zero, recompute, target): four distinct layouts, three kinds of target
LAYOUTS = [
    (8, 1, 8, 1, 1, "selective", "step_seconds"),
    (8, 2, 4, 2, 1, "none", "tokens_per_second"),
    (8, 4, 2, 4, 0, "full", "tflops_per_device"),
    (16, 2, 8, 1, 1, "selective", "step_seconds"),
]


def _synthetic_csv(tmp_path: Path) -> Path:
    _lab_profile("lab-truth", TRUE_CEILING)
    rows = []
    for devices, tp, dp, mb, zero, recompute, target in LAYOUTS:
        rep = flopcast.estimate("llama-2-7b", "1B", "lab-truth", devices, tp=tp, pp=1, dp=dp, micro_batch=mb,
                                global_batch=64, zero=zero, recompute=recompute)  # fmt: skip
        value = {"step_seconds": rep.time.step_seconds, "tokens_per_second": rep.throughput.tokens_per_second,
                 "tflops_per_device": rep.throughput.model_tflops_per_device}[target]  # fmt: skip
        rows.append({"id": f"tp{tp}-dp{dp}-mb{mb}", "model": "llama-2-7b", "devices": devices, "tp": tp, "pp": 1,
                     "dp": dp, "micro_batch": mb, "global_batch": 64, "zero": zero, "recompute": recompute,
                     target: repr(value)})  # fmt: skip
    path = tmp_path / "steps.csv"
    names = list(dict.fromkeys(k for r in rows for k in r))
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=names)
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_synthetic_steps_recover_the_ceiling_within_one_percent(tmp_path):
    path = _synthetic_csv(tmp_path)
    _lab_profile("lab-wrong", WRONG_CEILING)
    base = load_catalog().get("lab-wrong")
    report = calibrate(load_measured(path, hardware="lab-wrong"), base)
    fitted = report.fitted[0]
    assert fitted.name == "matmul_efficiency"
    assert abs(fitted.value / TRUE_CEILING - 1) < 0.01
    assert report.distinct_layouts == 4 and report.runs == 4
    assert report.written_family == "test-lab"  # an uncalibrated family keeps its name
    # the wrong ceiling predicted too fast: every row's time was under-predicted, and the fit closes it
    assert report.before.median_abs_error > 0.2
    assert report.after.max_abs_error < 0.01
    assert report.after.p10_factor == pytest.approx(1.0, abs=1e-3)
    assert report.after.p90_factor == pytest.approx(1.0, abs=1e-3)


def test_synthetic_fit_with_overhead_finds_none(tmp_path):
    path = _synthetic_csv(tmp_path)
    _lab_profile("lab-wrong", WRONG_CEILING)
    report = calibrate(load_measured(path, hardware="lab-wrong"), load_catalog().get("lab-wrong"), fit_overhead=True)
    ceiling, overhead = report.fitted
    assert abs(ceiling.value / TRUE_CEILING - 1) < 0.02
    assert overhead.name == "step_overhead_seconds" and overhead.value < 0.02 * min(
        r.measured for r in report.rows if r.target == "step_seconds"
    )


@pytest.mark.parametrize("name", sorted(LOGS))
def test_each_sample_log_parses_skipping_warm_up(name):
    steps = read_log(LOGS[name], skip_steps=3)
    assert steps.format == name
    assert steps.skipped == 3 and steps.steps[0] == 4 and len(steps.values) == 9


@pytest.mark.parametrize("name", sorted(LOGS))
def test_a_log_slower_than_predicted_lowers_the_ceiling_and_slows_the_profile(cli, name):
    result = cli("calibrate", LOGS[name], *LOG_OPTIONS, "--save-profile", f"my-{name}", "-f", "json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    row = report["rows"][0]
    # the sample log is slower than the shipped profile predicts: a step time above, a rate below the prediction
    if row["target"] == "step_seconds":
        assert row["error_before"] < -0.1
    else:
        assert row["error_before"] > 0.1
    assert report["fitted"][0]["value"] < report["base_ceiling"]
    assert abs(row["error_after"]) < 0.01
    assert any("one measured row" in w for w in report["warnings"])
    job = ("--model", "llama-2-7b", "--tokens", "1B", "--devices", "8", "--tp", "1", "--pp", "1",
           "--micro-batch", "1", "--global-batch", "64", "-f", "json")  # fmt: skip
    shipped = cli("estimate", *job, "--hardware", "h100-80gb")
    mine = cli("estimate", *job, "--hardware", f"my-{name}")
    assert shipped.exit_code == 0 and mine.exit_code == 0, mine.stderr
    before = json.loads(shipped.stdout)["time"]["step_seconds"]
    estimate = json.loads(mine.stdout)
    assert estimate["time"]["step_seconds"] > before * 1.1
    # ... and `estimate` on the calibrated profile predicts what the log measured
    key = ("time", "step_seconds") if row["target"] == "step_seconds" else ("throughput", "tokens_per_second")
    assert estimate[key[0]][key[1]] == pytest.approx(row["measured"], rel=0.01)


def test_saved_profile_is_a_valid_profile_with_its_calibration(cli, isolated_user_config):
    result = cli("calibrate", LOGS["megatron"], *LOG_OPTIONS, "--save-profile", "my-h100", "-q")
    assert result.exit_code == 0, result.stderr
    path = Path(isolated_user_config) / "profiles" / "my-h100.yaml"
    doc = yaml.safe_load(path.read_text())
    assert doc["id"] == "my-h100" and 0 < doc["calibration"]["matmul_efficiency"] < 1
    assert "calibrate" in doc["calibration"]["fitted_on"]
    assert cli("hardware", "validate", path).exit_code == 0
    shown = cli("hardware", "show", "my-h100", "-f", "json")
    assert shown.exit_code == 0 and json.loads(shown.stdout)["origin"] == "user config"
    again = cli("calibrate", LOGS["megatron"], *LOG_OPTIONS, "--save-profile", "my-h100")
    assert again.exit_code == 2 and "exists" in again.stderr  # no overwrite without --force


def test_report_round_trips_through_flopcast_report(cli, tmp_path):
    out = tmp_path / "cal.json"
    assert cli("calibrate", LOGS["deepspeed"], *LOG_OPTIONS, "-f", "json", "-o", out).exit_code == 0
    shown = cli("report", out, "-f", "markdown")
    assert shown.exit_code == 0 and "matmul_efficiency" in shown.stdout
    table = cli("report", out)
    assert table.exit_code == 0 and "Calibration of h100-80gb" in table.stdout


def test_calibrate_json_never_imports_rich(tmp_path):
    code = (
        "import sys\nfrom flopcast.cli import main\n"
        "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
        "print('RICH' if 'rich' in sys.modules else 'NO-RICH', file=sys.stderr)"
    )
    env = {**os.environ, "FLOPCAST_CONFIG_DIR": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-c", code, "calibrate", str(LOGS["megatron"]), *LOG_OPTIONS, "-f", "json"],
                          capture_output=True, text=True, timeout=120, env=env)  # fmt: skip
    assert json.loads(proc.stdout)["report"] == "calibration"
    assert proc.stderr.strip().endswith("NO-RICH")


# --- bad input: one line on stderr, no traceback, exit 2 ----------------------------------------------------------


def _csv(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "runs.csv"
    path.write_text(text)
    return path


HEAD = "id,model,hardware,devices,tp,pp,micro_batch,global_batch,step_seconds\n"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (HEAD + "a,llama-2-7b,h100-80gb,8,1,1,1,64,5\nb,llama-2-7b,a100-80gb,8,2,1,1,64,6\n", "2 hardware profiles"),
        ("id,model,hardware,devices,speed\na,llama-2-7b,h100-80gb,8,5\n", "unknown column(s) speed"),
        ("id,model,hardware,devices,step_seconds,tokens_per_second\na,llama-2-7b,h100-80gb,8,5,9\n", "one target"),
        ("id,model,hardware,devices\na,llama-2-7b,h100-80gb,8\n", "exactly one target"),
        (HEAD + "ok,llama-2-7b,h100-80gb,8,1,1,1,64,5\nbad-row,llama-2-7b,h100-80gb,8,3,1,1,64,5\n", "bad-row"),
        (HEAD + "a,llama-2-7b,h100-80gb,8,1,1,1,64,-5\n", "positive"),
    ],
    ids=["mixed-hardware", "unknown-column", "two-targets", "no-target", "layout-does-not-fit", "negative"],
)
def test_bad_tables_are_one_line(cli, one_line_error, tmp_path, text, needle):
    one_line_error(cli("calibrate", _csv(tmp_path, text)), 2, needle)


def test_a_log_without_step_lines_names_the_formats_tried(cli, one_line_error):
    line = one_line_error(cli("calibrate", DATA / "no_steps.log", *LOG_OPTIONS), 2, "no step lines")
    assert all(f in line for f in ("torchtitan", "megatron", "deepspeed"))


def test_every_step_skipped_is_refused(cli, one_line_error):
    one_line_error(cli("calibrate", LOGS["megatron"], *LOG_OPTIONS, "--skip-steps", "50"), 2, "--skip-steps")


def test_overhead_needs_two_distinct_layouts(cli, one_line_error):
    one_line_error(cli("calibrate", LOGS["megatron"], *LOG_OPTIONS, "--fit", "ceiling,overhead"), 2, "2 distinct")


def test_a_log_needs_a_model(cli, one_line_error):
    one_line_error(cli("calibrate", LOGS["megatron"], "--hardware", "h100-80gb", "--devices", "8"), 2, "--model")


def test_mixed_hardware_is_resolved_by_naming_one(cli, tmp_path):
    text = HEAD + "a,llama-2-7b,h100-80gb,8,1,1,1,64,5\nb,llama-2-7b,a100-80gb,8,2,1,1,64,6\n"
    result = cli("calibrate", _csv(tmp_path, text), "--hardware", "a100-80gb", "-f", "json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["hardware"] == "a100-80gb" and [r["run_id"] for r in report["rows"]] == ["b"]


def test_an_alias_in_the_hardware_column_names_the_same_profile(cli, tmp_path):
    text = HEAD + "a,llama-2-7b,h100,8,1,1,1,64,5\nb,llama-2-7b,h100-80gb,8,2,1,1,64,6\n"
    result = cli("calibrate", _csv(tmp_path, text), "--hardware", "h100-80gb", "-f", "json")
    assert result.exit_code == 0, result.stderr
    assert [r["run_id"] for r in json.loads(result.stdout)["rows"]] == ["a", "b"]
    # without --hardware the alias and the id are still one hardware, not "mixed"
    assert cli("calibrate", _csv(tmp_path, text), "-f", "json").exit_code == 0


def test_the_library_calibrate_matches_the_command(cli, tmp_path):
    """flopcast.calibrate takes the same inputs as the command and fits the same ceiling."""
    import json
    from pathlib import Path

    import flopcast

    log = Path(__file__).parent / "data" / "torchtitan_llama2_7b_8xh100.log"
    args = dict(model="llama-2-7b", hardware="h100-80gb", devices=8, tp=1, dp=8, micro_batch=1, global_batch=8)
    report = flopcast.calibrate(log, **args)
    out = cli("calibrate", str(log), "-m", "llama-2-7b", "-H", "h100-80gb", "--devices", "8", "--tp", "1",
              "--dp", "8", "--micro-batch", "1", "--global-batch", "8", "--format", "json")  # fmt: skip
    assert out.exit_code == 0, out.stderr
    cli_value = json.loads(out.stdout)["fitted"][0]["value"]
    assert report.fitted[0].value == cli_value
