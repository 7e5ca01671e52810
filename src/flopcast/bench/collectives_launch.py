"""How `bench --collectives` runs: under ``torchrun`` in this process, or as N local worker processes, then the
report (the library call behind the CLI flag).

Under torchrun (``WORLD_SIZE`` and ``RANK`` in the environment) this process is one rank; rank 0 gets the report,
the other ranks None. With ``nproc`` flopcast starts N workers (:mod:`flopcast.bench.collectives_worker`) on
``127.0.0.1`` with a free port and watches them: a worker that fails stops the others (terminate, then kill after
STOP_GRACE_S), the run fails with that worker's line, and nothing is returned, so nothing is written.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from flopcast.bench.collectives import (
    BUFFERS_PER_RANK,
    CollectivesConfig,
    bus_factor,
    fit_latency_bandwidth,
    message_sizes,
    summarise,
)
from flopcast.bench.collectives_run import Progress, import_torch, require_torch, run_rank
from flopcast.errors import ConflictingOptions, InvalidValue, RuntimeFailure, UsageError, opt
from flopcast.reports.bench_collectives import (
    CollectiveFit,
    CollectivePoint,
    CollectivesReport,
    CollectivesSettings,
)

MIN_RANKS = 2  # a collective over one rank moves nothing
POLL_S = 0.05  # how often the launcher looks at its workers and rank 0's progress
FAILURE_GRACE_S = 3.0  # after a rank fails, how long the others may take to fail or finish on their own
STOP_GRACE_S = 5.0  # a worker told to stop (SIGTERM) has this long before SIGKILL
# A worker that has not finished this long after the process group's timeout is stuck: the run fails.
WORKER_TIMEOUT_MARGIN_S = 30.0
# A point whose repeats spread wider than this ((slowest − fastest) / median) was disturbed: the report warns.
# (A quiet 2-core VM keeps most Gloo points within it; a concurrent test suite does not.)
NOISY_SPREAD = 1.0


def distributed_env(environ=None) -> tuple[int, int] | None:
    """(rank, world size) under torchrun (or any launcher that sets RANK and WORLD_SIZE), else None."""
    env = os.environ if environ is None else environ
    if "WORLD_SIZE" not in env or "RANK" not in env:
        return None
    try:
        rank, world = int(env["RANK"]), int(env["WORLD_SIZE"])
    except ValueError:
        raise InvalidValue(f"RANK={env['RANK']!r}, WORLD_SIZE={env['WORLD_SIZE']!r}: not whole numbers") from None
    if world < MIN_RANKS or not 0 <= rank < world:
        raise InvalidValue(f"WORLD_SIZE={world}, RANK={rank}: a collective needs at least {MIN_RANKS} ranks")
    return rank, world


def check_launch(nproc: int | None, environ=None) -> tuple[int, int] | None:
    """Refuse, before anything runs, a launch that cannot work; return the torchrun (rank, world) if any."""
    launched = distributed_env(environ)
    if launched is not None and nproc is not None:
        raise ConflictingOptions(
            f"{opt('nproc')} starts local processes, but this is already rank {launched[0]} of a distributed launch",
            hint=f"drop {opt('nproc')} under torchrun",
        )
    if launched is None and nproc is None:
        raise UsageError(
            f"{opt('collectives')} needs several processes: this is not a distributed launch (no RANK/WORLD_SIZE)",
            hint=f"run it under torchrun, or add {opt('nproc')} 2 to start 2 local processes",
        )
    if nproc is not None and nproc < MIN_RANKS:
        raise InvalidValue(f"{opt('nproc')} {nproc}: a collective needs at least {MIN_RANKS} processes")
    return launched


def check_memory(config: CollectivesConfig, nproc: int, available_bytes: float | None) -> None:
    """Refuse a local run whose buffers (BUFFERS_PER_RANK × the largest size, per process) exceed free memory."""
    need = BUFFERS_PER_RANK * config.max_bytes * nproc
    if available_bytes is not None and need > available_bytes:
        fits = available_bytes / (BUFFERS_PER_RANK * nproc)
        raise InvalidValue(
            f"{opt('max_bytes')} {config.max_bytes:.4g}: {nproc} processes would need about {need / 1e9:.2f} GB, "
            f"{available_bytes / 1e9:.2f} GB is free",
            hint=f"give {opt('max_bytes')} {int(fits // 2**20)}MiB or fewer processes",
        )


def run_collectives(config: CollectivesConfig, *, nproc: int | None = None, progress: Progress | None = None):
    """Time the collectives; the report on rank 0 (and with ``nproc``), None on the other torchrun ranks."""
    launched = check_launch(nproc)
    require_torch()  # fail in one line before any process starts
    start = time.perf_counter()
    if launched is not None:
        rank, world = launched
        raw = run_rank(config, rank=rank, world=world, progress=progress if rank == 0 else None)
        launcher = "torchrun"
    else:
        raw = run_local(config, nproc, progress)
        launcher = "nproc"
    if raw is None:
        return None
    return build_report(raw, config, launcher, time.perf_counter() - start)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_local(config: CollectivesConfig, nproc: int, progress: Progress | None = None) -> dict:
    """Start ``nproc`` workers on this host, follow rank 0's progress, return rank 0's gathered result."""
    if config.device == "cuda":
        check_gpus(nproc)
    with tempfile.TemporaryDirectory(prefix="flopcast-collectives-") as folder:
        work = Path(folder)
        (work / "config.json").write_text(json.dumps(config.as_dict()), encoding="utf-8")
        port = free_port()
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
            env.pop(name, None)
        procs, logs = [], []
        try:
            for rank in range(nproc):
                log = (work / f"rank{rank}.err").open("w", encoding="utf-8")
                logs.append(log)
                argv = [sys.executable, "-m", "flopcast.bench.collectives_worker", str(work / "config.json"),
                        str(rank), str(nproc), str(port), str(work)]  # fmt: skip
                procs.append(subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
                                              env=env))  # fmt: skip
            _watch(procs, work, progress)
        except BaseException:
            _stop(procs)
            raise
        finally:
            for log in logs:
                log.close()
        failed = [(rank, p.returncode) for rank, p in enumerate(procs) if p.returncode != 0]
        if failed:
            rank, code = _first_failure(failed, work)
            line = _last_line(work / f"rank{rank}.err") or f"exit status {code}"
            raise RuntimeFailure(
                f"bench --collectives: rank {rank} of {nproc} failed: {line}",
                hint="the other ranks were stopped; nothing was written",
            )
        return json.loads((work / "result.json").read_text(encoding="utf-8"))


def check_gpus(nproc: int) -> None:
    """NCCL runs one rank per GPU: refuse, before any worker starts, more ranks than this host has GPUs."""
    torch, _ = import_torch()
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        raise RuntimeFailure(f"{opt('device')} cuda: PyTorch sees no CUDA device", hint=f"{opt('device')} cpu: Gloo")
    if nproc > count:
        raise InvalidValue(
            f"{opt('nproc')} {nproc}: NCCL runs one rank per GPU and this host has {count}",
            hint=f"give {opt('nproc')} {count} or fewer",
        )


def _watch(procs, work: Path, progress: Progress | None) -> None:
    """Wait for every worker; as soon as one fails, stop the rest. Workers whose rank 0 reports no progress for
    longer than the process group's timeout (plus a margin) are stuck: stop them and fail."""
    from flopcast.bench.collectives_run import PROCESS_GROUP_TIMEOUT_S

    stall_s = PROCESS_GROUP_TIMEOUT_S + WORKER_TIMEOUT_MARGIN_S
    last_text, last_change = "", time.monotonic()
    while True:
        codes = [p.poll() for p in procs]
        with contextlib.suppress(OSError, ValueError):
            text = (work / "progress").read_text(encoding="utf-8")
            if text != last_text and text.strip():
                last_text, last_change = text, time.monotonic()
                done, total, label = text.strip().split(" ", 2)
                if progress is not None:
                    progress(label, int(done), int(total))
        if all(c == 0 for c in codes):
            return
        if any(c not in (None, 0) for c in codes):
            # a failing rank breaks its peers' collectives too, and a peer may notice first: give the others a
            # moment to exit on their own, so that the rank that failed first reports its own error
            end = time.monotonic() + FAILURE_GRACE_S
            while time.monotonic() < end and any(p.poll() is None for p in procs):
                time.sleep(POLL_S)
            _stop(procs)
            return
        if time.monotonic() - last_change > stall_s:
            _stop(procs)
            raise RuntimeFailure(
                f"bench --collectives: no progress for {stall_s:g} s; the workers were stopped",
                hint="nothing was written",
            )
        time.sleep(POLL_S)


def _stop(procs) -> None:
    for p in procs:
        if p.poll() is None:
            p.terminate()
    end = time.monotonic() + STOP_GRACE_S
    for p in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(timeout=max(0.0, end - time.monotonic()))
        if p.poll() is None:
            p.kill()
            p.wait()


def _first_failure(failed: list[tuple[int, int]], work: Path) -> tuple[int, int]:
    """The rank that failed on its own (its line does not blame a peer), else the first that failed."""
    stopped = (-15, -9)  # SIGTERM/SIGKILL from _stop: a consequence, not the cause
    for rank, code in failed:
        line = _last_line(work / f"rank{rank}.err")
        if code not in stopped and line and "a collective failed" not in line:
            return rank, code
    return next(((r, c) for r, c in failed if c not in stopped), failed[0])


def _last_line(path: Path) -> str:
    with contextlib.suppress(OSError):
        lines = [line.strip() for line in path.read_text(encoding="utf-8", errors="replace").splitlines()]
        lines = [line for line in lines if line]
        return lines[-1] if lines else ""
    return ""


def build_report(raw: dict, config: CollectivesConfig, launcher: str, elapsed_s: float) -> CollectivesReport:
    """Rank 0's gathered timings -> points (median of the slowest rank per repeat) and one fit per collective."""
    world = int(raw["ranks"])
    hosts = raw["hostnames"]
    per_node = max(hosts.count(h) for h in set(hosts))
    points: list[CollectivePoint] = []
    fits: list[CollectiveFit] = []
    for collective in config.collectives:
        mine = [p for p in raw["points"] if p["collective"] == collective]
        if not mine:
            continue
        factor = bus_factor(collective, world)
        medians = []
        for p in mine:
            median, fastest, spread = summarise(p["seconds"])
            algbw = p["bytes"] / median
            medians.append(median)
            points.append(CollectivePoint(
                collective=collective, bytes=p["bytes"], seconds=median, seconds_min=fastest, spread=spread,
                algorithm_bandwidth_bytes_per_s=algbw, bus_bandwidth_bytes_per_s=algbw * factor,
            ))  # fmt: skip
        fit = fit_latency_bandwidth([p["bytes"] for p in mine], medians, factor)
        fits.append(CollectiveFit(
            collective=collective, bus_factor=factor, latency_s=fit.latency_s,
            bus_bandwidth_bytes_per_s=fit.bus_bandwidth_bytes_per_s, max_relative_residual=fit.max_relative_residual,
            points=len(mine),
        ))  # fmt: skip
    sizes = message_sizes(config.max_bytes, world)
    report = CollectivesReport(
        settings=CollectivesSettings(
            mode="quick" if config.quick else "default",
            launcher=launcher,
            backend=raw["backend"],
            device=config.device,
            device_name=raw["device_name"],
            torch_version=raw["torch_version"],
            ranks=world,
            nodes=len(set(hosts)),
            ranks_per_node=per_node,
            min_bytes=sizes[0],
            max_bytes=sizes[-1],
            warmup_iterations=config.warmup,
            repeats=config.repeats,
        ),  # fmt: skip
        fits=fits,
        points=points,
        unsupported=dict(raw.get("unsupported", {})),
        elapsed_seconds=elapsed_s,
    )
    for name, why in report.unsupported.items():
        report.warnings.append(f"{name}: not run ({raw['backend']}: {why})")
    for f in fits:
        if f.bus_bandwidth_bytes_per_s is None:
            report.warnings.append(f"{f.collective}: the time did not grow with the size; no bandwidth fitted")
    noisy = [p for p in points if p.spread > NOISY_SPREAD]
    if noisy:
        report.warnings.append(
            f"{len(noisy)} of {len(points)} points vary by more than {NOISY_SPREAD:.0%} between repeats: other "
            "programs are using the CPUs or the link; rerun on a quiet machine for figures to keep"
        )
    if config.device == "cpu" and per_node > (os.cpu_count() or per_node):
        report.warnings.append(
            f"{per_node} processes share {os.cpu_count()} CPUs: the timings include waiting for a core"
        )
    return report
