"""`flopcast validate`: the backtest on the shipped published runs, its bars, and bad input."""

from __future__ import annotations

import csv
import json

import pytest

from flopcast.calibration.runs import load_runs, published_runs_path, shipped_runs_paths
from flopcast.estimator.efficiency import EfficiencyParams
from flopcast.reports.validate import COVERAGE_BAR, MEDIAN_ABS_ERROR_BAR, TRUST_A_ABS_ERROR_BAR

# The columns of shared/data/calibration_runs.csv (its README); the shipped copy keeps every one.
SOURCE_COLUMNS = [
    "run_id",
    "kind",
    "params",
    "layers",
    "d_model",
    "heads",
    "kv_heads",
    "head_dim",
    "ffn",
    "gated_ffn",
    "vocab",
    "seq_len",
    "tokens",
    "hardware",
    "devices",
    "tp",
    "pp",
    "dp",
    "micro_batch",
    "global_batch_seqs",
    "recompute",
    "target",
    "target_value",
    "flops_convention",
    "trust",
    "source",
]


def _shipped_rows() -> list[dict]:
    with open(published_runs_path(), newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_shipped_runs_keep_every_source_column():
    with open(published_runs_path(), newline="", encoding="utf-8") as handle:
        header = next(csv.reader(handle))
    assert header == SOURCE_COLUMNS
    assert len(load_runs()) == 33


def test_validate_meets_the_design_bars(cli):
    """DESIGN §8: median |error| ≤ 10%, no trust-A run beyond ±25%, P10–P90 covers ≥ 75% of runs."""
    result = cli("validate", "--format", "json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    s = doc["summary"]
    assert s["passed"] and s["runs"] == 33 and not s["failures"]
    assert s["median_abs_error"] <= MEDIAN_ABS_ERROR_BAR
    assert s["coverage"] >= COVERAGE_BAR
    trust_a = [r for r in doc["rows"] if r["trust"] == "A"]
    assert trust_a and all(abs(r["error"]) <= TRUST_A_ABS_ERROR_BAR for r in trust_a)
    # every row compares like with like and says which layout it used
    for r in doc["rows"]:
        assert r["predicted"] > 0 and r["layout"]
        assert r["error"] == pytest.approx(r["predicted"] / r["reported"] - 1)
    # the generalisation check of the fit (leave one source family out, over both shipped files) alongside
    families = {r.family for path in shipped_runs_paths() for r in load_runs(path)}
    assert {"megatron21", "mpt", "llama", "pythia", "llama3", "megatron19"} <= families
    assert families | {"all"} == set(doc["leave_one_group_out"])


def test_stored_fit_is_in_sync_with_the_code(cli):
    """The fitted constants were fitted with this estimator: their stored in-sample median errors equal
    what validate measures now, on the calibration set and on every shipped run (refit with
    `python scripts/refit_efficiency.py --write` after model changes)."""
    stored = EfficiencyParams.load().extra
    doc = json.loads(cli("validate", "--format", "json").stdout)
    calibration = stored["in_sample_by_file"]["published_runs.csv"]["median_abs_error"]
    assert doc["summary"]["median_abs_error"] == pytest.approx(calibration, abs=1e-6)
    every = json.loads(cli("validate", "--all", "--format", "json").stdout)
    assert every["summary"]["median_abs_error"] == pytest.approx(stored["in_sample"]["median_abs_error"], abs=1e-6)


def test_fit_uses_both_shipped_files_and_bands_come_from_held_out_runs():
    """Both files are fitted on; the P10–P90 band is the 10th–90th percentile of the leave-one-source-family-out
    residuals, so about 80% of runs the model did not see fall inside it."""
    params = EfficiencyParams.load()
    assert params.extra["fitted_files"] == ["published_runs.csv", "holdout_runs.csv"]
    assert "77 published runs" in params.fitted_on
    held_out = params.extra["leave_one_group_out"]["all"]
    assert held_out["runs"] == 77 and 0.75 <= held_out["coverage"] <= 0.85
    assert params.log_ratio_p10 < 0 < params.log_ratio_p90
    assert params.log_ratio_p10_uncalibrated <= params.log_ratio_p10 and params.log_ratio_p90_uncalibrated >= (
        params.log_ratio_p90
    )


def test_second_file_keeps_the_source_columns():
    with open(shipped_runs_paths()[1], newline="", encoding="utf-8") as handle:
        assert next(csv.reader(handle)) == SOURCE_COLUMNS
    assert len(load_runs(shipped_runs_paths()[1])) == 44


def test_table_prints_rows_and_summary(cli):
    result = cli("validate")
    assert result.exit_code == 0
    for part in ("megatron-1.7b", "llama-65b", "median |error|", "p90 |error|", "coverage", "PASS"):
        assert part in result.stdout


def test_failing_bars_exit_1(cli, tmp_path):
    """Reported figures three times the truth cannot be met: exit 1 and the failed bars named."""
    rows = _shipped_rows()
    for row in rows:
        row["target_value"] = str(float(row["target_value"]) * 3)
    bad = tmp_path / "runs.csv"
    with open(bad, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    result = cli("validate", str(bad))
    assert result.exit_code == 1
    assert "FAIL" in result.stdout and "median" in result.stderr


def test_csv_format_one_row_per_run(cli):
    result = cli("validate", "--format", "csv", "--quiet")
    rows = list(csv.DictReader(result.stdout.splitlines()))
    assert result.exit_code == 0 and len(rows) == 33 and rows[0]["run"] == "megatron-1.7b"


def test_missing_file_is_one_line_exit_2(cli, one_line_error, tmp_path):
    one_line_error(cli("validate", str(tmp_path / "nope.csv")), 2, "does not exist")


def test_bad_rows_are_one_line_exit_2(cli, one_line_error, tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("run_id,kind\nx,throughput\n", encoding="utf-8")
    one_line_error(cli("validate", str(path)), 2, "missing column")
    rows = _shipped_rows()[:1]
    rows[0]["target"] = "vibes"
    bad = tmp_path / "bad2.csv"
    with open(bad, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    one_line_error(cli("validate", str(bad)), 2, "unknown target")


def test_validate_all_checks_both_shipped_files(cli, one_line_error):
    doc = json.loads(cli("validate", "--all", "--format", "json").stdout)
    assert doc["summary"]["runs"] == 33 + 44
    assert {r["run_id"] for r in doc["rows"]} == {r.run_id for p in shipped_runs_paths() for r in load_runs(p)}
    one_line_error(cli("validate", str(shipped_runs_paths()[0]), "--all"), 2, "--all")
