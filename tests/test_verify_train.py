"""bench --verify-train: a real PyTorch transformer's peak memory against flopcast's prediction (issue 13).

The measurement is checked against independent figures first (hand-counted allocations; PyTorch's own
profiler as a second method), then the prediction against the measurement for every recompute mode."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")

from flopcast.bench.transformer import LiveTensorBytes, Shape, measure  # noqa: E402
from flopcast.bench.verify_train import predict  # noqa: E402

TINY = Shape(layers=2, d_model=128, heads=4, kv_heads=2, ffn=344, vocab=2048, seq_len=256)


def test_live_bytes_follow_hand_counted_allocations():
    with LiveTensorBytes() as live:
        a = torch.empty(1000, 1000)  # 4,000,000 B
        b = torch.empty(2000, 1000)  # 8,000,000 B
        del a
        c = torch.empty(500, 1000, dtype=torch.bfloat16)  # 1,000,000 B
        view = b[:10]  # a view: no new storage
    assert live.peak == 12_000_000
    assert live.current == 9_000_000
    del b, c, view


def test_live_bytes_agree_with_the_pytorch_profiler_on_a_training_step():
    """Second method: the CPU allocator's own events, as torch.profiler records them."""
    from torch.profiler import ProfilerActivity, profile

    from flopcast.bench.transformer import _Trainer

    def train():
        trainer = _Trainer(TINY, "fp32", "fp32", "none", 2, torch.device("cpu"))
        trainer.step()
        trainer.step()

    with LiveTensorBytes() as live:
        train()
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        train()
    events = sorted(
        (e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"), key=lambda e: e.start_ns()
    )
    current = peak = 0
    for e in events:
        current += e.nbytes()
        peak = max(peak, current)
    # the allocator also holds non-tensor scratch (index buffers, workspaces): within a few per cent
    assert live.peak == pytest.approx(peak, rel=0.05)


@pytest.mark.parametrize("precision,grad_dtype", [("fp32", "fp32"), ("bf16", "fp32"), ("bf16", "bf16")])
@pytest.mark.parametrize("recompute", ["none", "selective", "op", "attention", "full"])
def test_predicted_peak_is_within_10_percent_of_the_measured_one(precision, grad_dtype, recompute):
    measured = measure(TINY, precision=precision, grad_dtype=grad_dtype, recompute=recompute, micro_batch=2, steps=1)
    predicted = predict(TINY, recompute=recompute, micro_batch=2, precision=precision, grad_dtype=grad_dtype)
    assert predicted.memory.allocated_bytes == pytest.approx(measured.peak_bytes, rel=0.10)


def test_recompute_modes_order_the_measured_memory():
    """What each mode keeps (recompute.py): none ≥ selective ≥ op ≥ attention ≥ full, measured."""
    peaks = [measure(TINY, recompute=r, micro_batch=2, steps=1).peak_bytes for r in ("none", "op", "attention", "full")]
    assert peaks == sorted(peaks, reverse=True) and peaks[0] > 1.1 * peaks[-1]


def _cli(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "flopcast", "bench", "--verify-train", *args],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip


def test_cli_reports_every_mode_within_target_as_json():
    proc = _cli("--model", "125M", "--verify-scale", "16", "--quick", "-f", "json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["report"] == "verify-train"
    assert [r["recompute"] for r in doc["rows"]] == ["none", "selective", "op", "attention", "full"]
    assert doc["within_target"] is True
    assert all(abs(r["memory_error"]) <= 0.10 for r in doc["rows"])
    assert doc["shape"]["scale"] == 16


def test_cli_says_the_largest_scale_that_fits():
    proc = _cli("--model", "llama-3-70b", "--verify-scale", "1")
    assert proc.returncode == 2
    assert "the largest that fits is --verify-scale" in proc.stderr and "Traceback" not in proc.stderr


def test_cli_without_torch_says_how_to_install_it(tmp_path):
    (tmp_path / "torch.py").write_text("raise ImportError('no torch here')\n")
    import os

    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = _cli("--model", "125M", env=env)
    assert proc.returncode == 1
    assert 'pip install "flopcast[torch]"' in proc.stderr and "Traceback" not in proc.stderr
