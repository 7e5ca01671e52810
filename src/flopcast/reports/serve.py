"""The `serve` report: deployment (inference) memory, latency, throughput and cost (DESIGN §6, §7).

Units are in the field names (bytes, seconds, usd); SI decimal. ``variants`` holds the same estimate for
16-, 8- and 4-bit weights side by side; the top-level ``memory``/``prefill``/``decode``/``cost`` repeat the
variant the user chose (``inputs.weights_bits``). :func:`table_rows` turns a report into plain rows
(strings) for the table, Markdown and CSV renderers.
"""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field

from flopcast.reports.base import ReportBase
from flopcast.units import SECONDS_PER_HOUR

TOKENS_PER_MILLION = 1e6


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ServeInputs(_Part):
    model: str
    hardware: str
    devices: int | None = Field(description="--devices as given; None = the fewest that fit were chosen")
    weights_bits: int
    kv_bits: int
    batch: int = Field(description="concurrent sequences decoded together")
    prompt_tokens: int
    output_tokens: int
    price_tier: str | None = None
    price_per_hour_usd: float | None = None
    runtime: str = Field(description="serving runtime id (flopcast/data/runtimes.yaml); default by device kind")
    request_rate_per_s: float | None = Field(default=None, description="--request-rate (Poisson arrivals)")
    chunked_prefill_tokens: int | None = Field(
        default=None, description="--chunked-prefill: token budget of a step under chunked prefill (None: off)"
    )
    prompt_dist: str = Field(
        default="fixed", description="--prompt-dist: prompt lengths under load (mean --prompt-tokens)"
    )
    output_dist: str = Field(
        default="fixed", description="--output-dist: output lengths under load (mean --output-tokens)"
    )
    compute: str = Field(
        default="bf16", description="--compute: the linear GEMMs' format, bf16, fp8 (W8A8) or fp4 (W4A4)"
    )


class ServeModel(_Part):
    name: str
    params: int = Field(description="total parameters (memory)")
    active_params: int = Field(description="parameters used per token (FLOPs, bytes read)")
    layers: int
    d_model: int
    heads: int
    kv_heads: int
    head_dim: int
    experts: int
    active_experts: int
    context_tokens: int = Field(description="the model's trained context length")

    @classmethod
    def of(cls, model) -> ServeModel:
        """From a ModelSpec."""
        return cls(
            name=model.name,
            params=model.params,
            active_params=model.active_params,
            layers=model.layers,
            d_model=model.d_model,
            heads=model.heads,
            kv_heads=model.n_kv_heads,
            head_dim=model.dim_head,
            experts=model.experts,
            active_experts=model.active_experts,
            context_tokens=model.seq_len,
        )


class ServeHardware(_Part):
    id: str
    name: str
    kind: str
    memory_bytes: float
    memory_bandwidth_bytes_per_s: float
    compute_dtype: str = Field(
        description="dtype of the chosen variant's linear GEMMs (weight-only quantization "
        "computes in 16-bit; --compute fp8/fp4 in that format)"
    )
    peak_flops_per_s: float
    devices_per_node: int

    @classmethod
    def of(cls, profile, compute_dtype: str, peak_flops_per_s: float) -> ServeHardware:
        """From a HardwareProfile and the dtype whose peak the matmuls run at."""
        return cls(
            id=profile.id,
            name=profile.name,
            kind=profile.kind,
            memory_bytes=profile.memory_bytes,
            memory_bandwidth_bytes_per_s=profile.memory_bandwidth_bytes_per_s,
            compute_dtype=compute_dtype,
            peak_flops_per_s=peak_flops_per_s,
            devices_per_node=profile.devices_per_node,
        )


class ServeRuntime(_Part):
    id: str
    name: str
    device_kind: str = Field(description="the device kind the runtime's values are for (gpu, cpu, tpu)")
    weight_bits: list[int] = Field(description="weight formats the runtime has kernels for")
    stream_fraction: float = Field(description="share of datasheet bandwidth a streaming kernel reaches (1: measured)")
    bandwidth_fraction: dict[str, float] = Field(description="per weight bits: share of the stream decode reaches")
    kernels_per_forward: float
    gap_seconds_per_kernel: float = Field(description="device time per kernel beyond its bytes and FLOPs")
    launch_seconds_per_kernel: float = Field(description="host time per kernel launch")
    seconds_per_forward: float = Field(description="fixed host time per forward pass")
    host_overlaps_device: bool = Field(description="true on GPU/TPU (async launches): step = max(device, host)")
    sources: dict[str, str]

    @classmethod
    def of(cls, runtime, layers: int, measured: bool) -> ServeRuntime:
        """From a flopcast.runtimes.RuntimeProfile, for a model of ``layers`` layers."""
        return cls(
            id=runtime.id,
            name=runtime.name,
            device_kind=runtime.kind,
            weight_bits=list(runtime.weight_bits),
            stream_fraction=1.0 if measured else runtime.stream_fraction,
            bandwidth_fraction={str(b): f for b, f in runtime.bandwidth_fraction.items()},
            kernels_per_forward=runtime.kernels_per_forward(layers),
            gap_seconds_per_kernel=runtime.gap_seconds_per_kernel,
            launch_seconds_per_kernel=runtime.launch_seconds_per_kernel,
            seconds_per_forward=runtime.seconds_per_forward,
            host_overlaps_device=runtime.host_overlaps_device(),
            sources=dict(runtime.sources),
        )


class ServeMemory(_Part):
    weights_bytes: float = Field(description="all weights, all devices, including quantization scales")
    quantization_overhead_bytes: float = Field(description="group-wise scales and zero points inside weights_bytes")
    kv_cache_bytes: float = Field(description="KV cache of the whole batch at prompt + output tokens, all devices")
    runtime_allowance_bytes: float = Field(description="per device: CUDA context, activations, workspace")
    per_device_bytes: float
    capacity_bytes: float
    fits: bool
    devices_needed: int | None = Field(description="fewest tensor-parallel devices that fit; None = no number")
    max_batch_that_fits: int = Field(description="largest batch whose KV cache fits beside the weights")


class ServePrefill(_Part):
    flops: float = Field(description="per device, whole batch")
    seconds: float
    time_to_first_token_seconds: float
    bound: str = Field(description="compute or memory")
    communication_seconds: float
    matmul_efficiency: float = Field(description="fraction of peak the prompt's matmuls reach (fitted GEMM curve)")
    overhead_seconds: float = Field(description="the runtime's fixed cost of the forward pass that shows")


class ServeDecode(_Part):
    seconds_per_token: float = Field(description="one decode step for the whole batch, at the mean context")
    tokens_per_second: float = Field(description="per request (1 / seconds_per_token)")
    total_tokens_per_second: float = Field(description="all requests of the batch together")
    mean_context_tokens: float
    flops_per_step: float = Field(description="per device")
    bytes_read_per_step: float = Field(description="per device: weights + KV cache")
    bound: str = Field(description="compute or memory")
    ridge_batch: float | None = Field(description="batch at which decode turns compute bound; None = never")
    communication_seconds_per_token: float
    matmul_efficiency: float = Field(description="fraction of peak a step's matmuls reach (fitted GEMM curve)")
    bandwidth_efficiency: float = Field(description="share of the profile's bandwidth a step reaches")
    overhead_seconds_per_token: float = Field(description="the runtime's fixed cost of a step that shows")


class ServeCost(_Part):
    tier: str | None
    usd_per_device_hour: float | None
    usd_per_million_tokens: float | None = Field(description="per million output tokens, chosen tier")
    by_tier: dict[str, float] = Field(default_factory=dict, description="usd per million output tokens per tier")
    note: str | None = None


class ServeLoad(_Part):
    request_rate_per_s: float
    sustainable: bool = Field(description="false: the queue grows without bound at this rate")
    max_request_rate_per_s: float = Field(description="the most requests/s this configuration sustains")
    running_batch: float | None = Field(description="mean sequences decoding together in steady state")
    prefill_busy_fraction: float | None = Field(description="share of time spent in prefills")
    step_seconds: float | None = Field(description="decode step at the running batch")
    time_to_first_token_p50_seconds: float | None
    time_to_first_token_p90_seconds: float | None
    time_per_output_token_p50_seconds: float | None
    time_per_output_token_p90_seconds: float | None
    output_tokens_per_second: float | None = Field(description="rate × output tokens: what the load asks for")
    usd_per_million_tokens: float | None = Field(description="per million output tokens at this load, chosen tier")
    queue_wait_mean_seconds: float | None = Field(
        default=None, description="mean wait of a prompt behind earlier ones: λ·E[S²]/(2(1 − ρ)) (Pollaczek–Khinchine)"
    )
    stall_seconds: float | None = Field(
        default=None, description="longest gap one mean prompt puts between two output tokens (chunked: one step)"
    )
    chunk_step_seconds: float | None = Field(default=None, description="chunked prefill: a step carrying a chunk")
    prefill_chunks: float | None = Field(default=None, description="chunked prefill: steps a mean prompt spans")


class ServeVariant(_Part):
    weights_bits: int
    compute_dtype: str = Field(
        default="bf16",
        description="format of the linear GEMMs: bf16 (weight-only "
        "dequantisation), fp8 (W8A8) or fp4 (W4A4); attention core and head stay 16-bit",
    )
    devices: int
    link: str = Field(description="none, intra-node or inter-node: the link the tensor-parallel all-reduces use")
    link_bandwidth_bytes_per_s: float | None = Field(
        description="per-device bus bandwidth of the tensor-parallel group (as training's); None on one device"
    )
    memory: ServeMemory
    prefill: ServePrefill
    decode: ServeDecode
    request_seconds: float = Field(description="prefill + all output tokens of one batch")
    output_tokens_per_second: float = Field(description="batch · output tokens / request_seconds")
    cost: ServeCost
    load: ServeLoad | None = Field(default=None, description="steady state under --request-rate")


class ServeWeightsLoad(BaseModel):
    """Loading the weights from a storage tier at start-up (``--storage``; flopcast.storage)."""

    tier: str
    weights_bytes: float = Field(description="the chosen variant's weights, all devices")
    nodes: int = Field(description="nodes reading in parallel, each its share")
    load_seconds: float = Field(description="weights_bytes / min(nodes × per-node read, the tier's aggregate)")
    sources: list[str] = Field(default_factory=list)


class ServeReport(ReportBase):
    report: str = "serve"
    inputs: ServeInputs
    model: ServeModel
    hardware: ServeHardware
    devices: int
    weights_bits: int
    memory: ServeMemory
    prefill: ServePrefill
    decode: ServeDecode
    request_seconds: float
    output_tokens_per_second: float
    cost: ServeCost
    load: ServeLoad | None = None
    weights_load: ServeWeightsLoad | None = None
    runtime: ServeRuntime
    variants: list[ServeVariant]
    assumptions: list[str]

    @property
    def chosen(self) -> ServeVariant:
        return next(v for v in self.variants if v.weights_bits == self.weights_bits)


# --- the builder ----------------------------------------------------------------------------------------
def build_variant(
    g: dict[str, float],
    *,
    weights_bits: int,
    compute_dtype: str = "bf16",
    devices: int,
    devices_needed: int | None,
    devices_per_node: int,
    capacity_bytes: float,
    batch: int,
    tiers: dict[str, float],
    tier: str | None,
    cost_note: str | None,
    load=None,
) -> ServeVariant:
    """One column of the report from one (bit width, device count) row of serving.serving_grid."""
    ridge = g["ridge_batch"]
    step = g["step_seconds"]
    usd_per_million = {
        name: devices * price / SECONDS_PER_HOUR / g["output_tokens_per_second"] * TOKENS_PER_MILLION
        for name, price in tiers.items()
    }
    return ServeVariant(
        weights_bits=weights_bits,
        compute_dtype=compute_dtype,
        devices=devices,
        link="none" if devices == 1 else ("intra-node" if devices <= devices_per_node else "inter-node"),
        link_bandwidth_bytes_per_s=None if devices == 1 else g["link_bandwidth"],
        memory=ServeMemory(
            weights_bytes=g["weights_bytes"],
            quantization_overhead_bytes=g["quantization_overhead_bytes"],
            kv_cache_bytes=g["kv_cache_bytes"],
            runtime_allowance_bytes=g["runtime_allowance_bytes"],
            per_device_bytes=g["per_device_bytes"],
            capacity_bytes=capacity_bytes,
            fits=bool(g["fits"]),
            devices_needed=devices_needed,
            max_batch_that_fits=int(g["max_batch_that_fits"]),
        ),
        prefill=ServePrefill(
            flops=g["prefill_flops"],
            seconds=g["prefill_seconds"],
            time_to_first_token_seconds=g["prefill_seconds"],
            bound="compute" if g["prefill_compute_bound"] else "memory",
            communication_seconds=g["prefill_comm_seconds"],
            matmul_efficiency=g["prefill_matmul_efficiency"],
            overhead_seconds=g["prefill_overhead_seconds"],
        ),
        decode=ServeDecode(
            seconds_per_token=step,
            tokens_per_second=1.0 / step,
            total_tokens_per_second=batch / step,
            mean_context_tokens=g["context"],
            flops_per_step=g["step_flops"],
            bytes_read_per_step=g["step_bytes"],
            bound="compute" if g["decode_compute_bound"] else "memory",
            ridge_batch=None if math.isinf(ridge) else ridge,
            communication_seconds_per_token=g["step_comm_seconds"],
            matmul_efficiency=g["decode_matmul_efficiency"],
            bandwidth_efficiency=g["bandwidth_efficiency"],
            overhead_seconds_per_token=g["step_overhead_seconds"],
        ),
        request_seconds=g["request_seconds"],
        output_tokens_per_second=g["output_tokens_per_second"],
        cost=ServeCost(
            tier=tier,
            usd_per_device_hour=tiers.get(tier) if tier else None,
            usd_per_million_tokens=usd_per_million.get(tier) if tier else None,
            by_tier=usd_per_million,
            note=cost_note,
        ),
        load=None if load is None else build_load(load, devices, tiers.get(tier) if tier else None),
    )


def build_load(load, devices: int, usd_per_device_hour: float | None) -> ServeLoad:
    """The report part of a serving_load.Load (rate and output tokens ride on the Load's caller)."""
    if not load.sustainable:
        return ServeLoad(
            request_rate_per_s=load.rate, sustainable=False, max_request_rate_per_s=load.max_request_rate_per_s,
            running_batch=None, prefill_busy_fraction=None, step_seconds=None, time_to_first_token_p50_seconds=None,
            time_to_first_token_p90_seconds=None, time_per_output_token_p50_seconds=None,
            time_per_output_token_p90_seconds=None, output_tokens_per_second=None, usd_per_million_tokens=None,
        )  # fmt: skip
    tokens = load.rate * load.output_tokens
    usd = None if usd_per_device_hour is None else devices * usd_per_device_hour / SECONDS_PER_HOUR / tokens * 1e6
    return ServeLoad(
        request_rate_per_s=load.rate, sustainable=True, max_request_rate_per_s=load.max_request_rate_per_s,
        running_batch=load.running_batch, prefill_busy_fraction=load.prefill_busy_fraction,
        step_seconds=load.step_seconds, time_to_first_token_p50_seconds=load.ttft_seconds[0],
        time_to_first_token_p90_seconds=load.ttft_seconds[1], time_per_output_token_p50_seconds=load.tpot_seconds[0],
        time_per_output_token_p90_seconds=load.tpot_seconds[1], output_tokens_per_second=tokens,
        usd_per_million_tokens=usd, queue_wait_mean_seconds=load.queue_wait_mean_seconds,
        stall_seconds=load.stall_seconds, chunk_step_seconds=load.chunk_step_seconds,
        prefill_chunks=load.prefill_chunks,
    )  # fmt: skip
