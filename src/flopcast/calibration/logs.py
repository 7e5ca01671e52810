"""Training logs as measured steps: the step lines of torchtitan, Megatron-LM / NeMo and DeepSpeed.

A log carries no model or layout, so the caller gives them (``flopcast calibrate LOG --model ... --tp ...``)
and they apply to every step line. The first ``skip_steps`` step lines are warm-up (compilation, allocator
growth, the first all-reduce buckets) and are dropped; the median of the rest is the measurement.

Formats (each framework's own step line, as its logging code writes it):

* torchtitan (``train.py``'s metrics line): ``step: N  loss: L  memory: X GiB(P%)  tps: T  tflops: F  mfu: M%``.
  ``tps`` is tokens per second per device, so the job's rate is tps × devices; ``memory`` is the peak
  reserved memory per device in GiB (2^30 bytes).
* Megatron-LM / NeMo (``training_log``): ``iteration N/ M | ... | elapsed time per iteration (ms): X | ...``,
  optionally ``global batch size: B`` and ``throughput per GPU (TFLOP/s/GPU): Y``: the step time is X ms.
* DeepSpeed (``ThroughputTimer``): ``epoch=E/micro_step=S/global_step=N, RunningAvgSamplesPerSec=R,
  CurrSamplesPerSec=C, ...`` (or ``samples/sec=C``): C samples (sequences) per second of the whole job, so
  tokens per second = C × the sequence length.
"""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass
from pathlib import Path

from flopcast.errors import InvalidValue, opt

DEFAULT_SKIP_STEPS = 3  # warm-up step lines dropped before the median (compilation, allocator, first buckets)
MAX_LOG_BYTES = 200_000_000  # a long run's log is tens of MB; a file this big is not one
GIB = 2**30  # bytes: torchtitan prints memory in GiB

_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # torchtitan colours its metrics line
_NUM = r"([0-9][0-9,]*\.?[0-9]*(?:[eE][-+]?[0-9]+)?)"
TORCHTITAN = re.compile(r"\bstep:\s*(\d+)\b.*?\btps:\s*" + _NUM)
TORCHTITAN_MEMORY = re.compile(r"\bmemory:\s*" + _NUM + r"\s*GiB")
MEGATRON = re.compile(r"\biteration\s+(\d+)\s*/\s*\d+\s*\|.*?elapsed time per iteration \(ms\):\s*" + _NUM)
MEGATRON_BATCH = re.compile(r"global batch size:\s*(\d+)")
DEEPSPEED = re.compile(r"\b(?:global_step|step)=(\d+)\b.*?\b(?:CurrSamplesPerSec|samples/sec)=\s*" + _NUM)
FORMATS = ("torchtitan", "megatron", "deepspeed")


@dataclass(frozen=True)
class LogSteps:
    """What a log measured: its format, the kept steps, and the median in the target's unit."""

    format: str
    target: str  # step_seconds | tokens_per_second_per_device | samples_per_second
    steps: list[int]
    values: list[float]
    skipped: int
    peak_memory_bytes: float | None = None
    global_batch: int | None = None  # Megatron prints it

    @property
    def median(self) -> float:
        return statistics.median(self.values)


def _float(text: str) -> float:
    return float(text.replace(",", ""))


def _parse(lines: list[str]) -> tuple[str, list[tuple[int, float]], list[float], int | None] | None:
    """(format, [(step, value)], memories, global batch) of the first format with step lines; None if none has."""
    for name, pattern in (("torchtitan", TORCHTITAN), ("megatron", MEGATRON), ("deepspeed", DEEPSPEED)):
        found, memory, batch = [], [], None
        for line in lines:
            m = pattern.search(line)
            if not m:
                continue
            found.append((int(m.group(1)), _float(m.group(2))))
            if name == "torchtitan" and (mm := TORCHTITAN_MEMORY.search(line)):
                memory.append(_float(mm.group(1)) * GIB)
            if name == "megatron" and (mb := MEGATRON_BATCH.search(line)):
                batch = int(mb.group(1))
        if found:
            return name, found, memory, batch
    return None


def read_log(path: Path, skip_steps: int = DEFAULT_SKIP_STEPS) -> LogSteps:
    """The step lines of a training log; InvalidValue when none of FORMATS matches or no step is left."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_LOG_BYTES + 1)
    except (FileNotFoundError, IsADirectoryError):
        raise InvalidValue(
            f"{path}: no such file", hint="give a training log or a CSV/JSON of measured steps"
        ) from None
    except OSError as exc:
        raise InvalidValue(f"{path}: cannot read it: {exc.strerror or exc}") from None
    if len(raw) > MAX_LOG_BYTES:
        raise InvalidValue(f"{path}: larger than {MAX_LOG_BYTES:,} bytes", hint="give the first part of the log")
    lines = [_ANSI.sub("", line) for line in raw.decode("utf-8", errors="replace").splitlines()]
    parsed = _parse(lines)
    if parsed is None:
        raise InvalidValue(
            f"{path}: no step lines found (tried the {', '.join(FORMATS)} formats)",
            hint="give a log with the framework's step lines, or a CSV of measured steps",
        )
    name, found, memory, batch = parsed
    if skip_steps < 0:
        raise InvalidValue(f"{opt('skip_steps')} must be 0 or more, got {skip_steps}")
    kept = found[skip_steps:]
    if not kept:
        raise InvalidValue(
            f"{path}: {len(found)} {name} step line(s), all skipped as warm-up ({opt('skip_steps')} {skip_steps})",
            hint=f"log more steps, or lower {opt('skip_steps')}",
        )
    target = {"torchtitan": "tokens_per_second_per_device", "megatron": "step_seconds",
              "deepspeed": "samples_per_second"}[name]  # fmt: skip
    values = [v / 1000.0 if name == "megatron" else v for _, v in kept]  # Megatron prints milliseconds
    if not all(v > 0 for v in values):
        raise InvalidValue(f"{path}: a {name} step line has a throughput or time of 0", hint="drop those steps")
    return LogSteps(
        format=name,
        target=target,
        steps=[s for s, _ in kept],
        values=values,
        skipped=len(found) - len(kept),
        peak_memory_bytes=max(memory[skip_steps:] or memory) if memory else None,
        global_batch=batch,
    )


def log_row(path: Path, steps: LogSteps, *, devices: int | None, seq_len: int) -> dict:
    """The measured-steps row (calibration.measured columns) of a log's median: its target in the row's units."""
    row: dict[str, str] = {
        "id": Path(path).name,
        "source": f"{path}: median of {len(steps.values)} {steps.format} steps",
    }
    if steps.target == "step_seconds":
        row["step_seconds"] = repr(steps.median)
    elif steps.target == "tokens_per_second_per_device":
        if devices is None:
            raise InvalidValue(f"{path}: torchtitan's tps is per device, so the job's rate needs {opt('devices')}")
        row["tokens_per_second"] = repr(steps.median * devices)
    else:
        row["tokens_per_second"] = repr(steps.median * seq_len)
    if steps.peak_memory_bytes is not None:
        row["peak_memory_gb"] = repr(steps.peak_memory_bytes / 1e9)
    if steps.global_batch is not None:
        row["global_batch"] = str(steps.global_batch)
    return row
