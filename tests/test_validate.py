"""`flopcast validate`: the backtest on the shipped published runs, its bars, and bad input."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from flopcast.calibration.runs import load_runs, published_runs_path, shipped_runs_paths
from flopcast.estimator.efficiency import EfficiencyParams
from flopcast.reports.validate import COVERAGE_BAR, MEDIAN_ABS_ERROR_BAR

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
    assert len(load_runs()) == 35


def _frozen_runs():
    from flopcast.calibration.runs import split_runs

    return split_runs([r for path in shipped_runs_paths() for r in load_runs(path)])


def test_validate_gates_on_the_frozen_holdout(cli):
    """Default validate: only the frozen held-out families (never fitted), the three figures side by side
    with the held-out one as the claim, and the DESIGN bar stated whether it is met or missed."""
    result = cli("validate", "--format", "json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    fit_runs, held = _frozen_runs()
    assert {r["run_id"] for r in doc["rows"]} == {r.run_id for r in held}
    assert {r["split"] for r in doc["rows"]} == {"holdout"}
    assert doc["claim"] == "held_out" and set(doc["figures"]) == {"in_sample", "leave_one_family_out", "held_out"}
    s = doc["summary"]
    assert s["gated_on"] == "frozen holdout" and s["passed"] and not s["failures"]
    met = s["median_abs_error"] <= MEDIAN_ABS_ERROR_BAR and s["coverage"] >= COVERAGE_BAR
    assert s["design_bars_met"] is met and (s["gate"] == "design") is met
    assert bool(s["design_failures"]) is not met
    for r in doc["rows"]:
        assert r["predicted"] > 0 and r["layout"]
        assert r["error"] == pytest.approx(r["predicted"] / r["reported"] - 1)
    # the leave-one-family-out figures of the fit cover the fit families only: the holdout never enters a fit
    assert {r.family for r in fit_runs} | {"all"} == set(doc["leave_one_group_out"])
    assert not {r.family for r in held} & set(doc["leave_one_group_out"])


def test_stored_held_out_figures_match_a_fresh_computation(cli):
    """The held-out figures stored at the fit (and the regression bar built on them) equal what validate
    computes now with this estimator (refit with `python scripts/refit_efficiency.py --write` after model
    changes); each held-out run's stored prediction too."""
    stored = EfficiencyParams.load().extra
    doc = json.loads(cli("validate", "--format", "json").stdout)
    fresh = doc["figures"]["held_out"]
    for key in ("runs", "median_abs_error", "p90_abs_error", "coverage"):
        assert fresh[key] == pytest.approx(stored["held_out"][key], abs=1e-9), key
    for row in doc["rows"]:
        assert row["predicted"] == pytest.approx(stored["held_out_runs"][row["run_id"]], rel=1e-9)
    every = json.loads(cli("validate", "--all", "--format", "json").stdout)
    fitted = [r for r in every["rows"] if r["split"] == "fit"]
    median = float(np.median([abs(r["error"]) for r in fitted]))
    assert median == pytest.approx(stored["in_sample"]["median_abs_error"], abs=1e-9)


def test_holdout_is_frozen_by_family_and_never_fitted():
    """The held-out families are listed in the data with the reason for the choice; the fit names the
    families it used and none of them is held out; the band is computed from fit families only."""
    from importlib.resources import files

    doc = json.loads(files("flopcast").joinpath("data/holdout_families.json").read_text(encoding="utf-8"))
    assert doc["holdout_families"] and len(doc["reason"]) > 100
    params = EfficiencyParams.load()
    assert sorted(doc["holdout_families"]) == params.extra["holdout_families"]
    assert not set(params.extra["fit_families"]) & set(doc["holdout_families"])
    fit_runs, held = _frozen_runs()
    assert f"{len(fit_runs)} published runs" in params.fitted_on and len(held) >= 15
    assert set(params.extra["source_families"]) == {r.family for r in fit_runs}
    assert params.log_ratio_p10 < 0 < params.log_ratio_p80 <= params.log_ratio_p90
    assert params.log_ratio_p10_uncalibrated <= params.log_ratio_p10
    assert params.log_ratio_p90_uncalibrated >= params.log_ratio_p90
    assert "bar" not in params.extra["method"].lower()  # no loss term knows the bar


def test_coverage_is_measured_on_runs_the_band_was_not_computed_from():
    """The band comes from the fit families' leave-one-family-out residuals; its coverage is measured on the
    frozen holdout (neither the constants nor the band saw it) by predicting it afresh."""
    from flopcast.calibration.backtest import predict_stacked, stack_runs
    from flopcast.hardware import load_catalog

    params = EfficiencyParams.load()
    _, held = _frozen_runs()
    preds = predict_stacked(stack_runs(held, load_catalog()), params)
    coverage = float(np.mean([p.covered for p in preds]))
    assert coverage == pytest.approx(params.extra["held_out"]["coverage"], abs=1e-9)
    # each held-out run is inside its range exactly when its residual lies between the stored percentiles
    for p in preds:
        if p.calibrated:
            inside = params.log_ratio_p10 <= p.log_time_ratio <= params.log_ratio_p90
            assert p.covered is inside or abs(p.log_time_ratio - params.log_ratio_p90) < 1e-9


def test_second_file_keeps_the_source_columns():
    """The source columns in their order, plus the optional ``cp`` column (context parallelism, which the
    source has no column for: Llama 3's 128k stage ran cp 16)."""
    with open(shipped_runs_paths()[1], newline="", encoding="utf-8") as handle:
        assert next(csv.reader(handle)) == [*SOURCE_COLUMNS, "cp"]
    assert len(load_runs(shipped_runs_paths()[1])) == 43  # 44 compiled, 4 from 2024+ model cards removed, 3 Nemotron-4


def test_table_prints_rows_and_summary(cli):
    result = cli("validate")
    assert result.exit_code == 0
    for part in ("llama2-7b", "korthikanti-22b-selective", "in-sample", "leave-one-family-out", "frozen holdout",
                 "the claim", "DESIGN bar", "median |error|", "coverage", "gate:", "PASS"):  # fmt: skip
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
    doc = json.loads(cli("validate", str(bad), "--format", "json").stdout)
    assert doc["summary"]["gate"] == "design" and doc["summary"]["gated_on"] == "the given runs"


def test_csv_format_one_row_per_run(cli):
    result = cli("validate", "--format", "csv", "--quiet")
    rows = list(csv.DictReader(result.stdout.splitlines()))
    assert result.exit_code == 0 and len(rows) == len(_frozen_runs()[1]) and {r["split"] for r in rows} == {"holdout"}


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
    assert len(doc["rows"]) == 35 + 43 and doc["summary"]["runs"] == len(_frozen_runs()[1])
    assert {r["run_id"] for r in doc["rows"]} == {r.run_id for p in shipped_runs_paths() for r in load_runs(p)}
    one_line_error(cli("validate", str(shipped_runs_paths()[0]), "--all"), 2, "--all")
