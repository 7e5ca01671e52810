"""The same kernel on an NVIDIA GPU through PyTorch (optional extra ``flopcast[gpu]``).

:class:`TorchOps` is the CUDA array backend: the interface of :class:`flopcast.bench.kernel.NumpyOps`
(``uniform``, ``zeros``, ``empty``, ``matmul``/``sub``/``scale`` writing into ``out=``, ``sumsq``,
``sync``, ``time_calls``) written with documented PyTorch calls only: ``torch.matmul(out=)``,
``torch.sub(out=)``, ``torch.mul(out=)``, ``Tensor.uniform_(generator=)``, ``torch.linalg.vector_norm``,
``torch.cuda.Event(enable_timing=True)`` (``record``/``synchronize``/``elapsed_time`` in ms),
``torch.cuda.synchronize`` and ``torch.cuda.mem_get_info`` (free, total bytes).

float32 is measured as true FP32: TF32 tensor-core math is switched off for the run
(``torch.backends.cuda.matmul.allow_tf32 = False``) and restored afterwards, so the fitted ``fp32`` peak
is comparable with the datasheet FP32 figure.

PyTorch is imported only by :func:`load_cuda_backend`; without it (or without a CUDA device) that
function raises a :class:`~flopcast.errors.UsageError` naming the fix.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from flopcast.bench.plan import ITEMSIZE_BYTES
from flopcast.errors import UsageError, opt
from flopcast.reports.bench import MachineInfo

INSTALL_HINT = 'install PyTorch with CUDA: pip install "flopcast[gpu]"'
# Used only when PyTorch does not report the L2 size: 50 MiB is the L2 of the H100/H200 (NVIDIA H100 Tensor
# Core GPU Architecture whitepaper, "50 MB L2 cache"); A100 has 40 MB, so sizing X at many times this keeps
# the bandwidth points out of L2 on current data-centre GPUs.
DEFAULT_GPU_L2_BYTES = 50 * 2**20


class TorchOps:
    """The CUDA array backend (one device)."""

    device = "cuda"
    dtypes = ("bfloat16", "float16", "float32")
    # Kernel launches are asynchronous and a step can take well under a millisecond: time samples of at
    # least this long between two CUDA events, so launch gaps and event resolution (~0.5 µs) are < 1 %.
    min_sample_seconds = 0.02

    def __init__(self, torch, device_index: int = 0, seed: int = 0):
        self.torch = torch
        self.index = device_index
        self.target = torch.device("cuda", device_index)
        self.gen = torch.Generator(device=self.target)
        self.gen.manual_seed(seed)

    # -- arrays ------------------------------------------------------------------------------------------
    def _dtype(self, dtype: str):
        return getattr(self.torch, dtype)

    def itemsize(self, dtype: str) -> int:
        return ITEMSIZE_BYTES[dtype]

    def uniform(self, shape: tuple[int, ...], dtype: str, low: float, high: float):
        out = self.torch.empty(shape, dtype=self._dtype(dtype), device=self.target)
        out.uniform_(low, high, generator=self.gen)
        return out

    def zeros(self, shape: tuple[int, ...], dtype: str):
        return self.torch.zeros(shape, dtype=self._dtype(dtype), device=self.target)

    def empty(self, shape: tuple[int, ...], dtype: str):
        return self.zeros(shape, dtype)

    def scalar(self, value: float, dtype: str) -> float:
        return float(value)

    def matmul(self, a, b, out) -> None:
        self.torch.matmul(a, b, out=out)

    def sub(self, a, b, out) -> None:
        self.torch.sub(a, b, out=out)

    def scale(self, a, factor, out) -> None:
        self.torch.mul(a, factor, out=out)

    def sumsq(self, a) -> Any:
        """‖a‖² as a 0-d fp32 tensor on the device (no host sync): one reduction that reads ``a`` once.

        Accumulated and squared in float32: in float16 the square of the norm overflows (max 65504) as soon as
        the loss sum passes it, which the H200 check hit on the compute-bound run (loss read as inf)."""
        return self.torch.linalg.vector_norm(a, dtype=self.torch.float32).square()

    @staticmethod
    def to_float(value: Any) -> float:
        return float(value.item())

    def relative_error(self, a, b) -> float:
        norm = self.torch.linalg.vector_norm
        return float((norm((a - b).float()) / norm(b.float())).item())

    def sync(self) -> None:
        self.torch.cuda.synchronize(self.target)

    def time_calls(self, fn: Callable[[], None], calls: int) -> float:
        """Seconds between two CUDA events around ``calls`` back-to-back calls (GPU time, not host time)."""
        start = self.torch.cuda.Event(enable_timing=True)
        end = self.torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(calls):
            fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3

    @staticmethod
    def free(*arrays) -> None:
        """Tensors go back to PyTorch's caching allocator when the last reference goes."""

    # -- the run -----------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def session(self, threads: int | None = None) -> Iterator[None]:
        """True FP32 for the run (TF32 off), restored afterwards; on this device."""
        matmul = self.torch.backends.cuda.matmul
        saved = matmul.allow_tf32
        matmul.allow_tf32 = False
        try:
            with self.torch.cuda.device(self.index):
                yield
        finally:
            matmul.allow_tf32 = saved

    def describe(self, threads_requested: int | None = None) -> MachineInfo:
        import platform
        import sys

        import numpy as np

        torch = self.torch
        props = torch.cuda.get_device_properties(self.index)
        free, total = torch.cuda.mem_get_info(self.index)
        l2 = getattr(props, "L2_cache_size", None)
        return MachineInfo(
            device="cuda",
            name=torch.cuda.get_device_name(self.index),
            vendor="NVIDIA" if torch.version.cuda else None,
            multiprocessors=getattr(props, "multi_processor_count", None),
            memory_total_bytes=float(total),
            memory_available_bytes=float(free),
            cache_bytes=float(l2 or DEFAULT_GPU_L2_BYTES),
            cache_source="GPU L2 from torch.cuda.get_device_properties" if l2 else "default GPU L2 (not reported)",
            numpy_version=np.__version__,
            python_version=sys.version.split()[0],
            platform=platform.platform(terse=True),
            torch_version=str(torch.__version__),
            cuda_version=torch.version.cuda,
            tf32_allowed=bool(torch.backends.cuda.matmul.allow_tf32),
        )


def load_cuda_backend(seed: int = 0) -> TorchOps:
    """Import PyTorch and check for a CUDA device; a one-line :class:`UsageError` (exit 2) if not."""
    try:
        import torch
    except ImportError:
        raise UsageError(f"{opt('device')} cuda needs PyTorch, which is not installed", hint=INSTALL_HINT) from None
    except Exception as exc:  # a broken install raises all sorts (OSError for a missing libcudart ...)
        raise UsageError(
            f"{opt('device')} cuda: PyTorch failed to import ({type(exc).__name__}: {exc})", hint=INSTALL_HINT
        ) from None
    try:
        available = bool(torch.cuda.is_available())
    except Exception:  # noqa: BLE001 - a driver problem must still be one line
        available = False
    if not available:
        raise UsageError(
            f"{opt('device')} cuda: PyTorch {torch.__version__} sees no CUDA device",
            hint=f"check the NVIDIA driver and CUDA_VISIBLE_DEVICES, or {INSTALL_HINT}",
        )
    return TorchOps(torch, seed=seed)
