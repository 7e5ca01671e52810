"""The CUDA code path run against a NumPy stand-in for PyTorch (no GPU needed).

The stand-in implements only the documented PyTorch calls flopcast.bench.gpu uses (torch.matmul/sub/mul
with out=, Tensor.uniform_(generator=), torch.linalg.vector_norm, torch.cuda.Event(enable_timing=True),
torch.cuda.synchronize/mem_get_info/get_device_properties/get_device_name/device, backends.cuda.matmul
.allow_tf32). It proves the GPU flow end to end — sweep, fit, GEMM check, training, profile — without
claiming anything about real GPU numbers; tests/test_bench_gpu.py does that on a machine with a GPU.
"""

import contextlib
import json
import sys
import time
import types

import numpy as np
import pytest
from typer.testing import CliRunner

from flopcast.cli import app


class FakeTensor(np.ndarray):
    def uniform_(self, low, high, *, generator=None):
        self[...] = generator.rng.uniform(low, high, size=self.shape)
        return self

    def square(self):
        return np.square(self).view(FakeTensor)

    def float(self):
        return self.astype(np.float32).view(FakeTensor)


def make_fake_torch(tf32_default=True):
    torch = types.ModuleType("torch")
    torch.__version__ = "2.5.0+fake"
    torch.version = types.SimpleNamespace(cuda="12.4")
    # NumPy has no bfloat16 and no fast float16 GEMM: compute in float32 (only the flow is under test)
    torch.bfloat16, torch.float16, torch.float32 = np.float32, np.float32, np.float32
    torch.device = lambda kind, index=None: (kind, index)

    class Generator:
        def __init__(self, device=None):
            self.device = device
            self.rng = np.random.default_rng(0)

        def manual_seed(self, seed):
            self.rng = np.random.default_rng(seed)
            return self

    torch.Generator = Generator
    torch.empty = lambda shape, dtype, device: np.empty(shape, dtype=dtype).view(FakeTensor)
    torch.zeros = lambda shape, dtype, device: np.zeros(shape, dtype=dtype).view(FakeTensor)
    torch.matmul = lambda a, b, *, out: np.matmul(a, b, out=out)
    torch.sub = lambda a, b, *, out: np.subtract(a, b, out=out)
    torch.mul = lambda a, b, *, out: np.multiply(a, b, out=out)
    torch.linalg = types.SimpleNamespace(
        vector_norm=lambda a, dtype=None: np.asarray(
            np.linalg.norm(np.ravel(a).astype(np.float64)), dtype=np.float32
        ).view(FakeTensor)
    )

    class Event:
        def __init__(self, enable_timing=False):
            assert enable_timing
            self.t = None

        def record(self, stream=None):
            self.t = time.perf_counter()

        def synchronize(self):
            assert self.t is not None

        def elapsed_time(self, end):
            return (end.t - self.t) * 1e3  # milliseconds, as documented

    state = {"synchronized": 0}

    def synchronize(device=None):
        state["synchronized"] += 1

    torch.cuda = types.SimpleNamespace(
        is_available=lambda: True,
        Event=Event,
        synchronize=synchronize,
        mem_get_info=lambda device=None: (60 * 2**30, 80 * 2**30),
        get_device_properties=lambda device=None: types.SimpleNamespace(
            L2_cache_size=50 * 2**20, multi_processor_count=132, total_memory=80 * 2**30
        ),
        get_device_name=lambda device=None: "Fake GPU",
        device=lambda index: contextlib.nullcontext(),
        state=state,
    )
    torch.backends = types.SimpleNamespace(cuda=types.SimpleNamespace(matmul=types.SimpleNamespace(
        allow_tf32=tf32_default)))  # fmt: skip
    return torch


@pytest.fixture
def fake_torch(monkeypatch):
    from threadpoolctl import threadpool_limits

    torch = make_fake_torch()
    monkeypatch.setitem(sys.modules, "torch", torch)
    with threadpool_limits(limits=1, user_api="blas"):  # the stand-in's matrices are tiny: one BLAS thread
        yield torch


def test_cuda_flow_end_to_end(fake_torch, tmp_path, monkeypatch):
    monkeypatch.setenv("FLOPCAST_CONFIG_DIR", str(tmp_path / "cfg"))
    result = CliRunner().invoke(
        app,
        ["bench", "--device", "cuda", "--quick", "--size-scale", "0.00001", "--format", "json",
         "--save-profile", "fake-gpu"],
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["settings"]["device"] == "cuda" and doc["settings"]["dtypes"] == ["bfloat16", "float16", "float32"]
    assert doc["machine"]["name"] == "Fake GPU" and doc["machine"]["tf32_allowed"] is False
    assert doc["machine"]["cache_bytes"] == 50 * 2**20 and doc["machine"]["memory_total_bytes"] == 80 * 2**30
    assert set(doc["roofline"]["peak_flops_per_s"]) == {"bfloat16", "float16", "float32"}
    assert {p["k"] for p in doc["points"]} == {1, 16, 256, 2048, 8192}
    assert all(r["loss_fell"] for r in doc["verify"]["runs"]) and len(doc["verify"]["runs"]) == 6
    assert fake_torch.cuda.state["synchronized"] > 0
    assert fake_torch.backends.cuda.matmul.allow_tf32 is True  # restored after the run
    shown = CliRunner().invoke(app, ["hardware", "show", "fake-gpu", "--format", "json"])
    assert shown.exit_code == 0, shown.stderr
    profile = json.loads(shown.stdout)
    assert profile["kind"] == "gpu" and profile["memory_bytes"] == 80 * 2**30
    assert set(k for k, v in profile["peak_flops_per_s"].items() if v) == {"bf16", "fp16", "fp32"}


def test_cuda_without_a_device_is_one_line(monkeypatch):
    torch = make_fake_torch()
    torch.cuda.is_available = lambda: False
    monkeypatch.setitem(sys.modules, "torch", torch)
    result = CliRunner().invoke(app, ["bench", "--device", "cuda", "--quick"])
    assert result.exit_code == 2
    assert "sees no CUDA device" in result.stderr and 'pip install "flopcast[gpu]"' in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_cuda_dtype_selection(fake_torch):
    result = CliRunner().invoke(
        app, ["bench", "--device", "cuda", "--quick", "--size-scale", "0.00001", "--dtype", "bf16", "--no-verify",
              "--format", "json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert list(json.loads(result.stdout)["roofline"]["peak_flops_per_s"]) == ["bfloat16"]
