"""A real Llama-style transformer in PyTorch, trained a few steps to *measure* peak memory and step time.

What ``flopcast bench --verify-train`` measures, to compare with what the estimator core predicts for the
same shapes (bench/verify_train.py). PyTorch is the optional extra ``flopcast[torch]``; this module imports
it only inside its functions, so importing flopcast never needs it.

The model is the decoder the presets describe (Touvron et al. 2023, "LLaMA"; torchtitan's llama3 model is the
same shape): token embedding, ``L`` pre-norm layers of RMSNorm → attention (Q, K, V, O projections without
bias, rotary positions, grouped-query heads, PyTorch's fused ``scaled_dot_product_attention`` with a causal
mask) → RMSNorm → SwiGLU MLP (W1, W3, W2), a final RMSNorm and an untied output head; the loss is PyTorch's
cross-entropy on fp32 logits (``logits.float()``, as torchtitan and Hugging Face Transformers compute it).
No dropout (modern LLM recipes train without it).

Training recipes, named by flopcast's ``--precision`` and ``--grad-dtype``:
- ``fp32``: fp32 weights, fp32 gradients, ``torch.optim.AdamW`` (m and v in fp32).
- ``bf16`` (mixed): bf16 weights compute the forward and backward; every bf16 gradient is accumulated into an
  fp32 "main grad" by a post-accumulate hook and freed (Megatron-LM's DistributedDataParallel grad buffer,
  ``accumulate_allreduce_grads_in_fp32``), and AdamW updates fp32 master copies that are then copied back
  to the bf16 weights (Megatron's ``Float16OptimizerWithFloat16Params``). With ``grad_dtype="bf16"`` the bf16
  gradients stay and are cast to fp32 one tensor at a time inside the step (DeepSpeed's default).

Recompute modes (flopcast's ``--recompute``): ``none``; ``full`` (``torch.utils.checkpoint`` around each layer);
``selective`` (Megatron-LM's: only the attention core is recomputed); ``op`` (torchtitan's per-op selective
checkpointing policy: save the outputs of matmuls, except every second one, and of the attention kernel);
``attention`` (save only the attention kernel's outputs, recompute everything else of the layer).

Memory is measured as the peak of live tensor bytes (:class:`LiveTensorBytes`: every tensor a PyTorch op
creates is counted from its creation until its storage is freed — what ``torch.cuda.max_memory_allocated``
reports on a GPU, which is used there instead).
"""

from __future__ import annotations

import time
import weakref
from dataclasses import dataclass

# torchtitan's per-op selective activation checkpointing (torchtitan/distributed/activation_checkpoint.py,
# ``_save_list`` and ``_custom_policy``): outputs of these ops are saved, except every second matmul.
OP_SAC_SAVED_OPS = (
    "aten.mm.default",
    "aten._scaled_dot_product_efficient_attention.default",
    "aten._scaled_dot_product_flash_attention.default",
    "aten._scaled_dot_product_flash_attention_for_cpu.default",
    "aten._scaled_dot_product_cudnn_attention.default",
)
ATTENTION_OPS = tuple(name for name in OP_SAC_SAVED_OPS if "scaled_dot_product" in name)
ROPE_THETA = 10000.0  # rotary base of Llama 2 (Touvron et al. 2023); the memory does not depend on it
RMS_NORM_EPS = 1e-5
ADAMW_LEARNING_RATE = 1e-4


@dataclass(frozen=True)
class Shape:
    """The transformer to build: widths in elements."""

    layers: int
    d_model: int
    heads: int
    kv_heads: int
    ffn: int
    vocab: int
    seq_len: int

    @property
    def head_dim(self) -> int:
        return self.d_model // self.heads


@dataclass(frozen=True)
class Measured:
    """One measured configuration: peak live bytes and the median seconds of a training step."""

    peak_bytes: float
    step_seconds: float
    params: int
    device: str


def torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def _build(shape: Shape, dtype, device):
    import torch
    from torch import nn

    norm_fn, swiglu_fn = _fused_functions()

    class RMSNorm(nn.Module):
        def __init__(self, d):
            super().__init__()
            self.weight = nn.Parameter(torch.ones(d, device=device, dtype=dtype))

        def forward(self, x):
            return norm_fn(x, self.weight)

    def rotate(x, cos, sin):
        half = x.shape[-1] // 2
        x1, x2 = x[..., :half], x[..., half:]
        return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)

    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            hd = shape.head_dim
            lin = lambda i, o: nn.Linear(i, o, bias=False, device=device, dtype=dtype)  # noqa: E731
            self.wq, self.wk = lin(shape.d_model, shape.heads * hd), lin(shape.d_model, shape.kv_heads * hd)
            self.wv, self.wo = lin(shape.d_model, shape.kv_heads * hd), lin(shape.heads * hd, shape.d_model)

        def forward(self, x, cos, sin, core):
            b, s, _ = x.shape
            hd = shape.head_dim
            q = self.wq(x).view(b, s, shape.heads, hd).transpose(1, 2)
            k = self.wk(x).view(b, s, shape.kv_heads, hd).transpose(1, 2)
            v = self.wv(x).view(b, s, shape.kv_heads, hd).transpose(1, 2)
            out = core(rotate(q, cos, sin), rotate(k, cos, sin), v)
            return self.wo(out.transpose(1, 2).reshape(b, s, shape.heads * hd))

    class Layer(nn.Module):
        def __init__(self):
            super().__init__()
            lin = lambda i, o: nn.Linear(i, o, bias=False, device=device, dtype=dtype)  # noqa: E731
            self.attention_norm, self.ffn_norm = RMSNorm(shape.d_model), RMSNorm(shape.d_model)
            self.attention = Attention()
            self.w1, self.w3 = lin(shape.d_model, shape.ffn), lin(shape.d_model, shape.ffn)
            self.w2 = lin(shape.ffn, shape.d_model)

        def forward(self, x, cos, sin, core):
            h = x + self.attention(self.attention_norm(x), cos, sin, core)
            y = self.ffn_norm(h)
            return h + self.w2(swiglu_fn(self.w1(y), self.w3(y)))

    class Transformer(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding(shape.vocab, shape.d_model, device=device, dtype=dtype)
            self.layers = nn.ModuleList(Layer() for _ in range(shape.layers))
            self.norm = RMSNorm(shape.d_model)
            self.output = nn.Linear(shape.d_model, shape.vocab, bias=False, device=device, dtype=dtype)
            hd = shape.head_dim
            inv = 1.0 / ROPE_THETA ** (torch.arange(0, hd // 2, device=device, dtype=torch.float32) * 2 / hd)
            angles = torch.outer(torch.arange(shape.seq_len, device=device, dtype=torch.float32), inv)
            self.register_buffer("cos", angles.cos().to(dtype), persistent=False)
            self.register_buffer("sin", angles.sin().to(dtype), persistent=False)

    return Transformer()


def _fused_functions():
    """RMSNorm and SwiGLU as the fused GPU kernels run them, as autograd Functions that save what those
    kernels save: the norm keeps its input and the fp32 reciprocal RMS (Apex/Transformer Engine fused
    RMSNorm), SwiGLU keeps its two branch inputs (Megatron-LM ``bias_swiglu``). PyTorch's eager composites
    keep fp32 copies as well (measured: 10 B per element of a bf16 norm input instead of 2), which no GPU
    training stack pays."""
    import torch

    class FusedRMSNorm(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, weight):
            x32 = x.float()
            rstd = torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + RMS_NORM_EPS)
            ctx.save_for_backward(x, weight, rstd)
            return (x32 * rstd).to(x.dtype) * weight

        @staticmethod
        def backward(ctx, grad):
            x, weight, rstd = ctx.saved_tensors
            x32, g = x.float(), grad.float() * weight.float()
            normed = x32 * rstd
            dx = rstd * (g - normed * (g * normed).mean(-1, keepdim=True))
            dw = (grad.float() * normed).flatten(0, -2).sum(0)
            return dx.to(x.dtype), dw.to(weight.dtype)

    class FusedSwiGLU(torch.autograd.Function):
        @staticmethod
        def forward(ctx, a, b):
            ctx.save_for_backward(a, b)
            return torch.nn.functional.silu(a) * b

        @staticmethod
        def backward(ctx, grad):
            # in place, as a fused kernel would: only sigmoid(a) exists beside the two gradients
            a, b = ctx.saved_tensors
            sig = torch.sigmoid(a)
            db = torch.mul(a, sig).mul_(grad)  # silu(a) · grad
            da = torch.sub(1.0, sig).mul_(a).add_(1.0).mul_(sig).mul_(b).mul_(grad)
            del sig
            return da, db

    return FusedRMSNorm.apply, FusedSwiGLU.apply


def _attention_core(recompute: str):
    """The attention kernel call: PyTorch's fused SDPA, checkpointed alone for Megatron's ``selective``."""
    from torch.nn import functional as F
    from torch.utils.checkpoint import checkpoint

    def core(q, k, v):
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=q.shape[1] != k.shape[1])

    if recompute == "selective":  # Megatron-LM: checkpoint the attention core only
        return lambda q, k, v: checkpoint(core, q, k, v, use_reentrant=False)
    return core


def _layer_runner(recompute: str):
    """How each layer is called: plainly, under full checkpointing, or under a selective policy."""
    import functools

    from torch.utils.checkpoint import CheckpointPolicy, checkpoint, create_selective_checkpoint_contexts

    if recompute in ("none", "selective"):
        return lambda layer, *args: layer(*args)
    if recompute == "full":
        return lambda layer, *args: checkpoint(layer, *args, use_reentrant=False)
    saved = OP_SAC_SAVED_OPS if recompute == "op" else ATTENTION_OPS

    def policy(counts, ctx, func, *args, **kwargs):
        name = str(func)
        key = ("recompute" if ctx.is_recompute else "forward") + name
        if name == "aten.mm.default":
            counts[key] = counts.get(key, 0) + 1
            if recompute == "op" and counts[key] % 2 == 0:
                return CheckpointPolicy.PREFER_RECOMPUTE
        return CheckpointPolicy.MUST_SAVE if name in saved else CheckpointPolicy.PREFER_RECOMPUTE

    def contexts():
        return create_selective_checkpoint_contexts(functools.partial(policy, {}))

    return lambda layer, *args: checkpoint(layer, *args, use_reentrant=False, context_fn=contexts)


class _Trainer:
    """The model, its optimizer and one training step, for one recipe."""

    def __init__(self, shape: Shape, precision: str, grad_dtype: str, recompute: str, micro_batch: int, device):
        import torch

        self.torch = torch
        self.shape, self.micro_batch, self.device = shape, micro_batch, device
        dtype = torch.float32 if precision == "fp32" else torch.bfloat16
        self.model = _build(shape, dtype, device)
        self.params = [p for p in self.model.parameters()]
        self.core, self.run_layer = _attention_core(recompute), _layer_runner(recompute)
        self.mixed = precision != "fp32"
        self.main_grads = self.mixed and grad_dtype == "fp32"
        if self.mixed:
            self.master = [p.detach().float() for p in self.params]
            for mp in self.master:
                mp.requires_grad_(True)
            self.optimizer = torch.optim.AdamW(self.master, lr=ADAMW_LEARNING_RATE, foreach=False)
            if self.main_grads:
                for p, mp in zip(self.params, self.master, strict=True):
                    mp.grad = torch.zeros_like(mp)
                    p.register_post_accumulate_grad_hook(self._into_main_grad(mp))
        else:
            self.optimizer = torch.optim.AdamW(self.params, lr=ADAMW_LEARNING_RATE, foreach=False)
        gen = torch.Generator(device="cpu").manual_seed(0)
        self.tokens = torch.randint(0, shape.vocab, (micro_batch, shape.seq_len + 1), generator=gen).to(device)

    @staticmethod
    def _into_main_grad(main):
        def hook(p):
            main.grad.add_(p.grad)
            p.grad = None

        return hook

    def step(self) -> float:
        torch, m = self.torch, self.model
        x, y = self.tokens[:, :-1], self.tokens[:, 1:]
        cos, sin = m.cos, m.sin
        h = m.embedding(x)
        for layer in m.layers:
            h = self.run_layer(layer, h, cos, sin, self.core)
        logits = m.output(m.norm(h))
        loss = torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), y.flatten())
        del logits, h
        loss.backward()
        if self.mixed and not self.main_grads:
            for p, mp in zip(self.params, self.master, strict=True):
                mp.grad = p.grad.float()
                p.grad = None
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=not self.main_grads)
        if self.mixed:
            with torch.no_grad():
                for p, mp in zip(self.params, self.master, strict=True):
                    p.copy_(mp)
        else:
            for p in self.params:
                p.grad = None
        return float(loss.detach())


class LiveTensorBytes:
    """Peak bytes of live tensor storage while it is entered: every op's outputs are counted from their
    creation until the storage is freed (a storage shared by views is counted once)."""

    def __init__(self) -> None:
        from torch.utils._python_dispatch import TorchDispatchMode

        tracker = self

        class _Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                out = func(*args, **(kwargs or {}))
                tracker._count(out)
                return out

        self._mode = _Mode()
        self._live: dict[tuple[int, int], int] = {}
        self.current = 0
        self.peak = 0

    def _count(self, out) -> None:
        import torch
        from torch.utils._pytree import tree_flatten

        for t in tree_flatten(out)[0]:
            if not isinstance(t, torch.Tensor) or t.device.type == "meta":
                continue
            storage = t.untyped_storage()
            nbytes = storage.nbytes()
            key = (storage.data_ptr(), nbytes)
            if nbytes == 0 or key in self._live:
                continue
            self._live[key] = nbytes
            self.current += nbytes
            self.peak = max(self.peak, self.current)
            weakref.finalize(storage, self._free, key)

    def _free(self, key) -> None:
        nbytes = self._live.pop(key, 0)
        self.current -= nbytes

    def __enter__(self) -> LiveTensorBytes:
        self._mode.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._mode.__exit__(*exc)


def measure(
    shape: Shape,
    *,
    precision: str = "fp32",
    grad_dtype: str = "fp32",
    recompute: str = "none",
    micro_batch: int = 1,
    steps: int = 3,
    device: str = "cpu",
) -> Measured:
    """Build the model, train ``steps`` steps, and return the peak memory and the median step time.

    On CPU the peak is :class:`LiveTensorBytes` over model construction and the steps (the first step holds
    the most: the optimizer state appears in it); on CUDA it is ``torch.cuda.max_memory_allocated``."""
    import torch

    dev = torch.device(device)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
        trainer = _Trainer(shape, precision, grad_dtype, recompute, micro_batch, dev)
        trainer.step()
        trainer.step()
        peak = float(torch.cuda.max_memory_allocated(dev))
    else:
        with LiveTensorBytes() as live:
            trainer = _Trainer(shape, precision, grad_dtype, recompute, micro_batch, dev)
            trainer.step()
            trainer.step()
        peak = float(live.peak)
    seconds = []
    for _ in range(max(steps, 1)):
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        start = time.perf_counter()
        trainer.step()
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        seconds.append(time.perf_counter() - start)
    seconds.sort()
    params = sum(p.numel() for p in trainer.params)
    return Measured(peak, seconds[len(seconds) // 2], params, str(dev))
