"""The report builder: a row of the core's estimate (plus the request it answers) → a validated report.

Every report that shows an estimate is built here from the same row, so ``estimate``, ``plan.best``,
``compare``, ``size`` and ``--sweep`` cannot disagree on a number for the same layout. Reports are built
with their constructors (pydantic validates every field); nothing uses ``model_construct``.
"""

from __future__ import annotations

import numpy as np

from flopcast.reports.finetune import finetune_info
from flopcast.reports.layout import layout_info

TERA = 1e12


def _measured_inputs(spec, tokens: float) -> dict:
    """A measured model's inputs block (flopcast.measured_models, imported only for one)."""
    if not getattr(spec, "measured", False):
        return {}
    from flopcast.measured_models import measured_inputs

    return measured_inputs(spec, tokens)


def _measured_info(spec, row: dict, layout):
    if not getattr(spec, "measured", False):
        return None
    from flopcast.measured_models import measured_info

    return measured_info(spec, row, layout)


def _num(x) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)


def model_info(spec, measured=None):
    from flopcast.estimator.arrays import ModelArrays
    from flopcast.reports.estimate import ModelInfo

    return ModelInfo(
        name=spec.name,
        params=spec.params,
        active_params=spec.active_params,
        matmul_params=int(ModelArrays.from_specs([spec]).matmul_params[0]),
        layers=spec.layers,
        d_model=spec.d_model,
        heads=spec.heads,
        kv_heads=spec.n_kv_heads,
        head_dim=spec.dim_head,
        ffn=spec.ffn_size,
        gated_ffn=spec.gated_ffn,
        vocab=spec.vocab,
        seq_len=spec.seq_len,
        tied_embeddings=spec.tied_embeddings,
        experts=spec.experts,
        active_experts=spec.active_experts,
        measured=measured,
    )


def model_summary(spec):
    from flopcast.reports.plan import ModelSummary

    return ModelSummary(
        name=spec.name, params=spec.params, layers=spec.layers, d_model=spec.d_model, heads=spec.heads,
        seq_len=spec.seq_len,
    )  # fmt: skip


def fitted_parameters(params) -> dict:
    from flopcast.estimator.efficiency import FITTED_NAMES, PINNED_NAMES

    out: dict = {name: float(getattr(params, name)) for name in FITTED_NAMES + PINNED_NAMES}
    out["family_ceiling_factor"] = {k: float(v) for k, v in params.family_ceiling_factor.items()}
    return out


def estimate_report(
    work, hw, devices: int, query, result, params, *, suggestions=(), warnings=(), storage_request=None
):
    """The :class:`~flopcast.reports.estimate.EstimateReport` of ``result`` (a search.SearchResult) for the
    workload ``work`` (request.TrainingWorkload) on ``devices`` of ``hw`` (request.PricedHardware)."""
    from flopcast.estimator import costs
    from flopcast.layout import default_global_batch
    from flopcast.reports import estimate as r

    row = result.estimates.row(0)
    from flopcast.estimator.memory import default_grad_dtype
    from flopcast.storage import StorageRequest, storage_block, storage_warnings, with_tier_wall_clock

    layout, spec, profile, price = result.layout, work.spec, hw.profile, hw.price
    ask = storage_request or StorageRequest()

    def storage_of(wall_clock_seconds):
        return storage_block(
            spec=spec, precision=work.precision, devices=devices, devices_per_node=profile.devices_per_node,
            tokens=work.tokens, tokens_per_second=row["tokens_per_second"], wall_clock_seconds=wall_clock_seconds,
            tier=ask.tier, keep=ask.keep, transfer_gbps=ask.transfer_gbps,
        )  # fmt: skip

    storage = storage_of(row["wall_clock_seconds"])
    if ask.tier is not None:  # the tier's checkpoint writes and loads replace the pinned allowance
        row = with_tier_wall_clock(row, storage, devices)
        storage = storage_of(row["wall_clock_seconds"])  # the storage cost over the run's own wall-clock
    dh = row["device_hours"]
    by_tier = {name: dh * p.usd_per_device_hour for name, p in sorted(profile.prices_usd_per_device_hour.items())}
    if price.custom:
        by_tier["custom"] = dh * price.usd_per_device_hour
    has_price = price.usd_per_device_hour is not None
    has_power = profile.power_watts is not None
    return r.EstimateReport(
        inputs=r.EstimateInputs(
            model=work.label,
            tokens=work.tokens,
            hardware=profile.id,
            devices=devices,
            precision=work.precision,
            mfu=work.mfu,
            price_tier=None if price.custom else price.tier,
            price_per_hour=price.usd_per_device_hour if price.custom else None,
            seq_len=spec.seq_len,
            **_finetune_inputs(work),
            **query.given(),
            **_measured_inputs(spec, work.tokens),
        ),
        model=model_info(spec, _measured_info(spec, row, layout)),
        hardware=r.HardwareInfo(
            id=profile.id,
            name=profile.name,
            precision=hw.precision_used,
            peak_flops_per_s=float(hw.arrays.peak_flops_per_s[0]),
            memory_bytes=profile.memory_bytes,
            memory_bandwidth_bytes_per_s=profile.memory_bandwidth_bytes_per_s,
            devices_per_node=profile.devices_per_node,
            fused_attention=bool(hw.arrays.fused_attention[0] > 0.5),
            calibrated=hw.calibrated,
            measured=list(getattr(profile, "measured", [])),
        ),
        parallelism=r.Parallelism(
            **layout.as_dict(),
            global_batch_tokens=layout.global_batch * spec.seq_len,
            global_batch_rule=None
            if query.global_batch is not None
            else default_global_batch(spec.params, spec.seq_len),
            micro_batches_per_step=row["micro_batches"],
            layout_chosen_automatically=result.automatic,
            candidates_evaluated=result.candidates_evaluated,
        ),
        flops=r.Flops(
            per_token=row["model_flops_per_token"],
            hardware_per_token=row["hardware_flops_per_token"],
            total=row["model_flops_total"],
            hardware_total=row["hardware_flops_total"],
        ),
        memory=r.Memory(
            per_device_bytes=row["memory_bytes"],
            allocated_bytes=row["allocated_bytes"],
            reserved_bytes=row["reserved_bytes"],
            peak_moment="optimizer-step" if row["peak_at_optimizer_step"] > 0.5 else "loss",
            grad_dtype=work.grad_dtype or default_grad_dtype(work.precision, layout.zero),
            capacity_bytes=profile.memory_bytes,
            fits=row["fits"],
            headroom_bytes=profile.memory_bytes - row["memory_bytes"],
            headroom_fraction=work.memory_headroom,
            usable_bytes=profile.memory_bytes * (1.0 - work.memory_headroom),
            breakdown=r.MemoryBreakdown(
                weights_bytes=row["weights_bytes"],
                gradients_bytes=row["gradients_bytes"],
                optimizer_bytes=row["optimizer_bytes"],
                activations_bytes=row["activations_bytes"],
                logits_bytes=row["logits_bytes"],
                recompute_working_bytes=row["recompute_working_bytes"],
                zero3_buffers_bytes=row["zero3_buffer_bytes"],
                fragmentation_bytes=row["fragmentation_bytes"],
                runtime_context_bytes=row["runtime_context_bytes"],
                communicator_bytes=row["communicator_bytes"],
            ),
        ),
        time=r.Time(
            step_seconds=row["step_seconds"],
            steps=row["steps"],
            step_breakdown=r.StepBreakdown(
                compute_seconds=row["compute_seconds"],
                tp_comm_seconds=row["tp_comm_seconds"],
                cp_comm_seconds=row["cp_comm_seconds"],
                ep_comm_seconds=row["ep_comm_seconds"],
                pp_comm_seconds=row["pp_comm_seconds"],
                dp_comm_exposed_seconds=row["dp_comm_exposed_seconds"],
                bubble_seconds=row["bubble_seconds"],
                optimizer_seconds=row["optimizer_seconds"],
            ),
            training_seconds=row["training_seconds"],
            reliability_seconds=row["reliability_seconds"],
            reliability_share=row["reliability_seconds"] / row["wall_clock_seconds"],
            wall_clock_seconds=row["wall_clock_seconds"],
            wall_clock_seconds_p10=row["wall_clock_seconds_p10"],
            wall_clock_seconds_p80=row["wall_clock_seconds_p80"],
            wall_clock_seconds_p90=row["wall_clock_seconds_p90"],
            device_hours=dh,
            device_hours_p10=row["device_hours_p10"],
            device_hours_p80=row["device_hours_p80"],
            device_hours_p90=row["device_hours_p90"],
            extrapolation_doublings=row["extrapolation_doublings"],
        ),
        efficiency=r.Efficiency(
            mfu=row["mfu"],
            hfu=row["hfu"],
            effective_mfu=row["model_flops_total"]
            / (row["wall_clock_seconds"] * devices * float(hw.arrays.peak_flops_per_s[0])),
            gemm_efficiency=row["gemm_efficiency"],
            mfu_forced=work.mfu is not None,
            fitted_parameters=fitted_parameters(params),
            fitted_on=params.fitted_on,
            fitted_date=params.fitted_date,
        ),
        throughput=r.Throughput(
            tokens_per_second=row["tokens_per_second"],
            tokens_per_second_per_device=row["tokens_per_second"] / devices,
            model_tflops_per_device=row["model_tflops_per_device"],
            hardware_tflops_per_device=row["hardware_flops_per_token"] * row["tokens_per_second"] / devices / TERA,
        ),
        cost=r.Cost(
            total_usd=row["cost_usd"] if has_price else None,
            total_usd_p10=row["cost_usd_p10"] if has_price else None,
            total_usd_p80=row["cost_usd_p80"] if has_price else None,
            total_usd_p90=row["cost_usd_p90"] if has_price else None,
            usd_per_device_hour=price.usd_per_device_hour,
            tier=price.tier,
            price_date=price.date,
            by_tier_usd=by_tier,
        ),
        energy=r.Energy(
            kwh=row["energy_kwh"] if has_power else None,
            co2_kg=row["co2_kg"] if has_power else None,
            power_watts=profile.power_watts,
            power_fraction=costs.POWER_FRACTION_OF_TDP,
            pue=costs.PUE_DEFAULT,
            grid_kg_co2_per_kwh=costs.GRID_KG_CO2_PER_KWH_DEFAULT,
        ),
        storage=r.Storage(**storage),
        fit_suggestions=[
            r.FitSuggestionInfo(
                change=s.change, flags=s.flags, per_device_bytes=s.memory_bytes, wall_clock_seconds=s.wall_clock_seconds
            )
            for s in suggestions
        ],
        warnings=list(warnings) + _extrapolation_warning(row, devices, spec, params) + storage_warnings(storage),
        finetune=finetune_info(work, row),
    )


def _finetune_inputs(work) -> dict:
    """The fine-tuning inputs of the report (none for plain training with one epoch)."""
    ft, out = getattr(work, "finetune", None), {}
    if ft is not None:
        out.update(finetune=ft.mode, lora_rank=ft.rank if ft.frozen else None,
                   lora_targets=ft.targets if ft.frozen else None)  # fmt: skip
    if getattr(work, "epochs", 1) != 1:
        out["epochs"] = work.epochs
    return out


def plan_point(hw, devices: int, layout, values: dict):
    """A :class:`~flopcast.reports.plan.PlanPoint` from one winner's estimate values (a dict of floats)."""
    from flopcast.reports.plan import PlanPoint

    price = hw.price
    return PlanPoint(
        hardware=hw.profile.id,
        devices=int(devices),
        layout=layout_info(layout),
        fits=bool(values["fits"]),
        memory_per_device_bytes=float(values["memory_bytes"]),
        capacity_bytes=float(hw.profile.memory_bytes),
        wall_clock_seconds=float(values["wall_clock_seconds"]),
        wall_clock_seconds_p10=float(values["wall_clock_seconds_p10"]),
        wall_clock_seconds_p80=float(values["wall_clock_seconds_p80"]),
        wall_clock_seconds_p90=float(values["wall_clock_seconds_p90"]),
        device_hours=float(values["device_hours"]),
        cost_usd=_num(values["cost_usd"]),
        cost_usd_p10=_num(values["cost_usd_p10"]),
        cost_usd_p80=_num(values["cost_usd_p80"]),
        cost_usd_p90=_num(values["cost_usd_p90"]),
        price_tier=price.tier,
        usd_per_device_hour=price.usd_per_device_hour,
        energy_kwh=_num(values["energy_kwh"]) if hw.profile.power_watts is not None else None,
        mfu=float(values["mfu"]),
        tokens_per_second=float(values["tokens_per_second"]),
    )


def _extrapolation_warning(row, devices: int, spec, params) -> list[str]:
    """A job beyond the fitted runs (devices or parameters): its P10–P90 is widened; say so."""
    if row["extrapolation_doublings"] <= 0:
        return []
    beyond = []
    if devices > params.calibrated_max_devices:
        beyond.append(f"{devices} devices (fitted runs: up to {params.calibrated_max_devices:,.0f})")
    if spec.params > params.calibrated_max_params:
        most = params.calibrated_max_params / 1e9
        beyond.append(f"{spec.params / 1e9:,.0f}B parameters (fitted runs: up to {most:,.0f}B)")
    return [
        "extrapolation: " + " and ".join(beyond) + "; the P10–P90 range is widened "
        f"({row['extrapolation_doublings']:.1f} doublings beyond the calibration)"
    ]
