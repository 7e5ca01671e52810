"""The published-run reader (flopcast.calibration.runs): what each CSV row becomes."""

from __future__ import annotations

# --- the published-run reader ----------------------------------------------------------------------------
HEADER = (
    "run_id,kind,params,layers,d_model,heads,kv_heads,head_dim,ffn,gated_ffn,vocab,seq_len,tokens,hardware,devices,"
    "tp,pp,dp,micro_batch,global_batch_seqs,recompute,target,target_value,flops_convention,trust,source"
)


def _runs(tmp_path, *rows):
    from flopcast.calibration.runs import load_runs

    path = tmp_path / "runs.csv"
    path.write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    return load_runs(path)


def test_hardware_flops_convention_implies_full_recompute(tmp_path):
    """Megatron's hardware-FLOPs formula (96·B·s·l·h², Narayanan et al. 2021 eq. 3) counts a recomputed
    forward pass, so a TFLOP/s in that convention with no recompute mode published is a full-recompute run."""
    row = "{},throughput,,24,2304,24,,,,false,51200,2048,,a100-80gb,32,1,1,32,,512,,tflops_per_device,137,{},A,src"
    hw_run, model_run = _runs(tmp_path, row.format("x", "hardware (counts recompute)"), row.format("y", "model"))
    assert hw_run.recompute == "full" and model_run.recompute is None


def test_runs_published_before_2023_materialise_attention_scores(tmp_path):
    """FlashAttention reached PyTorch and Megatron-LM in 2023: a 2021 source gets unfused attention, a 2023
    one (or one naming no year) the hardware's default; an explicit fused_attention column wins."""
    from flopcast.calibration.runs import source_year

    assert source_year("Narayanan et al. 2021, Table 1") == 2021
    assert source_year("README (batch 2048 x 4096)") is None
    row = "{},throughput,,24,2304,24,,,,false,51200,2048,,a100-80gb,32,1,1,32,1,512,full,step_seconds,1,,A,{}"
    old, new, none = _runs(
        tmp_path, row.format("a", "Narayanan et al. 2021"), row.format("b", "Touvron et al. 2023"), row.format("c", "x")
    )
    assert old.fused_attention is False and new.fused_attention is None and none.fused_attention is None

