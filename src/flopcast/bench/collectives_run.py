"""One rank of `bench --collectives`: join the process group, time every collective at every size, gather to rank 0.

Runs inside each process of a distributed launch: under ``torchrun`` (the ``env://`` rendezvous: ``RANK``,
``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``) or in a worker flopcast started itself
(:mod:`flopcast.bench.collectives_launch`, a ``tcp://127.0.0.1:PORT`` rendezvous). Backend: NCCL on CUDA GPUs,
Gloo on CPUs. Every timed repeat starts from a barrier; each rank times its own call (``time.perf_counter``,
seconds; on CUDA after ``torch.cuda.synchronize``), and a repeat counts as the slowest rank's time. The process
group has a timeout, so a rank that dies makes the others fail within it instead of hanging.

PyTorch is the optional extra ``flopcast[torch]``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import os
import socket
import time
from collections.abc import Callable

from flopcast.bench.collectives import (
    ALL_GATHER,
    ALL_REDUCE,
    ALL_TO_ALL,
    ELEMENT_BYTES,
    REDUCE_SCATTER,
    SEND_RECV,
    CollectivesConfig,
    message_sizes,
)
from flopcast.errors import RuntimeFailure, opt

TORCH_MISSING = "bench --collectives needs PyTorch (torch.distributed)"
INSTALL_HINT = "pip install 'flopcast[torch]'"
# A collective that waits longer than this for a peer fails (torch.distributed's own default is 30 min, which
# is how long a dead rank would otherwise hold the others). The largest default message (256 MiB) takes well
# under a second on loopback Gloo, and a few ms on NVLink.
PROCESS_GROUP_TIMEOUT_S = 60.0
# One timed repeat runs a collective back to back for about this long (nccl-tests likewise times a loop of
# iterations and divides): long against the skew with which the ranks leave the barrier (tens of µs on loopback
# Gloo), so a 10 µs collective is not timed alone. The large sizes take longer than this once: one call.
TIMED_WINDOW_S = 2e-3
MAX_CALLS_PER_REPEAT = 50  # calls; bounds a repeat of the tiniest collective to ~50 launches
# a rank asked to fail (tests: CollectivesConfig.fail_rank) raises this after its first timed collective
INJECTED_FAILURE = "injected failure (test)"

Progress = Callable[[str, int, int], None]  # (label, done, total)


def import_torch():
    """``torch`` and ``torch.distributed``; RuntimeFailure (exit 1, like bench --verify-train) when missing."""
    try:
        import torch
        import torch.distributed as dist
    except ImportError:
        raise RuntimeFailure(f"{TORCH_MISSING}, which is not installed", hint=INSTALL_HINT) from None
    except Exception as exc:  # noqa: BLE001 - a broken install must still be one line
        raise RuntimeFailure(f"{TORCH_MISSING}: it failed to import ({type(exc).__name__}: {exc})") from None
    if not dist.is_available():
        raise RuntimeFailure(f"{TORCH_MISSING}: this PyTorch build has no torch.distributed", hint=INSTALL_HINT)
    return torch, dist


def require_torch() -> None:
    """RuntimeFailure unless PyTorch is installed, found without importing it (an import costs ~2 s of CPU, and
    with ``nproc`` only the workers need it; a broken install still fails there, in one line)."""
    import importlib.util

    try:
        found = importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError, AttributeError):  # sys.modules["torch"] = None, a half-removed package
        found = False
    if not found:
        raise RuntimeFailure(f"{TORCH_MISSING}, which is not installed", hint=INSTALL_HINT)


def run_rank(
    config: CollectivesConfig, *, rank: int, world: int, init_method: str = "env://", progress: Progress | None = None
) -> dict | None:
    """Join the group, time everything, leave. Rank 0 returns the gathered results; the other ranks None.

    The result: ``{"ranks", "hostnames", "torch_version", "backend", "device_name", "points": [{"collective",
    "bytes", "seconds": [[per repeat] per rank]}], "unsupported": {collective: reason}}``."""
    torch, dist = import_torch()
    device = _device(torch, config, rank)
    timeout = dt.timedelta(seconds=PROCESS_GROUP_TIMEOUT_S)
    try:
        dist.init_process_group(
            backend=config.backend, init_method=init_method, rank=rank, world_size=world, timeout=timeout
        )
    except Exception as exc:  # noqa: BLE001 - rendezvous failures come as several exception types
        raise RuntimeFailure(f"rank {rank}: could not join the process group: {_first_line(exc)}") from None
    try:
        return _measure(torch, dist, config, rank, world, device, progress)
    except RuntimeFailure:
        raise
    except Exception as exc:  # noqa: BLE001 - a peer that died shows up as a Gloo/NCCL error here
        raise RuntimeFailure(f"rank {rank}: a collective failed: {_first_line(exc)}") from None
    finally:
        _leave(dist)


def _device(torch, config: CollectivesConfig, rank: int):
    if config.device != "cuda":
        torch.set_num_threads(1)  # one process per core: the ranks share the CPU, as a node's GPUs share nothing
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise RuntimeFailure(f"{opt('device')} cuda: PyTorch sees no CUDA device", hint=f"{opt('device')} cpu: Gloo")
    local = int(os.environ.get("LOCAL_RANK", rank)) % torch.cuda.device_count()
    torch.cuda.set_device(local)
    return torch.device("cuda", local)


def _leave(dist) -> None:
    if dist.is_initialized():
        with contextlib.suppress(Exception):  # leaving a broken group must not hide the first error
            dist.destroy_process_group()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def _operation(torch, dist, collective: str, size: int, world: int, rank: int, device):
    """A no-argument callable running ``collective`` on a ``size``-byte float32 buffer (nccl-tests' sizes)."""
    count = size // ELEMENT_BYTES
    if collective == ALL_REDUCE:
        buf = torch.ones(count, dtype=torch.float32, device=device)
        return lambda: dist.all_reduce(buf)
    if collective == ALL_GATHER:  # size = the gathered buffer; each rank contributes size / n
        inp = torch.ones(count // world, dtype=torch.float32, device=device)
        out = torch.empty(count, dtype=torch.float32, device=device)
        return lambda: dist.all_gather_into_tensor(out, inp)
    if collective == REDUCE_SCATTER:  # size = the reduced buffer; each rank keeps size / n
        inp = torch.ones(count, dtype=torch.float32, device=device)
        out = torch.empty(count // world, dtype=torch.float32, device=device)
        return lambda: dist.reduce_scatter_tensor(out, inp)
    if collective == ALL_TO_ALL:  # size = what each rank sends (and receives)
        inp = torch.ones(count, dtype=torch.float32, device=device)
        out = torch.empty(count, dtype=torch.float32, device=device)
        return lambda: dist.all_to_all_single(out, inp)
    if collective == SEND_RECV:  # a ring shift: send to rank + 1, receive from rank − 1 (nccl-tests sendrecv)
        out_buf = torch.ones(count, dtype=torch.float32, device=device)
        in_buf = torch.empty(count, dtype=torch.float32, device=device)
        to, frm = (rank + 1) % world, (rank - 1) % world

        def shift():
            for work in dist.batch_isend_irecv(
                [dist.P2POp(dist.isend, out_buf, to), dist.P2POp(dist.irecv, in_buf, frm)]
            ):
                work.wait()

        return shift
    raise ValueError(f"unknown collective {collective!r}")


def _supported(torch, dist, collective: str, world: int, rank: int, device) -> str | None:
    """None if the backend runs ``collective``, else the reason (Gloo lacks some collectives in some versions).
    Every rank reaches the same verdict: the probe is itself collective, and a failure is agreed by all-reduce."""
    probe = _operation(torch, dist, collective, ELEMENT_BYTES * world, world, rank, device)
    reason = None
    try:
        probe()
    except (RuntimeError, NotImplementedError, ValueError) as exc:
        reason = _first_line(exc)
    failed = torch.tensor([1.0 if reason else 0.0], device=device)
    dist.all_reduce(failed)
    if failed.item() and reason is None:
        reason = "not supported on another rank"
    return reason


def _calls_per_repeat(torch, dist, run, sync, warmup: int, device) -> int:
    """Run the warm-up calls, timing each; return how many back-to-back calls one timed repeat makes so that it
    lasts about TIMED_WINDOW_S (at most MAX_CALLS_PER_REPEAT) — the same count on every rank (their maximum)."""
    fastest = float("inf")
    for _ in range(max(1, warmup)):
        start = time.perf_counter()
        run()
        sync()
        fastest = min(fastest, time.perf_counter() - start)
    calls = torch.tensor([float(min(MAX_CALLS_PER_REPEAT, max(1, math.ceil(TIMED_WINDOW_S / fastest))))],
                         device=device)  # fmt: skip
    dist.all_reduce(calls, op=dist.ReduceOp.MAX)
    return int(calls.item())


def _measure(torch, dist, config: CollectivesConfig, rank: int, world: int, device, progress: Progress | None):
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sizes = message_sizes(config.max_bytes, world)
    total, done = config.tasks(world), 0
    points, unsupported = [], {}
    for collective in config.collectives:
        reason = _supported(torch, dist, collective, world, rank, device)
        if reason is not None:
            unsupported[collective] = reason
            done += len(sizes)
            continue
        for size in sizes:
            if progress is not None:
                progress(f"{collective} {size:,} B", done, total)
            run = _operation(torch, dist, collective, size, world, rank, device)
            calls = _calls_per_repeat(torch, dist, run, sync, config.warmup, device)
            times = []
            for _ in range(config.repeats):
                dist.barrier()
                start = time.perf_counter()
                for _ in range(calls):
                    run()
                sync()
                times.append((time.perf_counter() - start) / calls)
                if config.fail_rank == rank:
                    raise RuntimeFailure(f"rank {rank}: {INJECTED_FAILURE}")
            points.append({"collective": collective, "bytes": size, "seconds": times, "calls": calls})
            done += 1
            del run
    if progress is not None:
        progress("gathering", total, total)
    mine = {"hostname": socket.gethostname(), "points": points}
    gathered = [None] * world if rank == 0 else None
    dist.gather_object(mine, gathered, dst=0)
    if rank != 0:
        return None
    return {
        "ranks": world,
        "hostnames": [g["hostname"] for g in gathered],
        "torch_version": str(torch.__version__),
        "backend": config.backend,
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "points": [
            {**p, "seconds": [g["points"][i]["seconds"] for g in gathered]} for i, p in enumerate(gathered[0]["points"])
        ],
        "unsupported": unsupported,
    }
