"""`flopcast bench --verify-serve`: decode with a real model on this machine, having predicted it (issue 17 item 6).

1. Measure the machine with PyTorch in the dtype the model runs in (bf16): the memory roof is a mat-vec through
   matrices far beyond the last-level cache (a decode step's kernel, as the k = 1 point of `flopcast bench`'s
   sweep is), the compute roof a large square GEMM. They make a measured profile (family ``local-cpu`` /
   ``local-gpu``: its figures are sustained, so serving's streaming fraction and large-GEMM ceiling are 1).
2. Predict prefill (time to first token) and decode tokens/s with `serve`'s estimate on that profile, runtime
   ``eager`` (what this script runs: plain PyTorch, one launch per op).
3. Build a Llama-style decoder (pre-norm RMSNorm, fused QKV, rotary-free SDPA attention over a static KV cache,
   SwiGLU MLP, untied LM head) with random weights, run the prompt, then greedy-decode: each generated token
   is the argmax of the last logits, fed back. Decode time does not depend on the weights' values.
4. Report predicted vs measured: error = predicted / measured − 1.

PyTorch is an optional extra (``pip install "flopcast[torch]"``); without it the command says so in one line.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from flopcast.errors import UsageError, opt

INSTALL_HINT = 'install PyTorch: pip install "flopcast[torch]"'
NORM_EPS = 1e-6
WEIGHT_INIT_STD = 0.02  # random weights of a typical initialisation scale (values do not change the timing)
# a mat-vec over a matrix this many times the last-level cache measures memory, not the cache
CACHE_MULTIPLE = 8
DEFAULT_CACHE_BYTES = 32 * 2**20
GEMM_SIDE = 2048
REPEATS = 7  # timed repeats of each machine measurement; the fastest is kept (others only slow a run down)
PREFILL_REPEATS = 3


@dataclass(frozen=True)
class ServeCheck:
    """The model and the request the check decodes: a Llama-style decoder, batch × prompt + output tokens."""

    layers: int = 8
    d_model: int = 1024
    heads: int = 16
    kv_heads: int = 16
    ffn: int = 2816
    vocab: int = 32000
    batch: int = 1
    prompt_tokens: int = 128
    output_tokens: int = 64

    def spec(self):
        from flopcast.models import ModelSpec

        return ModelSpec(
            name="verify-serve-decoder", layers=self.layers, d_model=self.d_model, heads=self.heads,
            kv_heads=self.kv_heads, ffn=self.ffn, gated_ffn=True, vocab=self.vocab,
            seq_len=self.prompt_tokens + self.output_tokens,
        )  # fmt: skip


# --quick: half the layers and vocabulary, still ~5× a 32 MiB cache of weights (a model that fits in the cache
# decodes faster than the memory roof predicts)
QUICK_CHECK = ServeCheck(layers=4, vocab=16000, prompt_tokens=64, output_tokens=32)
# bench's hidden --size-scale below 1 (tests only) shrinks the model too: a run of a second or two
SCALED_CHECK = ServeCheck(layers=2, d_model=256, heads=4, kv_heads=4, ffn=704, vocab=4096, prompt_tokens=16,
                          output_tokens=8)  # fmt: skip


def import_torch():
    try:
        import torch
    except ImportError:
        raise UsageError(f"{opt('verify_serve')} needs PyTorch, which is not installed", hint=INSTALL_HINT) from None
    except Exception as exc:  # noqa: BLE001 - a broken install must still be one line
        raise UsageError(
            f"{opt('verify_serve')}: PyTorch failed to import ({type(exc).__name__}: {exc})", hint=INSTALL_HINT
        ) from None
    return torch


# --- timing ---------------------------------------------------------------------------------------------
def _sync(torch, device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _fastest(torch, device: str, fn, repeats: int) -> float:
    fn()
    best = math.inf
    for _ in range(repeats):
        _sync(torch, device)
        start = time.perf_counter()
        fn()
        _sync(torch, device)
        best = min(best, time.perf_counter() - start)
    return best


def measure_machine(
    torch, device: str, dtype, cache_bytes: float, width: int, scale: float = 1.0
) -> tuple[float, float]:
    """(mat-vec bytes/s beyond the cache, GEMM FLOP/s) on ``device`` in ``dtype``.

    The memory roof is a mat-vec through a chain of distinct ``width × 4·width`` matrices that together exceed
    the last-level cache CACHE_MULTIPLE times, each read once per pass, as a decode step reads its weights (one
    large square matrix measures a different, shape-dependent rate on small CPUs). The compute roof is a square
    GEMM."""
    itemsize = torch.tensor([], dtype=dtype).element_size()
    matrix_bytes = width * 4 * width * itemsize
    count = max(2, math.ceil(CACHE_MULTIPLE * cache_bytes * scale / matrix_bytes))
    weights = [torch.randn(width, 4 * width, device=device).to(dtype) for _ in range(count)]
    x = torch.randn(1, width, device=device).to(dtype)

    def chain():
        for w in weights:
            x @ w

    with torch.no_grad():
        seconds = _fastest(torch, device, chain, REPEATS)
    bandwidth = count * matrix_bytes / seconds
    weights.clear()
    n = max(256, int(GEMM_SIDE * math.sqrt(scale)))
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    with torch.no_grad():
        seconds = _fastest(torch, device, lambda: a @ b, max(2, REPEATS // 2))
    return bandwidth, 2.0 * n**3 / seconds


# --- the model ------------------------------------------------------------------------------------------
class Decoder:
    """Llama-style pre-norm blocks over a static KV cache (the reference decoder of tests/test_serve_gpu.py)."""

    def __init__(self, torch, check: ServeCheck, device: str, dtype, seed: int = 0):
        self.torch, self.F = torch, torch.nn.functional
        self.heads, self.kv_heads, self.hd = check.heads, check.kv_heads, check.d_model // check.heads
        gen = torch.Generator(device="cpu").manual_seed(seed)
        max_tokens = check.prompt_tokens + check.output_tokens

        def rand(*shape):
            return (torch.randn(*shape, generator=gen) * WEIGHT_INIT_STD).to(device=device, dtype=dtype)

        def cache():
            return torch.zeros(check.batch, check.kv_heads, max_tokens, self.hd, device=device, dtype=dtype)

        qkv_width = (check.heads + 2 * check.kv_heads) * self.hd
        self.blocks = [
            dict(qkv=rand(check.d_model, qkv_width), o=rand(check.heads * self.hd, check.d_model),
                 gate_up=rand(check.d_model, 2 * check.ffn), down=rand(check.ffn, check.d_model), k=cache(), v=cache())
            for _ in range(check.layers)
        ]  # fmt: skip
        self.embed = rand(check.vocab, check.d_model)
        self.head = rand(check.d_model, check.vocab)
        self.device = device

    def _norm(self, x):
        t = self.torch
        return x * t.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + NORM_EPS).to(x.dtype)

    def forward(self, tokens, start: int):
        """tokens (b, n) at positions start..start+n-1; returns the greedy next token per sequence (b, 1)."""
        t, F = self.torch, self.F
        b, n = tokens.shape
        h = self.embed[tokens]
        positions = t.arange(start, start + n, device=self.device)
        context = start + n
        for blk in self.blocks:
            qkv = self._norm(h) @ blk["qkv"]
            q, k, v = qkv.split([self.heads * self.hd, self.kv_heads * self.hd, self.kv_heads * self.hd], -1)
            q = q.view(b, n, self.heads, self.hd).transpose(1, 2)
            blk["k"].index_copy_(2, positions, k.view(b, n, self.kv_heads, self.hd).transpose(1, 2))
            blk["v"].index_copy_(2, positions, v.view(b, n, self.kv_heads, self.hd).transpose(1, 2))
            attn = F.scaled_dot_product_attention(
                q, blk["k"][:, :, :context], blk["v"][:, :, :context], is_causal=n > 1,
                enable_gqa=self.kv_heads != self.heads,
            )  # fmt: skip
            h = h + attn.transpose(1, 2).reshape(b, n, -1) @ blk["o"]
            gate, up = (self._norm(h) @ blk["gate_up"]).chunk(2, -1)
            h = h + (F.silu(gate) * up) @ blk["down"]
        return (self._norm(h[:, -1]) @ self.head).argmax(-1, keepdim=True)


def count_kernels(torch, model: Decoder, batch: int) -> int:
    """Operators one decode step dispatches that run a kernel (views, splits and slices excluded)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    free = {"view", "_unsafe_view", "transpose", "slice", "split", "split_with_sizes", "select", "chunk"}

    class Count(TorchDispatchMode):
        kernels = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func.__name__.split(".")[0] not in free:
                Count.kernels += 1
            return func(*args, **(kwargs or {}))

    token = torch.zeros(batch, 1, dtype=torch.long, device=model.device)
    with torch.no_grad(), Count():
        model.forward(token, 1)
    return Count.kernels


def measure_serving(torch, model: Decoder, check: ServeCheck) -> tuple[float, float, list[int]]:
    """(time to first token in s, decode seconds per step, the greedy tokens of sequence 0)."""
    device = model.device
    prompt = torch.randint(0, check.vocab, (check.batch, check.prompt_tokens), device=device)
    with torch.no_grad():
        ttft = _fastest(torch, device, lambda: model.forward(prompt, 0), PREFILL_REPEATS)
        best = math.inf
        generated: list[int] = []
        for _ in range(2):  # two greedy runs from the same prompt; the faster counts
            token = model.forward(prompt, 0)
            out = [int(token[0, 0])]
            _sync(torch, device)
            start = time.perf_counter()
            for i in range(check.output_tokens - 1):
                token = model.forward(token, check.prompt_tokens + i)
                out.append(int(token[0, 0]))  # .item() syncs: a real server hands each token back too
            _sync(torch, device)
            best = min(best, time.perf_counter() - start)
            generated = out
    return ttft, best / max(check.output_tokens - 1, 1), generated


# --- predicted vs measured --------------------------------------------------------------------------------
def local_profile(device: str, name: str, memory_bytes: float, bandwidth: float, peak: float):
    """A measured profile of this machine (family local-*: sustained figures), bf16 peak."""
    from flopcast.bench.profile import LOCAL_FAMILY_CPU, LOCAL_FAMILY_GPU
    from flopcast.hardware import HardwareProfile

    return HardwareProfile.model_validate(
        dict(id="this-machine", name=name, kind="cpu" if device == "cpu" else "gpu",
             family=LOCAL_FAMILY_CPU if device == "cpu" else LOCAL_FAMILY_GPU, peak_flops_per_s={"bf16": peak},
             memory_bytes=memory_bytes, memory_bandwidth_bytes_per_s=bandwidth,
             # the peak is the measured large-GEMM rate itself: its large-GEMM ceiling is 1
             calibration={"matmul_efficiency": 1.0, "fitted_on": "flopcast bench --verify-serve (its GEMM)"},
             sources=["measured by flopcast bench --verify-serve"])
    )  # fmt: skip


def _machine(torch, device: str) -> tuple[str, float, float, int | None]:
    """(name, cache bytes, memory bytes, threads) of the device."""
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        return (
            props.name,
            float(getattr(props, "L2_cache_size", 0) or DEFAULT_CACHE_BYTES),
            float(props.total_memory),
            None,
        )
    from flopcast.bench.machine import cpu_model, last_level_cache, total_memory_bytes

    cache, _ = last_level_cache()
    return (
        cpu_model(),
        float(cache or DEFAULT_CACHE_BYTES),
        float(total_memory_bytes() or 0) or 1e9,
        (torch.get_num_threads()),
    )


def run_verify_serve(device: str = "cpu", quick: bool = False, scale: float = 1.0, check: ServeCheck | None = None):
    """Measure this machine, predict the decode with `serve`, run it; a VerifyServeReport."""
    from flopcast.bench.machine import cpu_time_snapshot, other_cpu_share
    from flopcast.bench.run import BUSY_SHARE
    from flopcast.reports.verify_serve import (
        DECODE_TARGET_ABS_ERROR,
        TTFT_TARGET_ABS_ERROR,
        VerifyServeMachine,
        VerifyServeModel,
        VerifyServeReport,
        figure,
    )
    from flopcast.serving import ServeRequest, estimate_serving

    started = time.perf_counter()
    cpu_start = cpu_time_snapshot()
    torch = import_torch()
    if device == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"{opt('device')} cuda: PyTorch {torch.__version__} sees no CUDA device",
                         hint="check the NVIDIA driver, or run on the CPU")  # fmt: skip
    check = check or (SCALED_CHECK if scale < 1 else QUICK_CHECK if quick else ServeCheck())
    dtype = torch.bfloat16
    torch.manual_seed(0)
    name, cache, memory, threads = _machine(torch, device)
    bandwidth, peak = measure_machine(torch, device, dtype, cache, check.d_model, scale)
    profile = local_profile(device, name, memory, bandwidth, peak)
    spec = check.spec()
    request = ServeRequest(batch=check.batch, prompt_tokens=check.prompt_tokens, output_tokens=check.output_tokens,
                           devices=1, runtime="eager")  # fmt: skip
    predicted = estimate_serving(spec, profile, request)

    model = Decoder(torch, check, device, dtype)
    kernels = count_kernels(torch, model, check.batch)
    ttft, step, generated = measure_serving(torch, model, check)
    warnings = [w for w in predicted.warnings if "does not fit" not in w]
    others = other_cpu_share(cpu_start, cpu_time_snapshot())
    if others is not None and others > BUSY_SHARE:
        warnings.insert(0, f"other programs used {others:.0%} of the CPU time during the run: the timings are "
                        "disturbed (rerun on a quiet machine)")  # fmt: skip
    return VerifyServeReport(
        machine=VerifyServeMachine(
            device=device,
            name=name,
            torch_version=str(torch.__version__),
            threads=threads,
            cache_bytes=cache,
            dtype="bfloat16",
            bandwidth_bytes_per_s=bandwidth,
            peak_flops_per_s=peak,
        ),  # fmt: skip
        model=VerifyServeModel(
            layers=check.layers,
            d_model=check.d_model,
            heads=check.heads,
            kv_heads=check.kv_heads,
            ffn=check.ffn,
            vocab=check.vocab,
            params=spec.params,
            batch=check.batch,
            prompt_tokens=check.prompt_tokens,
            output_tokens=check.output_tokens,
            kernels_per_decode_step=kernels,
            kernels_per_decode_step_runtime=predicted.runtime.kernels_per_forward,
        ),  # fmt: skip
        runtime=predicted.runtime.id,
        decode_tokens_per_second=figure(predicted.decode.tokens_per_second, 1.0 / step, DECODE_TARGET_ABS_ERROR),
        time_to_first_token_seconds=figure(predicted.prefill.seconds, ttft, TTFT_TARGET_ABS_ERROR),
        predicted_decode_bound=predicted.decode.bound,
        generated_tokens=generated,
        elapsed_seconds=time.perf_counter() - started,
        warnings=warnings,
    )
