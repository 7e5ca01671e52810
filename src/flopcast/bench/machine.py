"""What this machine is: CPU model and cores, memory, last-level cache, and the BLAS numpy calls.

Linux facts come from ``/proc/cpuinfo``, ``/proc/meminfo`` and ``/sys/devices/system/cpu``; ``lscpu`` is the
second source for the cache; portable ``os``/``platform`` calls are the last resort. The BLAS library,
version and thread pool come from threadpoolctl (the only portable way to read and limit them).
"""

from __future__ import annotations

import contextlib
import os
import platform
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

from flopcast.reports.bench import MachineInfo

# Used only when neither /sys nor lscpu reports a cache: 32 MiB is the L3 of one AMD Zen 2–4 CCD pair and
# of mid-range Intel Xeon parts, so sizing X at several times this keeps the bandwidth points out of cache on
# most machines. Source: AMD EPYC 7003/9004 and Intel Xeon Scalable product briefs (L3 per CCD / per socket).
DEFAULT_LAST_LEVEL_CACHE_BYTES = 32 * 2**20
LSCPU_TIMEOUT_SECONDS = 2.0

_SYS_CPU = Path("/sys/devices/system/cpu")
_PROC_CPUINFO = Path("/proc/cpuinfo")
_PROC_MEMINFO = Path("/proc/meminfo")
_BINARY_SUFFIX = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30}
_VENDORS = {"GenuineIntel": "Intel", "AuthenticAMD": "AMD"}


def _read(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return None


def _cpuinfo_field(name: str) -> str | None:
    text = _read(_PROC_CPUINFO) or ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() == name and value.strip():
            return value.strip()
    return None


def cpu_model() -> str:
    """``model name`` from /proc/cpuinfo (x86), ``Model``/``Hardware`` (ARM), else platform.processor()."""
    for field in ("model name", "model", "hardware", "cpu model"):
        value = _cpuinfo_field(field)
        if value and not value.isdigit():
            return value
    return platform.processor() or platform.machine() or "unknown CPU"


def cpu_vendor() -> str | None:
    vendor = _cpuinfo_field("vendor_id")
    return _VENDORS.get(vendor, vendor) if vendor else None


def logical_cores() -> int:
    return os.cpu_count() or 1


def usable_cores() -> int:
    """CPUs this process may run on (affinity / container limits), else the logical count."""
    with contextlib.suppress(AttributeError, OSError):
        return len(os.sched_getaffinity(0))
    return logical_cores()


def physical_cores() -> int | None:
    """Distinct (package, core) pairs in /sys topology; None where that is not available."""
    pairs = set()
    for topo in _SYS_CPU.glob("cpu[0-9]*/topology"):
        package, core = _read(topo / "physical_package_id"), _read(topo / "core_id")
        if package is None or core is None:
            return None
        pairs.add((package.strip(), core.strip()))
    return len(pairs) or None


def _meminfo_bytes(key: str) -> float | None:
    text = _read(_PROC_MEMINFO) or ""
    match = re.search(rf"^{key}:\s+(\d+)\s*kB", text, flags=re.MULTILINE)
    return float(match.group(1)) * 1024 if match else None


def total_memory_bytes() -> float | None:
    value = _meminfo_bytes("MemTotal")
    if value is None:
        with contextlib.suppress(ValueError, OSError, AttributeError):
            value = float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    return value


def available_memory_bytes() -> float | None:
    """Memory a new allocation can get without swapping (``MemAvailable``), else free pages."""
    value = _meminfo_bytes("MemAvailable")
    if value is None:
        with contextlib.suppress(ValueError, OSError, AttributeError):
            value = float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES"))
    return value


def parse_cache_size(text: str) -> int | None:
    """``'32768K'`` → 33554432; ``'1M'`` → 1048576; ``'512 KiB'`` → 524288; ``'33554432'`` → 33554432."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMG]?)(?:i?B)?\s*", text or "", flags=re.IGNORECASE)
    if not match:
        return None
    return int(float(match.group(1)) * _BINARY_SUFFIX[match.group(2).upper()])


def _sys_last_level_cache() -> int | None:
    best: tuple[int, int] | None = None
    for index in (_SYS_CPU / "cpu0" / "cache").glob("index[0-9]*"):
        kind, level, size = (_read(index / n) for n in ("type", "level", "size"))
        if kind is None or level is None or size is None or kind.strip() == "Instruction":
            continue
        parsed = parse_cache_size(size)
        if parsed and level.strip().isdigit() and (best is None or int(level) >= best[0]):
            best = (int(level), parsed)
    return best[1] if best else None


def _lscpu_last_level_cache() -> int | None:
    try:
        out = subprocess.run(
            ["lscpu", "-B"], capture_output=True, text=True, timeout=LSCPU_TIMEOUT_SECONDS, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for level in ("L3", "L2"):
        match = re.search(rf"^{level} cache:\s*(\d+)", out, flags=re.MULTILINE)
        if match:
            return int(match.group(1))
    return None


def last_level_cache() -> tuple[int, str]:
    """(bytes, where the figure came from): /sys, then ``lscpu -B``, then a named default."""
    value = _sys_last_level_cache()
    if value:
        return value, "/sys/devices/system/cpu/cpu0/cache"
    value = _lscpu_last_level_cache()
    if value:
        return value, "lscpu"
    return DEFAULT_LAST_LEVEL_CACHE_BYTES, "default (not reported by /sys or lscpu)"


_PROC_STAT = Path("/proc/stat")


def cpu_time_snapshot() -> tuple[float, float, float] | None:
    """(seconds all CPUs were busy, seconds all CPUs existed, CPU seconds this process used) from
    /proc/stat and os.times(); None where /proc/stat is not available."""
    text = _read(_PROC_STAT)
    if not text or not text.startswith("cpu "):
        return None
    try:
        fields = [float(v) for v in text.splitlines()[0].split()[1:9]]
        ticks = float(os.sysconf("SC_CLK_TCK"))
    except (ValueError, OSError, AttributeError):
        return None
    user, nice, system, idle, iowait, irq, softirq, steal = fields
    # niced programs count too: with the kernel's autogroup scheduling (the default on desktop and server
    # distributions) a niced program in another session still takes its share of the CPU
    busy = user + nice + system + irq + softirq + steal
    mine = os.times()
    return busy / ticks, (busy + idle + iowait) / ticks, mine.user + mine.system


def other_cpu_share(start: tuple[float, float, float] | None, end: tuple[float, float, float] | None):
    """Share of all CPU time between two snapshots used by *other* programs (0 = the machine was ours)."""
    if start is None or end is None or end[1] <= start[1]:
        return None
    others = (end[0] - start[0]) - (end[2] - start[2])
    return min(1.0, max(0.0, others / (end[1] - start[1])))


def blas_pools() -> list[dict]:
    """threadpoolctl's description of every BLAS thread pool loaded in this process."""
    from threadpoolctl import threadpool_info

    return [pool for pool in threadpool_info() if pool.get("user_api") == "blas"]


@contextlib.contextmanager
def blas_threads(threads: int | None) -> Iterator[None]:
    """Limit the BLAS thread pool to ``threads`` (None = leave it as it is) for the duration of the block."""
    if threads is None:
        yield
        return
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=threads, user_api="blas"):
        yield


def describe_cpu(threads_requested: int | None) -> MachineInfo:
    """Call inside :func:`blas_threads` so the reported thread count is the one in force."""
    import sys

    import numpy as np

    pools = blas_pools()
    pool = pools[0] if pools else {}
    llc, llc_source = last_level_cache()
    return MachineInfo(
        device="cpu",
        name=cpu_model(),
        vendor=cpu_vendor(),
        cores_logical=logical_cores(),
        cores_usable=usable_cores(),
        cores_physical=physical_cores(),
        threads_requested=threads_requested,
        threads=pool.get("num_threads"),
        blas_library=pool.get("internal_api") or ("none found" if not pools else None),
        blas_version=pool.get("version"),
        blas_threading_layer=pool.get("threading_layer"),
        memory_total_bytes=total_memory_bytes(),
        memory_available_bytes=available_memory_bytes(),
        cache_bytes=float(llc),
        cache_source=f"last-level cache from {llc_source}",
        numpy_version=np.__version__,
        python_version=sys.version.split()[0],
        platform=platform.platform(terse=True),
    )
