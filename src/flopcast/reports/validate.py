"""The validate report: every published run predicted vs reported, and the quality bars (DESIGN §8)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from flopcast.reports.base import ReportBase

# DESIGN §8 "fidelity": median |error| ≤ 10%, no trust-A run beyond ±25%, P10–P90 covers ≥ 75% of runs.
MEDIAN_ABS_ERROR_BAR = 0.10
TRUST_A_ABS_ERROR_BAR = 0.25
COVERAGE_BAR = 0.75


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ValidateRow(_Section):
    run_id: str
    kind: str
    hardware: str
    devices: int
    target: str
    reported: float
    predicted: float
    p10: float
    p90: float
    error: float = Field(description="predicted / reported − 1")
    covered: bool = Field(description="reported value inside the P10–P90 range")
    trust: str
    layout: str = Field(description="the layout the estimator used (searched where the run does not publish it)")
    hardware_calibrated: bool
    source: str


class Bars(_Section):
    median_abs_error_max: float = MEDIAN_ABS_ERROR_BAR
    trust_a_abs_error_max: float = TRUST_A_ABS_ERROR_BAR
    coverage_min: float = COVERAGE_BAR


class ValidateSummary(_Section):
    runs: int
    median_abs_error: float
    p90_abs_error: float
    coverage: float
    worst_trust_a_run: str | None
    worst_trust_a_error: float | None
    passed: bool
    failures: list[str]


class ValidateReport(ReportBase):
    report: Literal["validate"] = "validate"
    source: str = Field(description="the CSV of published runs")
    fitted_on: str
    fitted_date: str
    rows: list[ValidateRow]
    summary: ValidateSummary
    bars: Bars = Field(default_factory=Bars)
    leave_one_group_out: dict = Field(
        default_factory=dict, description="errors of each source family predicted by a fit without it"
    )
