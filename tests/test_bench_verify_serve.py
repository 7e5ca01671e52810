"""`flopcast bench --verify-serve`: a real decode in PyTorch on this machine, predicted by `serve` first.

The CPU path runs a tiny model (a few seconds); the check skips cleanly without PyTorch, and without PyTorch the
command is one line saying how to install it.
"""

from __future__ import annotations

import json
import sys

import pytest

from flopcast.bench.verify_serve import ServeCheck, run_verify_serve
from flopcast.errors import UsageError

# 2 layers of d = 256 (MHA, 4 heads), SwiGLU 704, vocab 4096, 16 prompt + 8 output tokens
TINY = ServeCheck(layers=2, d_model=256, heads=4, kv_heads=4, ffn=704, vocab=4096, prompt_tokens=16, output_tokens=8)
TINY_SCALE = 0.05  # shrink the machine measurement (the mat-vec chain and the GEMM) for the test


def test_verify_serve_decodes_on_the_cpu_and_reports_predicted_vs_measured():
    pytest.importorskip("torch")
    report = run_verify_serve(device="cpu", scale=TINY_SCALE, check=TINY)
    assert report.runtime == "eager"
    # the greedy decode produced one token per output position, from the vocabulary
    assert len(report.generated_tokens) == TINY.output_tokens
    assert all(0 <= t < TINY.vocab for t in report.generated_tokens)
    for f in (report.decode_tokens_per_second, report.time_to_first_token_seconds):
        assert f.predicted > 0 and f.measured > 0
        assert f.error == pytest.approx(f.predicted / f.measured - 1)
    assert report.machine.bandwidth_bytes_per_s > 0 and report.machine.peak_flops_per_s > 0
    # the eager runtime's kernel count (25 per layer + 11, runtimes.yaml) is what this decoder dispatches
    assert report.model.kernels_per_decode_step == TINY.layers * 25 + 11
    assert report.model.kernels_per_decode_step_runtime == TINY.layers * 25 + 11
    # parameters by hand: 2 × (4·256² + 3·256·704) + 2 · 4096·256 (embedding, untied head) + norms (2·2·256 + 256)
    assert report.model.params == 2 * (4 * 256**2 + 3 * 256 * 704) + 2 * 4096 * 256 + 5 * 256


def test_cli_verify_serve_json(cli):
    pytest.importorskip("torch")
    result = cli("bench", "--verify-serve", "--quick", "--size-scale", "0.05", "-f", "json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["report"] == "verify-serve" and doc["runtime"] == "eager"
    assert doc["decode_tokens_per_second"]["measured"] > 0
    assert doc["model"]["layers"] == 2  # --size-scale below 1 (tests only) shrinks the model too


def test_without_torch_the_command_says_how_to_install_it(cli, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` raises ImportError
    with pytest.raises(UsageError) as info:
        run_verify_serve(check=TINY)
    assert 'pip install "flopcast[torch]"' in info.value.one_line()
    result = cli("bench", "--verify-serve")
    assert result.exit_code == 2
    assert "flopcast[torch]" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 2  # the progress note and the one-line error


def test_verify_serve_refuses_roofline_only_options(cli):
    result = cli("bench", "--verify-serve", "--dtype", "float32")
    assert result.exit_code == 2 and "--dtype" in result.stderr and "--verify-serve" in result.stderr
