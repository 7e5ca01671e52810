"""The calibration report (`flopcast calibrate`): measured vs predicted steps before and after the fit, the
fitted constant(s) with their bounds, the residual figures and the profile written (if any)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from flopcast.reports.base import ReportBase


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FittedConstant(_Section):
    name: str
    value: float
    lower: float
    upper: float
    on_bound: bool
    unit: str
    meaning: str


class Residuals(_Section):
    """Figures of the residuals log(measured time / predicted time) over the measured rows."""

    median_abs_error: float = Field(description="median |predicted / measured time − 1|")
    max_abs_error: float
    rms_log_ratio: float = Field(description="root mean square of log(measured / predicted time)")
    p10_factor: float = Field(description="P10 of measured / predicted time (in-sample)")
    p90_factor: float = Field(description="P90 of measured / predicted time (in-sample)")


class CalibrationRow(_Section):
    run_id: str
    source: str
    target: str = Field(description="step_seconds (s), tokens_per_second (whole job) or tflops_per_device (1e12/s)")
    measured: float
    predicted_before: float
    error_before: float = Field(description="predicted / measured − 1, with the profile as it was")
    predicted_after: float
    error_after: float = Field(description="predicted / measured − 1, with the fitted constants")
    layout: str = Field(description="tp·pp·dp, micro-batch, global batch, ZeRO, recompute (searched where blank)")
    devices: int
    measured_peak_memory_bytes: float | None = None
    predicted_memory_bytes: float
    memory_error: float | None = Field(None, description="predicted / measured peak memory − 1 (not fitted)")


class CalibrationReport(ReportBase):
    hardware: str = Field(description="the base hardware profile id")
    base_family: str | None
    written_family: str | None = Field(description="the family the calibrated profile declares")
    base_ceiling: float = Field(description="the GEMM ceiling (fraction of peak) flopcast used before")
    ceiling_factor: float = Field(description="fitted matmul_efficiency / base_ceiling")
    fitted: list[FittedConstant]
    runs: int
    distinct_layouts: int
    before: Residuals
    after: Residuals
    in_sample: bool = Field(True, description="the range comes from the fitted rows themselves")
    rows: list[CalibrationRow]
    sources: list[str]
    seconds: float = Field(description="wall-clock time of the fit")
    evaluations: int = Field(description="vectorised evaluations of the measured rows")
    saved_profile: str | None = Field(None, description="the profile file written (--save-profile)")
    profile_name: str | None = None
