"""The CUDA path of `flopcast bench` (PyTorch). Skipped cleanly where PyTorch or a CUDA device is missing."""

import json

import pytest

torch = pytest.importorskip("torch")
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"),
]

from typer.testing import CliRunner  # noqa: E402

from flopcast.bench.gpu import TorchOps, load_cuda_backend  # noqa: E402
from flopcast.bench.kernel import GradientDescent, gd_step_counts, measure  # noqa: E402
from flopcast.cli import app  # noqa: E402


def test_backend_loads_and_describes_the_gpu():
    ops = load_cuda_backend()
    assert isinstance(ops, TorchOps)
    with ops.session():
        info = ops.describe()
        assert info.device == "cuda" and info.memory_total_bytes > 0 and info.tf32_allowed is False
    assert info.cache_bytes > 0


def test_step_is_gradient_descent_on_the_gpu():
    ops = load_cuda_backend(seed=3)
    with ops.session():
        X = ops.uniform((256, 64), "float32", -1, 1)
        gd = GradientDescent(ops, X, 4, "float32", learning_rate=0.5)
        W0 = ops.uniform((64, 4), "float32", -1, 1)
        gd.W.copy_(W0)
        gd.step()
        expected = W0 - 0.5 / 256 * X.T @ (X @ W0 - gd.Y)
        torch.testing.assert_close(gd.W, expected, rtol=1e-4, atol=1e-5)


def test_event_timing_is_positive_and_scales():
    ops = load_cuda_backend()
    with ops.session():
        X = ops.uniform((4096, 1024), "bfloat16", -1, 1)
        gd = GradientDescent(ops, X, 256, "bfloat16")
        timing = measure(ops, gd.step, warmup=2, repeats=3)
        assert timing.median > 0 and timing.calls_per_sample >= 1
        flops = gd_step_counts(4096, 1024, 256, 2)[0].sum()
        assert flops / timing.median > 1e12  # any data-centre GPU does > 1 TFLOP/s of bf16 GEMM


def test_tiny_cuda_run_and_profile(tmp_path, monkeypatch):
    monkeypatch.setenv("FLOPCAST_CONFIG_DIR", str(tmp_path / "cfg"))
    result = CliRunner().invoke(
        app,
        ["bench", "--device", "cuda", "--quick", "--size-scale", "0.001", "--format", "json",
         "--save-profile", "this-gpu"],
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert set(doc["roofline"]["peak_flops_per_s"]) == {"bfloat16", "float16", "float32"}
    assert doc["machine"]["device"] == "cuda"
    assert all(r["loss_fell"] for r in doc["verify"]["runs"])
    shown = CliRunner().invoke(app, ["hardware", "show", "this-gpu", "--format", "json"])
    assert shown.exit_code == 0, shown.stderr
    profile = json.loads(shown.stdout)
    assert profile["kind"] == "gpu" and profile["peak_flops_per_s"]["bf16"] > 0
