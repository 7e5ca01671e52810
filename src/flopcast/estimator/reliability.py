"""Interruptions and other lost time: how much longer a whole run takes than steps × step time.

Rate: Llama 3 (Dubey et al. 2024, Sec. 3.3.4, Table 5) saw 466 job interruptions in a 54-day snapshot of
pre-training on 16,384 H100 GPUs: 466 / (54 · 16,384) ≈ 5.3e-4 interruptions per device-day. A job's
interruption rate grows with its device count.

Cost of each interruption: the restart (re-scheduling, loading the checkpoint, warming up) plus, on
average, half a checkpoint interval of work that is recomputed. Llama 3 reports "higher than 90% effective
training time" over those 54 days, so 466 interruptions cost at most 10% × 54 days: ≤ 1,001 s each. We
take a 10-minute restart and a checkpoint every 800 s, whose sum (600 + 400 s) meets that bound.

The rest of a whole run beyond steps × step time is named, pinned parts (DESIGN §4: "checkpoint writes and
restarts are named parts of wall-clock, not a fitted overhead"), each a fraction of the training time:

* checkpoint writes: a blocking write of ``CHECKPOINT_WRITE_SECONDS`` every checkpoint interval. 32 s is the
  write for which the 800 s interval is the Young/Daly optimum ``sqrt(2 · write · MTBF)`` at Llama 3's
  failure rate (MTBF of the 16,384-GPU job = 1 / (rate · devices) ≈ 10,000 s); BLOOM's full checkpoint
  with optimizer states is 2.3 TB (BigScience, "BLOOM training" notes), tens of seconds on a parallel
  file system at tens of GB/s.
* evaluation: Megatron-LM's defaults (``megatron/training/arguments.py``: ``--eval-interval 1000``,
  ``--eval-iters 100``) run 100 forward-only iterations every 1,000 steps; a forward pass is 2N of the 6N
  FLOPs per token of a training step (PaLM App. B), so 100/1000 × 1/3 ≈ 3.3%.
* data stalls: pre-tokenised, memory-mapped token files (Megatron's indexed dataset) need no decoding on
  the critical path, unlike the image pipelines where Mohan et al. 2021 ("Analyzing and Mitigating Data
  Stalls in DNN Training", VLDB) measured stalls; 1% is an allowance for file-system hiccups, an
  assumption rather than a measurement.

    effective fraction  = 1 − rate · devices · (restart + interval/2)
    wall-clock          = steps × step time / effective fraction × (1 + checkpoint + evaluation + data stalls)

``step_seconds`` is therefore what one optimizer step of the user's job takes; everything else a whole run
spends is in wall-clock and named here. Together with the interruptions this is 8–9% of a large job's time,
in line with Llama 3's "higher than 90% effective training time" (Dubey et al. 2024, Sec. 3.3.4).
"""

from __future__ import annotations

import numpy as np

from flopcast.units import SECONDS_PER_DAY

LLAMA3_INTERRUPTIONS = 466  # Dubey et al. 2024, Sec. 3.3.4
LLAMA3_SNAPSHOT_DAYS = 54
LLAMA3_GPUS = 16_384
INTERRUPTIONS_PER_DEVICE_SECOND = LLAMA3_INTERRUPTIONS / (LLAMA3_SNAPSHOT_DAYS * SECONDS_PER_DAY * LLAMA3_GPUS)
RESTART_SECONDS = 600.0
CHECKPOINT_INTERVAL_SECONDS = 800.0
CHECKPOINT_WRITE_SECONDS = 32.0  # Young/Daly: sqrt(2 · 32 s · 10,000 s) ≈ 800 s (see above)
CHECKPOINT_WRITE_FRACTION = CHECKPOINT_WRITE_SECONDS / CHECKPOINT_INTERVAL_SECONDS
EVAL_ITERS = 100  # Megatron-LM --eval-iters default
EVAL_INTERVAL_STEPS = 1000  # Megatron-LM --eval-interval default
FORWARD_SHARE_OF_STEP = 1.0 / 3.0  # forward 2N of the 6N FLOPs per token (PaLM App. B)
EVALUATION_FRACTION = EVAL_ITERS / EVAL_INTERVAL_STEPS * FORWARD_SHARE_OF_STEP
DATA_STALL_FRACTION = 0.01  # an allowance (assumption), see the module docstring
OVERHEAD_FRACTIONS = {
    "checkpoint_writes": CHECKPOINT_WRITE_FRACTION,
    "evaluation": EVALUATION_FRACTION,
    "data_stalls": DATA_STALL_FRACTION,
}
OVERHEAD_FRACTION = sum(OVERHEAD_FRACTIONS.values())
# A job so large that it would spend most of its time restarting is capped here (and flagged).
MIN_EFFECTIVE_FRACTION = 0.1


def lost_seconds_per_interruption(
    restart_seconds: float = RESTART_SECONDS, checkpoint_interval_seconds: float = CHECKPOINT_INTERVAL_SECONDS
) -> float:
    """Restart time plus, on average, half a checkpoint interval of recomputed work."""
    return restart_seconds + 0.5 * checkpoint_interval_seconds


def effective_fraction(devices: np.ndarray, lost_seconds: float | None = None) -> np.ndarray:
    """Fraction of wall-clock time spent making progress, given the interruption rate per device."""
    lost = lost_seconds_per_interruption() if lost_seconds is None else lost_seconds
    return np.maximum(1.0 - INTERRUPTIONS_PER_DEVICE_SECOND * devices * lost, MIN_EFFECTIVE_FRACTION)


def wall_clock_seconds(training_seconds: np.ndarray, devices: np.ndarray) -> np.ndarray:
    """Steps × step time stretched by interruptions and the named overheads (OVERHEAD_FRACTIONS)."""
    return training_seconds / effective_fraction(devices) * (1.0 + OVERHEAD_FRACTION)
