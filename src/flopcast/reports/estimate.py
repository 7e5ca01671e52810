"""The estimate report (DESIGN §7): one training job on one hardware profile and layout.

Units are in the field names (SI: bytes, seconds, FLOPs, USD, kWh, kg). Every time, device-hour and cost
figure carries a P10–P90 range from the calibration residuals.

Start-up time: the classes defer building their pydantic schemas (``defer_build``) and the estimator fills
them with ``model_construct`` (its own, already-checked numbers), so ``flopcast estimate --format json``
never builds a schema: :meth:`EstimateReport.to_json` writes the fields directly. Validation, ``model_dump``
and the JSON Schema work as usual and build the schema on first use
(tests/test_estimate_cli.py checks that both paths give the same document).
"""

from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from flopcast.reports.base import ReportBase
from flopcast.reports.finetune import FinetuneInfo
from flopcast.reports.layout import LayoutInfo, LayoutQueryInfo


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)


class EstimateInputs(LayoutQueryInfo):
    """What was asked, after parsing (numbers in base units; None = not given)."""

    model: str
    tokens: float
    hardware: str
    devices: int
    precision: str = "bf16"
    mfu: float | None = None
    price_tier: str | None = None
    price_per_hour: float | None = None
    seq_len: int | None = None
    finetune: str | None = Field(None, description="full, lora or qlora (null: training)")
    lora_rank: int | None = None
    lora_targets: str | None = None
    epochs: int = Field(1, description="passes over tokens")
    samples: float | None = Field(default=None, description="training samples of a measured model (its budget)")
    torch_model: str | None = Field(default=None, description="the --torch-model module:factory measured")


class MeasuredModelInfo(_Section):
    """A measured model's counts (flopcast.measured_models): per sample, FLOPs 2 per multiply-add, bytes 16-bit."""

    kind: str
    sample: str
    dense_params: int = Field(description="replicated over the data-parallel devices and all-reduced")
    embedding_table_params: int = Field(description="sharded over the data-parallel devices (model parallel)")
    forward_flops_per_sample: float
    training_flops_per_sample: float = Field(description="3 × forward (forward + backward)")
    activation_bytes_per_sample: float = Field(description="stored for the backward, 2 B per element")
    lookup_bytes_per_sample: float = Field(description="looked-up embeddings per sample: the all-to-all payload")
    embedding_tables_sharded: bool
    embedding_table_bytes_per_device: float
    embedding_all_to_all_seconds: float = Field(description="per step (in step_breakdown.ep_comm_seconds)")
    samples_per_second: float
    published_params: float | None = None
    source: str | None = None


class ModelInfo(_Section):
    name: str
    params: int = Field(description="total parameters (what memory holds)")
    active_params: int
    matmul_params: int = Field(description="N of 6·N: active layer matmuls + output head")
    layers: int
    d_model: int
    heads: int
    kv_heads: int
    head_dim: int
    ffn: int
    gated_ffn: bool
    vocab: int
    seq_len: int
    tied_embeddings: bool
    experts: int
    active_experts: int
    measured: MeasuredModelInfo | None = Field(
        default=None, description="a measured model (CNN, ViT, DLRM, --torch-model): its counts; the shape above is "
        "a placeholder (one layer, seq_len 1: a sample is its token)"
    )  # fmt: skip


class HardwareInfo(_Section):
    id: str
    name: str
    precision: str = Field(description="dtype whose dense peak is used")
    peak_flops_per_s: float
    memory_bytes: float
    memory_bandwidth_bytes_per_s: float
    devices_per_node: int
    fused_attention: bool = Field(description="FlashAttention-style kernels assumed (sm80+ GPUs, TPUs)")
    calibrated: bool = Field(description="the efficiency model has published runs of this hardware family")
    measured: list[str] = Field(
        default_factory=list,
        description="the profile's fields measured on this hardware (flopcast bench); every other figure is the "
        "datasheet's",
    )


class Parallelism(LayoutInfo):
    """The layout estimated (the layout record's fields), and how it was chosen."""

    global_batch_tokens: int
    global_batch_rule: int | None = Field(
        None, description="sequences the default rule asks for when no global batch was given (null: given)"
    )
    micro_batches_per_step: float
    layout_chosen_automatically: bool
    candidates_evaluated: int


class Flops(_Section):
    per_token: float = Field(description="model FLOPs per token, 6·N + 12·L·H·Q·T (PaLM App. B)")
    hardware_per_token: float = Field(description="with recomputation")
    total: float = Field(description="model FLOPs of the whole run")
    hardware_total: float


class MemoryBreakdown(_Section):
    """What the fullest device holds at its peak moment (estimator/memory.py): the tensors (they sum to
    ``allocated_bytes``), then what the runtime adds."""

    weights_bytes: float
    gradients_bytes: float = Field(description="allocated at the peak (0 when it precedes transient gradients)")
    optimizer_bytes: float
    activations_bytes: float
    logits_bytes: float = Field(description="the loss's working set, 12 B per vocabulary entry per token")
    recompute_working_bytes: float = Field(0.0, description="one checkpointed layer's re-run forward")
    zero3_buffers_bytes: float
    fragmentation_bytes: float = Field(0.0, description="reserved by the caching allocator beyond allocated")
    runtime_context_bytes: float = Field(0.0, description="CUDA context and kernels, outside the allocator")
    communicator_bytes: float = Field(0.0, description="NCCL buffers, one communicator per parallel group")

    def labelled(self) -> list[tuple[str, float]]:
        """(display label, bytes) per part, in report order: what the table and the plot show."""
        return [
            ("weights", self.weights_bytes),
            ("gradients", self.gradients_bytes),
            ("optimizer states", self.optimizer_bytes),
            ("activations", self.activations_bytes),
            ("loss (logits)", self.logits_bytes),
            ("recomputed layer", self.recompute_working_bytes),
            ("ZeRO-3 gather buffers", self.zero3_buffers_bytes),
            ("allocator fragmentation", self.fragmentation_bytes),
            ("CUDA context", self.runtime_context_bytes),
            ("NCCL buffers", self.communicator_bytes),
        ]


class Memory(_Section):
    per_device_bytes: float = Field(description="the fullest device (first or last pipeline stage): reserved + runtime")
    allocated_bytes: float = Field(0.0, description="tensors at the peak (torch.cuda.max_memory_allocated)")
    reserved_bytes: float = Field(0.0, description="allocated + fragmentation (torch.cuda.max_memory_reserved)")
    peak_moment: str = Field("loss", description="loss (start of the backward) or optimizer-step")
    grad_dtype: str = Field("fp32", description="gradient dtype (memory and the gradient all-reduce)")
    capacity_bytes: float
    fits: bool = Field(description="per_device_bytes ≤ usable_bytes")
    headroom_bytes: float = Field(description="capacity_bytes − per_device_bytes: the margin left")
    headroom_fraction: float = Field(0.0, description="share of capacity a fitting layout must leave free")
    usable_bytes: float = Field(description="capacity_bytes × (1 − headroom_fraction): what a layout may use")
    breakdown: MemoryBreakdown


class StepBreakdown(_Section):
    compute_seconds: float
    tp_comm_seconds: float
    cp_comm_seconds: float = Field(0.0, description="context-parallel K/V ring beyond the attention it overlaps")
    ep_comm_seconds: float = Field(0.0, description="expert-parallel all-to-all dispatch and combine (MoE)")
    pp_comm_seconds: float
    dp_comm_exposed_seconds: float
    bubble_seconds: float
    optimizer_seconds: float


class Time(_Section):
    step_seconds: float
    steps: float
    step_breakdown: StepBreakdown
    training_seconds: float = Field(description="steps × step time, without interruptions")
    reliability_seconds: float = Field(description="added by interruptions and other overhead")
    reliability_share: float
    wall_clock_seconds: float
    wall_clock_seconds_p10: float
    wall_clock_seconds_p80: float | None = None
    wall_clock_seconds_p90: float
    device_hours: float
    device_hours_p10: float
    device_hours_p80: float | None = None
    device_hours_p90: float
    extrapolation_doublings: float = Field(
        0.0, description="doublings of devices + parameters beyond the largest fitted run (0: inside); widens the range"
    )


class Efficiency(_Section):
    mfu: float = Field(description="model FLOPs utilisation of a training step (before whole-run overhead)")
    hfu: float = Field(description="hardware FLOPs utilisation of a step (counts recomputation)")
    effective_mfu: float = Field(
        description="model FLOPs of the whole run / (wall-clock × devices × peak): MFU after interruptions and overhead"
    )
    gemm_efficiency: float = Field(description="matmul fraction of peak for this layout's shapes")
    mfu_forced: bool
    fitted_parameters: dict[str, float | dict[str, float]]
    fitted_on: str
    fitted_date: str


class Throughput(_Section):
    tokens_per_second: float
    tokens_per_second_per_device: float
    model_tflops_per_device: float
    hardware_tflops_per_device: float


class Cost(_Section):
    total_usd: float | None
    total_usd_p10: float | None
    total_usd_p80: float | None = None
    total_usd_p90: float | None
    usd_per_device_hour: float | None
    tier: str | None
    price_date: str | None
    by_tier_usd: dict[str, float] = Field(default_factory=dict, description="the same run at every listed tier")


class Energy(_Section):
    kwh: float | None
    co2_kg: float | None
    power_watts: float | None
    power_fraction: float
    pue: float
    grid_kg_co2_per_kwh: float


class Storage(_Section):
    """Checkpoints and the dataset on storage (flopcast.storage; estimator/checkpoint.py has the formulas)."""

    tier: str | None = Field(None, description="--storage tier (null: tier-free figures only)")
    checkpoint_bytes: float = Field(description="one full training checkpoint: 16-bit weights + fp32 master, m, v")
    checkpoint_bytes_per_device: float = Field(description="each rank's shard of it")
    weights_export_bytes: float = Field(description="a bf16 weights-only export")
    dataset_bytes: float = Field(description="the pre-tokenised dataset: tokens × 2 or 4 B per token id")
    raw_text_bytes: float = Field(description="about 4 B of text per token")
    dataset_read_bytes_per_s: float = Field(description="token bytes the run reads per second")
    keep_checkpoints: int = Field(description="--keep-checkpoints: checkpoints retained (storage cost)")
    mtbf_seconds: float = Field(description="the job's mean time between interruptions (reliability.py's rate)")
    pinned_checkpoint_share: float = Field(description="the checkpoint allowance in time.wall_clock_seconds")
    checkpoint_write_seconds: float | None = None
    checkpoint_load_seconds: float | None = None
    checkpoint_interval_seconds: float | None = Field(None, description="Young/Daly: sqrt(2 · write · MTBF)")
    checkpoint_share_of_wall_clock: float | None = Field(None, description="write / interval on this tier")
    interruption_share_of_wall_clock: float | None = Field(None, description="(load + interval/2) / MTBF")
    read_bandwidth_bytes_per_s: float | None = Field(None, description="what the tier can feed the job's nodes")
    stored_bytes: float | None = Field(None, description="dataset + kept checkpoints")
    storage_usd: float | None = Field(None, description="list price of storing them for the run's wall-clock")
    egress_usd: float | None = Field(None, description="moving the dataset and the final checkpoint out, list price")
    transfer_seconds: float | None = Field(None, description="that transfer at --transfer-gbps")
    durable: bool | None = None
    sources: list[str] = Field(default_factory=list)


class FitSuggestionInfo(_Section):
    change: str
    flags: str
    per_device_bytes: float
    wall_clock_seconds: float


class EstimateReport(ReportBase):
    """Everything ``flopcast estimate`` predicts for one job."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    report: Literal["estimate"] = "estimate"
    inputs: EstimateInputs
    model: ModelInfo
    hardware: HardwareInfo
    parallelism: Parallelism
    flops: Flops
    memory: Memory
    time: Time
    efficiency: Efficiency
    throughput: Throughput
    cost: Cost
    energy: Energy
    storage: Storage | None = None
    fit_suggestions: list[FitSuggestionInfo] = Field(
        default_factory=list, description="smallest changes that make a job that does not fit fit"
    )
    finetune: FinetuneInfo | None = Field(None, description="fine-tuning (--finetune): what is trained and frozen")

    def to_json(self) -> str:
        """The report as JSON (same document as ``model_dump_json(indent=2)``, without building a schema)."""
        return json.dumps(plain(self), indent=2)

    # --- flat view for csv / markdown (one row per estimate) -------------------------------------------
    def flat_row(self) -> dict[str, object]:
        p, t, m = self.parallelism, self.time, self.memory
        return {
            "model": self.model.name,
            "params": self.model.params,
            "hardware": self.hardware.id,
            "devices": self.inputs.devices,
            "tokens": self.inputs.tokens,
            "tp": p.tp,
            "pp": p.pp,
            "dp": p.dp,
            "micro_batch": p.micro_batch,
            "global_batch": p.global_batch,
            "zero": p.zero,
            "recompute": p.recompute,
            "interleave": p.interleave,
            "fits": m.fits,
            "memory_per_device_gb": round(m.per_device_bytes / 1e9, 2),
            "memory_allocated_gb": round(m.allocated_bytes / 1e9, 2),
            "memory_reserved_gb": round(m.reserved_bytes / 1e9, 2),
            "grad_dtype": m.grad_dtype,
            "capacity_gb": round(m.capacity_bytes / 1e9, 2),
            "step_seconds": _sig(t.step_seconds),
            "wall_clock_days": _sig(t.wall_clock_seconds / 86400),
            "wall_clock_days_p10": _sig(t.wall_clock_seconds_p10 / 86400),
            "wall_clock_days_p90": _sig(t.wall_clock_seconds_p90 / 86400),
            "device_hours": _sig(t.device_hours),
            "device_hours_p10": _sig(t.device_hours_p10),
            "device_hours_p90": _sig(t.device_hours_p90),
            "mfu": _sig(self.efficiency.mfu),
            "tokens_per_second": _sig(self.throughput.tokens_per_second),
            "cost_usd": None if self.cost.total_usd is None else _sig(self.cost.total_usd),
            "price_tier": self.cost.tier,
            "energy_kwh": None if self.energy.kwh is None else _sig(self.energy.kwh),
            "co2_kg": None if self.energy.co2_kg is None else _sig(self.energy.co2_kg),
            "warnings": len(self.warnings),
        }


def plain(value):
    """Models → dicts (fields in declaration order), recursively; numbers and strings unchanged."""
    if isinstance(value, BaseModel):
        return {name: plain(getattr(value, name)) for name in type(value).model_fields}
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def _sig(x: float, digits: int = 4) -> float:
    return float(f"{x:.{digits}g}")
