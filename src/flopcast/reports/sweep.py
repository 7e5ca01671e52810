"""The sweep report: one training job estimated at every device count of a range (``estimate --sweep``).

Each row is what ``flopcast estimate --devices N`` predicts for that count (the same layout search, the same
numbers). Units are in the field names (SI: seconds, bytes, USD, kWh); P10–P90 ranges come from the
calibration residuals, as in the estimate report.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from flopcast.reports.base import ReportBase
from flopcast.reports.layout import LayoutInfo, LayoutQueryInfo
from flopcast.reports.plan import ModelSummary


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SweepInputs(LayoutQueryInfo):
    """What was asked, after parsing (None = not given, searched per device count)."""

    model: str
    tokens: float
    hardware: str
    parameter: Literal["devices"] = Field(description="what was swept")
    devices_min: int
    devices_max: int
    precision: str = "bf16"
    mfu: float | None = None
    price_tier: str | None = None
    price_per_hour: float | None = None


class SweepRow(_Section):
    """The estimate at one device count (the fastest layout that fits, as `estimate` chooses it)."""

    devices: int
    layout: LayoutInfo
    fits: bool
    memory_per_device_bytes: float
    capacity_bytes: float
    step_seconds: float
    wall_clock_seconds: float
    wall_clock_seconds_p10: float
    wall_clock_seconds_p90: float
    device_hours: float
    device_hours_p10: float
    device_hours_p90: float
    cost_usd: float | None = Field(description="null when no price is known")
    cost_usd_p10: float | None
    cost_usd_p90: float | None
    energy_kwh: float | None = Field(description="null when the profile publishes no power figure")
    mfu: float
    tokens_per_second: float
    scaling_efficiency: float = Field(
        description="tokens/s per device relative to the smallest device count that fits (1 = linear scaling)"
    )


class SkippedCount(_Section):
    devices: int
    reason: str


class SweepReport(ReportBase):
    """Time, device-hours and cost (with P10–P90) of one job against the number of devices."""

    report: Literal["sweep"] = "sweep"
    inputs: SweepInputs
    model: ModelSummary
    hardware_name: str
    price_tier: str | None
    usd_per_device_hour: float | None
    rows: list[SweepRow] = Field(description="one per device count, ascending")
    skipped: list[SkippedCount] = Field(default_factory=list, description="counts with no valid layout")
    layouts_evaluated: int = Field(description="layouts the estimator core evaluated, all counts together")
