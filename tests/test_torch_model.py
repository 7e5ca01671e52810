"""Measured models (flopcast.measured_models, estimator/measured.py, torch_model.py): presets checked against the
papers and hand counts, re-measured with FlopCounterMode where torch is installed, estimates and bad input."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from flopcast.measured_models import measured_preset

FACTORIES = "torch_factories.models"
CRITEO_TERABYTE_ROWS = (  # facebookresearch/dlrm dlrm_s_pytorch.py, Criteo Terabyte MLPerf (--max-ind-range=40000000)
    39884406, 39043, 17289, 7420, 20263, 3, 7120, 1543, 63, 38532951, 2953546, 403346, 10, 2208, 11938, 155, 4,
    976, 14, 39979771, 25641295, 39664984, 585935, 12972, 108, 36,
)  # fmt: skip


@pytest.fixture
def factories(monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).parent))


def resnet50_macs_by_hand() -> int:
    """He et al. 2016 Table 1 counted layer by layer: conv1 7×7/2 on 224² → 112², bottlenecks at 56², 28², 14², 7²."""
    macs = 112 * 112 * 7 * 7 * 3 * 64
    cin, size = 64, 56
    for width, blocks, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
        for i in range(blocks):
            out_size = size // stride if i == 0 else size
            macs += size * size * cin * width  # 1×1 reduce (at the input resolution)
            macs += out_size * out_size * 9 * width * width  # 3×3 (carries the stride)
            macs += out_size * out_size * width * 4 * width  # 1×1 expand
            if i == 0:
                macs += out_size * out_size * cin * 4 * width  # projection shortcut
            cin, size = 4 * width, out_size
    return macs + 2048 * 1000  # classifier


def vit_b16_macs_by_hand() -> int:
    """ViT-B/16 (Dosovitskiy et al. 2021 Table 1): 196 patches + class token, d 768, MLP 3072, 12 heads of 64."""
    s, d, f, layers = 197, 768, 3072, 12
    patches = 196 * d * 3 * 16 * 16
    per_layer = s * (4 * d * d + 2 * d * f) + 2 * s * s * d  # QKV + O + MLP; QKᵀ and A·V
    return patches + layers * per_layer + d * 1000


def test_resnet50_preset_matches_he_et_al_and_a_hand_count():
    m = measured_preset("resnet-50")
    assert abs(m.params / 25.6e6 - 1) < 0.01  # He et al. 2016; torchvision: 25,557,032
    assert m.forward_flops_per_sample == 2 * resnet50_macs_by_hand()
    assert abs(m.forward_flops_per_sample / 2 / 4.1e9 - 1) < 0.01  # ~4.1 GMACs per 224×224 image
    assert m.embedding_table_params == 0 and measured_preset("ResNet50").name == "resnet-50"


def test_vit_b16_preset_matches_the_paper_and_a_hand_count():
    m = measured_preset("vit-b16")
    assert abs(m.params / 86e6 - 1) < 0.01  # Dosovitskiy et al. 2021 Table 1: 86M
    assert m.forward_flops_per_sample == 2 * vit_b16_macs_by_hand()


def test_dlrm_preset_is_its_tables_and_mlps_by_hand():
    m = measured_preset("dlrm")
    bottom, top = (13, 512, 256, 128), (479, 1024, 1024, 512, 256, 1)  # 479 = 128 + 27·26/2 pairs
    mlp = sum(a * b + b for w in (bottom, top) for a, b in zip(w[:-1], w[1:], strict=False))
    tables = sum(CRITEO_TERABYTE_ROWS) * 128
    assert m.embedding_table_params == tables and m.params == tables + mlp
    assert m.embedding_table_params / m.params > 0.999  # Naumov et al. 2019: the tables dominate memory
    mlp_macs = sum(a * b for w in (bottom, top) for a, b in zip(w[:-1], w[1:], strict=False))
    assert m.forward_flops_per_sample == 2 * (mlp_macs + 27 * 27 * 128)  # MLPs + the dot interaction (bmm)
    assert m.lookup_bytes_per_sample == 26 * 128 * 2  # 26 rows of 128 in 16 bit


@pytest.mark.parametrize(
    ("factory", "preset"), [("resnet50", "resnet-50"), ("vit_b16", "vit-b16"), ("dlrm_criteo_terabyte", "dlrm")]
)
def test_presets_are_what_flop_counter_mode_measures(factories, factory, preset):
    pytest.importorskip("torch")
    from flopcast.torch_model import measure

    got, m = measure(f"{FACTORIES}:{factory}"), measured_preset(preset)
    assert got["params"] == m.params and got["embedding_params"] == m.embedding_table_params
    assert got["forward_flops_per_sample"] == m.forward_flops_per_sample
    assert got["activation_bytes_per_sample"] == pytest.approx(m.activation_bytes_per_sample, rel=1e-9)
    assert got["lookup_bytes_per_sample"] == m.lookup_bytes_per_sample


def test_a_small_mlp_by_hand(factories):
    pytest.importorskip("torch")
    from flopcast.torch_model import measure

    got = measure(f"{FACTORIES}:small_mlp")
    assert got["params"] == 32 * 64 + 64 + 64 * 8 + 8
    assert got["forward_flops_per_sample"] == 2 * (32 * 64 + 64 * 8)
    # saved for the backward: the input (first linear) and the ReLU output (ReLU and second linear: one storage)
    assert got["activation_bytes_per_sample"] == 2 * (32 + 64)


def test_a_transformer_shaped_module_becomes_a_measured_model(factories, cli):
    pytest.importorskip("torch")
    r = cli("estimate", "--torch-model", f"{FACTORIES}:tiny_gpt", "--samples", "1e6", "--devices", "2", "-f", "json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    s, d, layers, v = 32, 64, 2, 100
    matmuls = layers * (4 * d * d + 2 * d * 4 * d) + d * v  # QKV, O, MLP per layer; the head
    forward = s * (2 * matmuls + layers * 2 * 2 * s * d)  # PaLM App. B per token, × 32 tokens a sample
    assert doc["model"]["measured"]["forward_flops_per_sample"] == forward
    assert doc["flops"]["per_token"] == 3 * forward and doc["inputs"]["samples"] == 1e6
    assert doc["parallelism"]["tp"] == doc["parallelism"]["pp"] == 1 and doc["parallelism"]["dp"] == 2


def test_resnet50_estimate_reports_samples_and_data_parallel_only(cli):
    r = cli("estimate", "-m", "resnet-50", "--samples", "1.28e8", "--devices", "16", "-f", "json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    p, mm = doc["parallelism"], doc["model"]["measured"]
    assert (p["tp"], p["pp"], p["cp"], p["ep"], p["dp"], p["recompute"]) == (1, 1, 1, 1, 16, "none")
    assert p["global_batch"] == 256  # He et al. 2016 Sec. 3.4
    assert doc["flops"]["per_token"] == 3 * 2 * resnet50_macs_by_hand()  # forward + backward = 3 forward
    # model FLOP rate: samples/s × FLOPs per sample = MFU × devices × peak
    rate = mm["samples_per_second"] * doc["flops"]["per_token"]
    assert rate == pytest.approx(doc["efficiency"]["mfu"] * 16 * doc["hardware"]["peak_flops_per_s"], rel=1e-9)
    assert doc["time"]["steps"] == pytest.approx(1.28e8 / 256)
    table = cli("estimate", "-m", "resnet-50", "--samples", "1.28e8", "--devices", "16")
    assert "samples/s" in table.stdout and "tokens/s" not in table.stdout


def test_the_global_batch_counts_samples(cli):
    base = ["estimate", "-m", "resnet-50", "--samples", "1.28e8", "--devices", "8", "-f", "json"]
    doc = json.loads(cli(*base, "--global-batch", "1024").stdout)
    assert doc["parallelism"]["global_batch"] == 1024
    assert doc["time"]["steps"] == pytest.approx(1.28e8 / 1024)  # samples per step, by hand


def test_dlrm_tables_do_not_fit_one_gpu_and_are_sharded_over_eight(cli):
    one = json.loads(cli("estimate", "-m", "dlrm", "--samples", "4e9", "--devices", "1", "-f", "json").stdout)
    tables_bytes = sum(CRITEO_TERABYTE_ROWS) * 128 * 4  # fp32 rows: 96 GB > 80 GB
    assert not one["memory"]["fits"] and one["memory"]["breakdown"]["weights_bytes"] >= tables_bytes
    assert any("does not fit" in w or "fits" in w for w in one["warnings"])
    eight = json.loads(cli("estimate", "-m", "dlrm", "--samples", "4e9", "--devices", "8", "-f", "json").stdout)
    mm = eight["model"]["measured"]
    assert eight["memory"]["fits"] and mm["embedding_tables_sharded"]
    assert mm["embedding_table_bytes_per_device"] == pytest.approx(tables_bytes / 8)
    assert mm["embedding_all_to_all_seconds"] > 0 and one["model"]["measured"]["embedding_all_to_all_seconds"] == 0


def test_transformer_rows_are_unchanged_beside_a_measured_row():
    """One vectorised call over a Llama row and a ResNet row gives the Llama row what it gets alone."""
    from flopcast.estimator.arrays import HardwareArrays, LayoutArrays, ModelArrays, Workload
    from flopcast.estimator.core import evaluate
    from flopcast.hardware import load_catalog
    from flopcast.presets import get_preset

    hw = HardwareArrays.from_profiles([load_catalog([]).get("a100-80gb")])
    llama, resnet = get_preset("llama-2-7b"), measured_preset("resnet-50")
    lay = LayoutArrays.of(tp=[2, 1], pp=[1, 1], dp=[4, 8], micro_batch=[1, 32], global_batch=[512, 256])
    both = evaluate(ModelArrays.from_specs([llama, resnet], np.array([0, 1])), hw, lay, Workload(1e9))
    alone = evaluate(ModelArrays.from_specs([llama]), hw, lay.take(np.array([0])), Workload(1e9))
    for name in ("step_seconds", "memory_bytes", "model_flops_per_token", "wall_clock_seconds"):
        assert getattr(both, name)[0] == getattr(alone, name)[0], name
    assert ModelArrays.from_specs([llama]).measured[0] == 0.0


@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        (["--torch-model", "nocolon", "--samples", "1e6"], 2, "module:factory"),
        (["--torch-model", f"{FACTORIES}:raises", "--samples", "1e6"], 1, "weights file missing"),
        (["--torch-model", f"{FACTORIES}:not_a_module", "--samples", "1e6"], 2, "not a torch.nn.Module"),
        (["--torch-model", f"{FACTORIES}:no_inputs", "--samples", "1e6"], 2, "example_inputs"),
        (["--torch-model", f"{FACTORIES}:resnet5", "--samples", "1e6"], 2, "did you mean resnet50"),
        (["-m", "resnet-5O", "--samples", "1e6"], 2, "resnet-50"),
        (["-m", "resnet-5", "--samples", "1e6"], 2, "unknown model 'resnet-5' (did you mean resnet-50?"),
        (["-m", "resnet-50", "--tokens", "1e6"], 2, "samples"),
        (["-m", "llama-2-7b", "--samples", "1e6"], 2, "measured model"),
        (["-m", "resnet-50", "--samples", "1e6", "--tp", "2"], 2, "data parallel only"),
        (["-m", "resnet-50", "--samples", "1e6", "--recompute", "full"], 2, "recompute"),
        (["-m", "resnet-50", "--torch-model", f"{FACTORIES}:resnet50", "--samples", "1e6"], 2, "--torch-model"),
    ],
)
def test_bad_input_is_one_line(factories, cli, one_line_error, args, code, fragment):
    if any("torch_factories" in a for a in args) and "nocolon" not in args and "-m" not in args:
        pytest.importorskip("torch")
    one_line_error(cli("estimate", *args, "--devices", "8"), code, fragment)


def test_without_torch_the_error_says_how_to_install(factories, cli, one_line_error, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch raises ImportError
    r = cli("estimate", "--torch-model", f"{FACTORIES}:resnet50", "--samples", "1e6", "--devices", "8")
    one_line_error(r, 2, "pip install 'flopcast[torch]'")


def test_presets_do_not_import_torch():
    import subprocess

    code = (
        "import sys; from flopcast.cli import main; sys.argv=['flopcast','estimate','-m','dlrm','--samples','1e9',"
        "'--devices','8','-f','json']\ntry: main()\nexcept SystemExit: pass\nassert 'torch' not in sys.modules"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["plan", "-m", "resnet-50", "-t", "1e8"],
        ["compare", "-m", "dlrm", "-t", "1e8", "-n", "8"],
        ["estimate", "-m", "vit-b16", "-t", "1e8", "--sweep", "devices=8..64"],
    ],
)
def test_the_searches_refuse_a_measured_model_in_one_line(cli, one_line_error, args):
    # a measured model's budget is samples and its batch counts them: only `estimate --samples` plans one
    fragments = ("is a measured model", "searches transformer models only", "with --samples and --devices")
    one_line_error(cli(*args), 2, *fragments)
