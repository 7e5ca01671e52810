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
* Data-parallel gradient traffic overlaps the backward pass up to ``dp_overlap`` of its duration (pinned
  at 1, not fitted), except the last gradient bucket, which is always exposed (timing.py).
* A whole run's time beyond steps × step time is named, pinned parts in reliability.py (interruptions,
  checkpoint writes, evaluation, data stalls): nothing fitted hides there.

The achievable large-GEMM fraction is a property of the chip and its software stack, so it is the one
constant allowed to depend on the hardware *family* — the profile's ``family`` field (hardware
profiles carry it with its source, so a user's own profile of a known chip shares its calibration):
Ampere (A100 40/80GB, one die) is the base; each other family with calibration runs (Hopper: H100/H200,
the same GH100 die; Volta; Google TPUs: MXU + XLA) gets one fitted factor on it. Families without
calibration runs (CPUs, user hardware, a profile without a family) use the base ceiling — or the
profile's own measured ``calibration.matmul_efficiency`` — and a wider P10–P90 band (uncertainty.py).

The fitted values live in ``flopcast/data/efficiency_fit.json`` with the runs and date they were fitted
on; ``scripts/refit_efficiency.py`` refits them with the fit of calibration/fit.py on the shipped runs
(``flopcast/data/published_runs.csv`` and ``holdout_runs.csv``) except the frozen held-out source families
(``flopcast/data/holdout_families.json``), which are never fitted.
The file ships with flopcast: when it is missing or unreadable, :meth:`EfficiencyParams.load` raises
:class:`~flopcast.errors.BrokenInstall` rather than estimate with made-up constants.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import numpy as np

from flopcast.errors import BrokenInstall

FIT_FILE = "efficiency_fit.json"
BASE_FAMILY = "nvidia-ampere"  # the ceiling ``gemm_ceiling`` itself; other families scale it
FITTED_NAMES = ("gemm_ceiling", "gemm_half_width", "memory_passes")  # fitted (with the family factors)
PINNED_NAMES = ("dp_overlap",)  # stored in the fit file, never fitted (sources where they are used)


# FlashAttention-2 needs CUDA compute capability 8.0 or newer (its README, "Requirements": "Ampere, Ada, or
# Hopper GPUs"); FlashAttention 1 ran on Turing (7.5) and Ampere, never on Volta (7.0). A profile's
# ``compute_capability`` comes from the NVIDIA CUDA C++ Programming Guide, "Compute Capabilities".
FUSED_ATTENTION_MIN_COMPUTE_CAPABILITY = 8.0


# The fused attention kernel's fraction of the large-GEMM efficiency, per hardware family (1 where not listed).
# Hopper: FlashAttention-3 / cuDNN fused attention reach ~650 TFLOP/s forward and ~520 backward in bf16 at head
# dim 128 on an H100 SXM5 (Shah et al. 2024, "FlashAttention-3", Figs. 5-6; FLOPs as executed, causal halved),
# ≈ 0.55 of the 989 TFLOP/s peak over a training step's 1 : 2.5 forward : backward FLOPs, against ≈ 0.74 for
# Hopper's large GEMMs (this fit) — a ratio of 0.75. Ampere: FlashAttention-2 reaches 0.62-0.73 of the A100's
# peak forward and backward (Dao 2023, "FlashAttention-2", Sec. 4.1), as its GEMMs do: 1.
ATTENTION_EFFICIENCY_RATIO_BY_FAMILY = {"nvidia-hopper": 0.75}


def attention_efficiency_ratio(profile) -> float:
    """The fused attention kernel's efficiency as a fraction of the GEMM efficiency on ``profile``'s family."""
    return ATTENTION_EFFICIENCY_RATIO_BY_FAMILY.get(getattr(profile, "family", None), 1.0)


def fused_attention_supported(profile) -> bool:
    """Whether FlashAttention-style fused attention runs on this device.

    NVIDIA GPUs: by the profile's ``compute_capability`` (≥ 8.0: A100/H100/H200 yes, V100 no). Other
    GPUs: sm80+ is where bf16 tensor cores arrived, so a GPU that publishes a bf16 peak qualifies (V100,
    sm70, publishes none). TPUs fuse attention in XLA/Pallas kernels. CPUs: PyTorch (2.2 and later) runs
    ``scaled_dot_product_attention`` on a CPU as a FlashAttention-style kernel
    (``aten::_scaled_dot_product_flash_attention_for_cpu``, which saves only the output and the
    log-sum-exp: ``flopcast bench --verify-train`` measures it). Other devices materialise the scores.
    """
    if profile.kind in ("tpu", "cpu"):
        return True
    capability = getattr(profile, "compute_capability", None)
    if capability is not None:
        return capability >= FUSED_ATTENTION_MIN_COMPUTE_CAPABILITY
    if profile.kind in ("gpu", "accelerator"):
        return profile.peak_flops_per_s.bf16 is not None
    return False


class EfficiencyParams(NamedTuple):
    """Fitted constants of the efficiency model (see the module docstring for their meaning).

    No defaults: every value comes from the fit file (:meth:`load`) or from the fit itself."""

    gemm_ceiling: float
    family_ceiling_factor: dict[str, float]
    calibrated_families: tuple[str, ...]
    gemm_half_width: float
    memory_passes: float
    dp_overlap: float
    # Quantiles of log(reported / predicted time) on runs left out of the fit (split-conformal over the
    # fit families, each predicted by a fit without its family); wider for uncalibrated hardware.
    log_ratio_p10: float
    log_ratio_p80: float
    log_ratio_p90: float
    log_ratio_p10_uncalibrated: float
    log_ratio_p80_uncalibrated: float
    log_ratio_p90_uncalibrated: float
    # The largest device count and parameter count of the fitted runs: beyond them a range widens
    # (uncertainty.py) and a report warns.
    calibrated_max_devices: float
    calibrated_max_params: float
    fitted_on: str
    fitted_date: str
    extra: dict = {}  # noqa: RUF012 (never mutated): what the fit file holds beyond the constants

    @classmethod
    def load(cls) -> EfficiencyParams:
        """The shipped fit (``fit_path()``); raises :class:`BrokenInstall` when it is missing or unreadable."""
        return _load_fit(fit_path())

    @classmethod
    def from_dict(cls, doc: dict) -> EfficiencyParams:
        """From a fit document; raises KeyError naming the constants it lacks."""
        missing = [k for k in cls._fields if k != "extra" and k not in doc]
        if missing:
            raise KeyError(", ".join(missing))
        known = {k: v for k, v in doc.items() if k in cls._fields and k != "extra"}
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
        """(large-GEMM fraction of peak, whether it rests on calibration runs of this family).

        A profile's own measured ``calibration.matmul_efficiency`` (``flopcast calibrate``, ``bench``) wins: it was
        fitted on the user's own machine. Otherwise the family is the profile's ``family`` field; one with no
        calibration runs (or none at all) gets the base ceiling. A measured value keeps the uncalibrated band
        (False): the shipped residuals say nothing about the user's runs."""
        calibration = getattr(profile, "calibration", None)
        if calibration is not None and calibration.matmul_efficiency is not None:
            return float(calibration.matmul_efficiency), False
        family = getattr(profile, "family", None)
        if family is not None and family in self.family_ceiling_factor:
            return min(1.0, self.gemm_ceiling * self.family_ceiling_factor[family]), True
        if family is not None and family in self.calibrated_families:
            return self.gemm_ceiling, True
        return self.gemm_ceiling, False


def fit_path() -> Path:
    """Where the shipped fit lives: ``flopcast/data/efficiency_fit.json``."""
    return Path(__file__).resolve().parent.parent / "data" / FIT_FILE


@lru_cache(maxsize=4)
def _load_fit(path: Path) -> EfficiencyParams:
    """Read and check one fit file (cached per path; a failure is not cached)."""
    hint = "reinstall flopcast: the file ships with it"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BrokenInstall(f"the efficiency fit file {path} is missing", hint=hint) from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc).splitlines()[0]
        raise BrokenInstall(f"cannot read the efficiency fit file {path}: {reason}", hint=hint) from None
    if not isinstance(doc, dict):
        raise BrokenInstall(f"the efficiency fit file {path} holds no fit (not a JSON object)", hint=hint)
    try:
        return EfficiencyParams.from_dict(doc)
    except KeyError as exc:
        raise BrokenInstall(f"the efficiency fit file {path} lacks {exc.args[0]}", hint=hint) from None
    except (TypeError, ValueError) as exc:
        raise BrokenInstall(f"the efficiency fit file {path} is malformed: {exc}", hint=hint) from None


def gemm_efficiency(
    ceiling: np.ndarray, width_per_device: np.ndarray, tokens_per_micro_batch: np.ndarray, half_width: float
) -> np.ndarray:
    """``η = ceiling / (1 + w½/(d/t) + w½/(b·s))``: the large-GEMM fraction, falling for small shapes."""
    return ceiling / (1.0 + half_width / width_per_device + half_width / tokens_per_micro_batch)
