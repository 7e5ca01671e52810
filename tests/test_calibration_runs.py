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


# --- hardware families come from the catalogue's profiles --------------------------------------------------
def _user_hopper(directory):
    """A copy of the shipped H100 profile under another id (its family line kept): a user's own file."""
    from flopcast.hardware import shipped_profiles_dir

    text = (shipped_profiles_dir() / "h100-80gb.yaml").read_text(encoding="utf-8")
    text = text.replace("id: h100-80gb", "id: my-h100")
    text = text.replace("aliases: [h100, h100-80, h100-sxm, h100-sxm5-80gb]", "aliases: []")
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "my-h100.yaml").write_text(text, encoding="utf-8")
    nameless = text.replace("id: my-h100", "id: no-family").replace("family: nvidia-hopper", "")
    (directory / "no-family.yaml").write_text(nameless, encoding="utf-8")
    return directory


def test_the_fit_maps_run_hardware_to_families_through_the_profiles(tmp_path):
    from flopcast.calibration.fit import families_of
    from flopcast.hardware import load_catalog

    catalog = load_catalog([_user_hopper(tmp_path / "profiles")])
    row = "{},throughput,,24,2304,24,,,,false,51200,2048,,{},32,1,1,32,1,512,full,step_seconds,1,,A,src"
    runs = _runs(tmp_path, row.format("a", "my-h100"), row.format("b", "a100-40gb"), row.format("c", "no-family"))
    assert families_of(runs, catalog) == {"nvidia-hopper", "nvidia-ampere"}
    assert families_of(runs[2:], catalog) == set()


def test_backtest_calibrates_a_user_profile_by_its_family(tmp_path):
    from flopcast.calibration.backtest import backtest

    profiles = _user_hopper(tmp_path / "profiles")
    row = "{},throughput,,24,2304,24,,,,false,51200,2048,,{},32,1,1,32,1,512,full,step_seconds,1,,A,src"
    path = tmp_path / "runs.csv"
    path.write_text("\n".join([HEADER, row.format("a", "my-h100"), row.format("b", "no-family")]) + "\n")
    rows = {r.run_id: r for r in backtest(path, profiles=[profiles]).rows}
    assert rows["a"].hardware_calibrated is True and rows["b"].hardware_calibrated is False
    assert rows["a"].predicted < rows["b"].predicted  # the Hopper ceiling factor (> 1) is faster than the base


def test_refit_writes_a_fit_the_estimator_reads(tmp_path, monkeypatch):
    """A small refit (three runs, three source families) produces a document with every field of the shipped
    fit file, and write_fit stores one that EfficiencyParams.load reads back."""
    import json

    from flopcast.calibration.fit import refit, write_fit
    from flopcast.calibration.runs import load_runs, published_runs_path
    from flopcast.estimator import efficiency
    from flopcast.hardware import load_catalog

    shipped = json.loads(efficiency.fit_path().read_text(encoding="utf-8"))
    keep = {"megatron-1.7b", "mpt-7b-h100", "pythia-410m"}
    runs = [r for r in load_runs(published_runs_path()) if r.run_id in keep]
    result = refit({published_runs_path(): runs}, load_catalog())
    assert set(result.document) == set(shipped)
    assert set(result.held_out) == {"megatron21", "mpt", "pythia"}
    assert result.document["calibrated_families"] == ["nvidia-ampere", "nvidia-hopper"]
    path = write_fit(result.document, tmp_path / "fit.json")
    monkeypatch.setattr(efficiency, "fit_path", lambda: path)
    loaded = efficiency.EfficiencyParams.load()
    assert loaded.gemm_ceiling == result.values["gemm_ceiling"]
    assert loaded.log_ratio_p10 == result.residual_p10 and "3 published runs" in loaded.fitted_on
