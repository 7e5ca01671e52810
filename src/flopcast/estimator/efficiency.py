"""The efficiency model: how close each op class gets to its roofline, with a few fitted constants.

Physical picture (one device, one micro-batch):
* Weight matmuls and the attention core run on the matrix units at ``peak · η``. η is the achievable
  large-GEMM fraction of peak (``gemm_ceiling``) times a small-shape fall-off: tiles are partly empty and
  waves partly filled when a per-device GEMM dimension is small,
  ``η = ceiling / (1 + w½/(d/t) + w½/(b·s))``, with one half-efficiency width ``w½`` (elements) for the
  per-device model width d/t and for the tokens per micro-batch b·s (DESIGN §4: "η falls for small
  per-device shapes").
* Everything else (norms, softmax, activation functions, dropout, residual adds, the loss) is memory bound:
  its traffic is ``memory_passes`` × the bytes Korthikanti et al. 2022 count as stored activations
  (each stored byte is written in the forward pass, read in the backward pass, and its gradient written
  and read). Without fused attention the s × s scores go through memory too, 32 bytes per score element
  counted kernel by kernel (timing.SCORE_TRAFFIC_*), which is what makes unfused attention slow on long
  sequences. The passes are the same on every device, so a device with
  more FLOP/s per byte of bandwidth (H100 vs A100) or less bandwidth (A100-40GB vs 80GB) loses more to
  them: the roofline decides, not a per-hardware factor.
* Data-parallel gradient traffic overlaps the backward pass up to ``dp_overlap`` of its duration.
* A whole run loses ``idle_overhead`` of its time to evaluation, checkpoint writes, scheduling and
  restarts beyond the interruption model (reliability.py).

The achievable large-GEMM fraction is a property of the chip and its software stack, so it is the one
constant allowed to depend on the hardware *family* (HARDWARE_FAMILY): Ampere (A100 40/80GB, one die) is
the base; Hopper (H100/H200, the same GH100 die) and Google TPUs (MXU + XLA) each get one fitted factor on
it. Families without calibration runs (Volta, CPUs, user hardware) use the base ceiling and a wider
P10–P90 band (uncertainty.py).

The fitted values live in ``flopcast/data/efficiency_fit.json`` with the runs and date they were fitted
on; ``python -m flopcast.estimator.fit`` refits them from every shipped run
(``flopcast/data/published_runs.csv`` and ``holdout_runs.csv``).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import numpy as np

FIT_FILE = "efficiency_fit.json"

# Hardware families: profiles that share a chip (and so a GEMM ceiling). Sources: NVIDIA H200 product page
# and shared/data/hardware_specs.csv ("H200: same compute as H100 SXM"); A100 40GB/80GB are the same GA100
# die (NVIDIA A100 datasheet). Ids not listed have no family of their own.
HARDWARE_FAMILY = {
    "a100-40gb": "nvidia-ampere",
    "a100-80gb": "nvidia-ampere",
    "h100-80gb": "nvidia-hopper",
    "h200-141gb": "nvidia-hopper",
    "v100-16gb": "nvidia-volta",
    "v100-32gb": "nvidia-volta",
    # Google TPUs: systolic matrix units (MXU) programmed through the XLA compiler (Jouppi et al. 2023).
    "tpu-v3": "google-tpu",
    "tpu-v4": "google-tpu",
    "tpu-v5e": "google-tpu",
    "tpu-v5p": "google-tpu",
}
BASE_FAMILY = "nvidia-ampere"  # the ceiling ``gemm_ceiling`` itself; other families scale it
FITTED_NAMES = ("gemm_ceiling", "gemm_half_width", "memory_passes", "dp_overlap", "idle_overhead")


# CUDA compute capability of each NVIDIA family (NVIDIA CUDA C Programming Guide, "Compute Capabilities":
# Volta 7.0, Ampere A100 8.0, Hopper 9.0). FlashAttention-2 needs 8.0 or newer (its README, "Requirements":
# "Ampere, Ada, or Hopper GPUs"); FlashAttention 1 ran on Turing (7.5) and Ampere, never on Volta.
COMPUTE_CAPABILITY = {"nvidia-volta": 7.0, "nvidia-ampere": 8.0, "nvidia-hopper": 9.0}
FUSED_ATTENTION_MIN_COMPUTE_CAPABILITY = 8.0


def fused_attention_supported(profile) -> bool:
    """Whether FlashAttention-style fused attention runs on this device.

    NVIDIA families: by compute capability (COMPUTE_CAPABILITY ≥ 8.0: A100/H100/H200 yes, V100 no). Other
    GPUs: sm80+ is where bf16 tensor cores arrived, so a GPU that publishes a bf16 peak qualifies (V100,
    sm70, publishes none). TPUs fuse attention in XLA/Pallas kernels. CPUs and other devices materialise
    the scores.
    """
    if profile.kind == "tpu":
        return True
    capability = COMPUTE_CAPABILITY.get(HARDWARE_FAMILY.get(profile.id, ""))
    if capability is not None:
        return capability >= FUSED_ATTENTION_MIN_COMPUTE_CAPABILITY
    if profile.kind in ("gpu", "accelerator"):
        return profile.peak_flops_per_s.bf16 is not None
    return False


class EfficiencyParams(NamedTuple):
    """Fitted constants of the efficiency model (see the module docstring for their meaning)."""

    gemm_ceiling: float = 0.8
    family_ceiling_factor: dict[str, float] = {}  # noqa: RUF012 (never mutated)
    calibrated_families: tuple[str, ...] = ()
    gemm_half_width: float = 256.0
    memory_passes: float = 3.0
    dp_overlap: float = 0.5
    idle_overhead: float = 0.0
    # P10/P90 of log(reported / predicted) on runs left out of the fit; wider for uncalibrated hardware.
    log_ratio_p10: float = -0.2
    log_ratio_p90: float = 0.2
    log_ratio_p10_uncalibrated: float = -0.4
    log_ratio_p90_uncalibrated: float = 0.4
    fitted_on: str = "defaults (not fitted)"
    fitted_date: str = ""
    extra: dict = {}  # noqa: RUF012 (never mutated): what the fit file holds beyond the constants

    @classmethod
    def load(cls) -> EfficiencyParams:
        return _load_default()

    @classmethod
    def from_dict(cls, doc: dict) -> EfficiencyParams:
        known = {k: v for k, v in doc.items() if k in cls._fields and k != "extra"}
        if "calibrated_families" in known:
            known["calibrated_families"] = tuple(known["calibrated_families"])
        extra = {k: v for k, v in doc.items() if k not in cls._fields}
        return cls(**known, extra=extra)

    def to_dict(self) -> dict:
        doc = {k: getattr(self, k) for k in self._fields if k != "extra"}
        doc["calibrated_families"] = list(self.calibrated_families)
        doc.update(self.extra)
        return doc

    def with_values(self, **values) -> EfficiencyParams:
        return self._replace(**values)

    def gemm_ceiling_for(self, profile) -> tuple[float, bool]:
        """(large-GEMM fraction of peak, whether it rests on calibration runs of this family)."""
        family = HARDWARE_FAMILY.get(profile.id)
        if family is not None and family in self.family_ceiling_factor:
            return min(1.0, self.gemm_ceiling * self.family_ceiling_factor[family]), True
        if family is not None and family in self.calibrated_families:
            return self.gemm_ceiling, True
        calibration = getattr(profile, "calibration", None)
        if family is None and calibration is not None and calibration.matmul_efficiency is not None:
            # A user's own measured value (e.g. `flopcast bench --save-profile`) for hardware we never saw.
            return float(calibration.matmul_efficiency), False
        return self.gemm_ceiling, False


@lru_cache(maxsize=1)
def _load_default() -> EfficiencyParams:
    try:
        text = (Path(__file__).resolve().parent.parent / "data" / FIT_FILE).read_text(encoding="utf-8")
    except OSError:
        return EfficiencyParams()
    return EfficiencyParams.from_dict(json.loads(text))


def gemm_efficiency(
    ceiling: np.ndarray, width_per_device: np.ndarray, tokens_per_micro_batch: np.ndarray, half_width: float
) -> np.ndarray:
    """``η = ceiling / (1 + w½/(d/t) + w½/(b·s))``: the large-GEMM fraction, falling for small shapes."""
    return ceiling / (1.0 + half_width / width_per_device + half_width / tokens_per_micro_batch)
