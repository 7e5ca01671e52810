"""Reports of ``flopcast plan``, ``flopcast compare`` and ``flopcast size`` (DESIGN §6, §7).

Units are in the field names (SI: seconds, bytes, USD, kWh). A figure that cannot be given (no price for the
tier, no published power) is ``null`` and the row says why. ``plan.best`` and ``size.estimate`` are full
estimate reports, exactly as ``flopcast estimate --format json`` writes them for that layout.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from flopcast.reports.base import ReportBase
from flopcast.reports.estimate import EstimateReport
from flopcast.reports.layout import LayoutInfo

Objective = Literal["cost", "time", "energy"]
Confidence = Literal["p50", "p80", "p90"]
CONFIDENCE_HELP = "the percentile of the calibrated range at which the deadline and budget are met (p50: the estimate)"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PlanPoint(_Section):
    """One hardware × device count × layout, with what the estimator core predicts for it."""

    hardware: str
    devices: int
    layout: LayoutInfo
    fits: bool
    memory_per_device_bytes: float
    capacity_bytes: float
    wall_clock_seconds: float
    wall_clock_seconds_p10: float
    wall_clock_seconds_p80: float | None = None
    wall_clock_seconds_p90: float
    device_hours: float
    cost_usd: float | None = Field(description="null when the hardware lists no price for the tier")
    cost_usd_p10: float | None
    cost_usd_p80: float | None = None
    cost_usd_p90: float | None
    price_tier: str | None
    usd_per_device_hour: float | None
    energy_kwh: float | None = Field(description="null when the profile publishes no power figure")
    mfu: float
    tokens_per_second: float


class NearMiss(_Section):
    """A plan that comes close to meeting the constraints, and by how much it misses each one."""

    point: PlanPoint
    misses: dict[str, float] = Field(
        description="constraint → relative excess (0.12 = 12% over the deadline, the budget or the memory)"
    )
    description: str


class PlanInputs(_Section):
    model: str
    tokens: float
    hardware: list[str] = Field(description="profiles searched (empty: every visible profile)")
    objective: Objective
    deadline_seconds: float | None
    budget_usd: float | None
    max_devices: int | None = Field(description="as given; null = the default (see search.max_devices)")
    price_tier: str | None
    precision: str
    global_batch: int | None
    global_batch_rule: int | None = Field(
        None,
        description="sequences the default rule asks for when no global batch was given; each point's own "
        "batch is the nearest multiple of its dp × micro-batch (layout.global_batch)",
    )
    confidence: Confidence = Field("p50", description=CONFIDENCE_HELP)
    finetune: str | None = Field(None, description="full, lora or qlora (null: training)")
    lora_rank: int | None = None
    epochs: int = Field(1, description="passes over tokens")


class ModelSummary(_Section):
    name: str
    params: int
    layers: int
    d_model: int
    heads: int
    seq_len: int


class SearchStats(_Section):
    layouts_evaluated: int = Field(description="layouts the estimator core evaluated")
    layouts_feasible: int = Field(description="of those, the ones that fit and meet every constraint")
    seconds: float = Field(description="wall-clock seconds of the search")
    layouts_per_second: float
    max_devices: int = Field(description="the largest device count searched")
    device_counts: int = Field(description="(hardware, device count) pairs searched")
    hardware_searched: list[str]
    hardware_skipped: dict[str, str] = Field(default_factory=dict, description="id → why it was left out")


class PlanReport(ReportBase):
    """The best plan for the objective, the Pareto front of time vs cost, and the search that found them."""

    report: Literal["plan"] = "plan"
    inputs: PlanInputs
    model: ModelSummary
    feasible: bool
    infeasible_reason: str | None = Field(None, description="why no plan is feasible (null when one is)")
    best: EstimateReport | None = Field(description="the estimate report of the best plan (null when none)")
    best_point: PlanPoint | None
    pareto: list[PlanPoint] = Field(description="plans no other plan beats on both time and cost, fastest first")
    near_misses: list[NearMiss] = Field(default_factory=list, description="when nothing is feasible")
    search: SearchStats


class CompareRow(_Section):
    """One hardware profile running the workload."""

    rank: int
    hardware: str
    name: str
    ok: bool = Field(description="fits, meets the deadline and has the objective's figure")
    reason: str | None = Field(description="why the row is not ok (or a note)")
    devices: int | None
    fits: bool | None
    layout: LayoutInfo | None
    memory_per_device_bytes: float | None
    capacity_bytes: float
    wall_clock_seconds: float | None
    wall_clock_seconds_p10: float | None
    wall_clock_seconds_p80: float | None = None
    wall_clock_seconds_p90: float | None
    device_hours: float | None
    device_hours_p10: float | None
    device_hours_p80: float | None = None
    device_hours_p90: float | None
    cost_usd: float | None
    cost_usd_p10: float | None
    cost_usd_p80: float | None = None
    cost_usd_p90: float | None
    price_tier: str | None
    usd_per_device_hour: float | None
    cost_by_tier_usd: dict[str, float] = Field(default_factory=dict, description="the run at every listed tier")
    energy_kwh: float | None
    co2_kg: float | None
    mfu: float | None
    tokens_per_second: float | None


class CompareInputs(_Section):
    model: str
    tokens: float
    hardware: list[str]
    devices: int | None
    deadline_seconds: float | None
    max_devices: int | None
    objective: Objective
    price_tier: str | None
    precision: str
    global_batch: int | None
    confidence: Confidence = Field("p50", description=CONFIDENCE_HELP)


class CompareReport(ReportBase):
    """One workload on several hardware profiles, best first by the objective."""

    report: Literal["compare"] = "compare"
    inputs: CompareInputs
    model: ModelSummary
    rows: list[CompareRow]
    seconds: float


class SizeRule(_Section):
    tokens_per_param: float
    flops_per_param_token: float
    source: str


class ComputeOptimal(_Section):
    params: float = Field(description="N, parameters (Chinchilla counts all parameters)")
    tokens: float = Field(description="D = tokens_per_param · N")
    flops: float = Field(description="C = 6·N·D")


class SizeStep(_Section):
    """One evaluation of the search: a candidate size and what its compute-optimal run would use."""

    params: float
    tokens: float
    used: float = Field(description="of the budget's unit (USD, device-hours, seconds, FLOPs)")
    within_budget: bool


class SizeInputs(_Section):
    budget_kind: Literal["flops", "usd", "device_hours", "deadline"]
    budget: float = Field(description="in the unit of budget_kind (FLOPs, USD, device-hours, seconds)")
    hardware: list[str]
    devices: int | None
    placement: Literal["given", "planner", "none"]
    price_tier: str | None
    precision: str
    seq_len: int | None
    vocab: int | None
    confidence: Confidence = Field("p50", description=CONFIDENCE_HELP)


class SizeReport(ReportBase):
    """Compute-optimal parameters and tokens for a budget, and the training estimate of that model."""

    report: Literal["size"] = "size"
    inputs: SizeInputs
    rule: SizeRule
    compute_optimal: ComputeOptimal
    model: ModelSummary
    budget_used: float = Field(description="what the estimate uses of the budget, in the budget's unit")
    budget_used_fraction: float
    steps: list[SizeStep] = Field(default_factory=list, description="the search, in evaluation order")
    estimate: EstimateReport | None = Field(description="the training estimate (null for a FLOP budget alone)")
