"""The validate report: every published run predicted vs reported, and the quality bars (DESIGN §8)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from flopcast.reports.base import ReportBase

# DESIGN §8 "fidelity", on the frozen held-out families: median |error| ≤ 10%, P10–P90 covers ≥ 80% of them.
MEDIAN_ABS_ERROR_BAR = 0.10
COVERAGE_BAR = 0.80
TRUST_A_ABS_ERROR_BAR = 0.25  # reported (the worst trust-A run), no longer a gate: DESIGN §8 dropped it


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
    split: str = Field("given", description="fit (in-sample), holdout (frozen, never fitted) or given (your CSV)")


class Bars(_Section):
    median_abs_error_max: float = MEDIAN_ABS_ERROR_BAR
    trust_a_abs_error_max: float = TRUST_A_ABS_ERROR_BAR
    coverage_min: float = COVERAGE_BAR


class Figures(_Section):
    runs: int
    median_abs_error: float
    p90_abs_error: float
    coverage: float | None = None


class ValidateSummary(_Section):
    gated_on: str = Field(description="the runs the gate is computed on: the frozen holdout, or the given CSV")
    runs: int
    median_abs_error: float
    p90_abs_error: float
    coverage: float
    worst_trust_a_run: str | None
    worst_trust_a_error: float | None
    design_bars_met: bool = Field(description="DESIGN §8: median |error| ≤ 10% and P10–P90 coverage ≥ 80%")
    design_failures: list[str]
    gate: Literal["design", "regression"] = Field(
        description="design: the DESIGN §8 bars; regression: the figures stored at the fit plus a margin, "
        "used while the honest model misses a design bar (the miss is printed, never hidden)"
    )
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
        default_factory=dict, description="errors of each fit family predicted by a fit without it"
    )
    figures: dict[str, Figures] = Field(
        default_factory=dict,
        description="side by side: in_sample (fit runs, stored at the fit), leave_one_family_out (fit runs, "
        "each family by a fit without it), held_out (the frozen holdout, computed now)",
    )
    claim: str = Field("held_out", description="which of the figures is the accuracy flopcast claims")
    regression_bar: dict | None = Field(None, description="the stored held-out figures plus their margins")
    rule_of_thumb: dict = Field(
        default_factory=dict,
        description="flopcast against the 6·N·D / (0.4·peak) rule on the same gated rows: whole_runs "
        "(device-hours) and all (every row the rule can read), median and p90 |error| of each",
    )
