"""`bench --save-profile NAME`: this machine as a hardware profile, in the shipped schema.

The profile goes to the user profile dir (:func:`flopcast.hardware.user_profiles_dir`, which honours
``$FLOPCAST_CONFIG_DIR``), so ``flopcast estimate --hardware NAME`` and ``flopcast hardware show NAME`` find
it. Peaks are the fitted sustained peaks per dtype, the bandwidth is the fitted bandwidth, the memory is the
machine's total RAM (CPU) or device memory (GPU). The file is validated with
:func:`flopcast.hardware.profile_problems` before it replaces anything, and written atomically.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
from pathlib import Path

import yaml

from flopcast._version import __version__
from flopcast.bench.plan import PROFILE_DTYPE_KEY
from flopcast.errors import ConflictingOptions, InvalidProfile, InvalidValue, RuntimeFailure, opt
from flopcast.hardware import (
    _ID_PATTERN,  # the schema's id rule, reused so the check here and the validation agree
    PROFILE_SUFFIXES,
    HardwareProfile,
    load_profile,
    profile_problems,
    shipped_profiles_dir,
    user_profiles_dir,
)
from flopcast.reports.bench import BenchReport

# The hardware family a measured profile declares: one no published run calibrates (see build_profile).
LOCAL_FAMILY_CPU = "local-cpu"
LOCAL_FAMILY_GPU = "local-gpu"


def shipped_names() -> set[str]:
    """Ids and aliases of the profiles shipped with flopcast."""
    names: set[str] = set()
    directory = shipped_profiles_dir()
    if not directory.is_dir():
        return names
    for path in sorted(directory.iterdir()):
        if path.suffix not in PROFILE_SUFFIXES:
            continue
        names.add(path.stem.lower())
        with contextlib.suppress(InvalidProfile):
            profile = load_profile(path)
            names.add(profile.id)
            names.update(profile.aliases)
    return names


def profile_path(name: str) -> Path:
    folder = user_profiles_dir()
    if folder is None:  # HOME unset and a uid without a passwd entry (e.g. `docker run --user 4242`)
        raise InvalidValue(
            f"--save-profile {name}: there is no user config dir (HOME is unset and this uid has no home)",
            hint="set FLOPCAST_CONFIG_DIR (or HOME) to a writable directory",
        )
    return folder / f"{name}.yaml"


def check_profile_target(name: str, force: bool) -> Path:
    """Refuse, before any measuring, a NAME that cannot or must not be written; return the file path."""
    if not re.fullmatch(_ID_PATTERN, name) or len(name) > 64:
        hint = f"try {re.sub(r'[^a-z0-9._-]+', '-', name.lower()).strip('-._') or 'my-machine'!r}"
        raise InvalidValue(
            f"{opt('save_profile')} {name!r}: a profile id is lower-case letters, digits, '.', '_' or '-' "
            "(at most 64, starting with a letter or digit)",
            hint=hint,
        )
    if name in shipped_names() and not force:
        raise ConflictingOptions(
            f"{opt('save_profile')} {name}: {name!r} is a shipped hardware profile",
            hint=f"choose another name, or add {opt('force')} to shadow the shipped profile with this machine",
        )
    path = profile_path(name)
    others = [path.with_suffix(s) for s in PROFILE_SUFFIXES if path.with_suffix(s).exists()]
    if others and not force:
        raise InvalidValue(
            f"{opt('save_profile')} {name}: {others[0]} exists",
            hint=f"add {opt('force')} to overwrite it, or choose another name",
        )
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir() or not os.access(ancestor, os.W_OK):
        raise InvalidValue(
            f"{opt('save_profile')} {name}: cannot write to {path.parent}",
            hint="set FLOPCAST_CONFIG_DIR to a writable directory",
        )
    return path


def build_profile(report: BenchReport, name: str, today: dt.date | None = None) -> HardwareProfile:
    """The profile of the machine ``report`` measured (a complete, non-partial report)."""
    if report.roofline is None:
        raise RuntimeFailure("no roofline was fitted, so there is no profile to save")
    day = (today or dt.datetime.now(dt.UTC).date()).isoformat()
    m, fit = report.machine, report.roofline
    where = f"measured by flopcast bench on {day}"
    stack = f"flopcast {__version__}, {report.settings.mode} run"
    if m.device == "cpu":
        stack += f", {m.blas_library or 'BLAS'} {m.blas_version or ''}".rstrip() + f", {m.threads} threads"
        stack += f", numpy {m.numpy_version}"
    else:
        stack += f", PyTorch {m.torch_version}, CUDA {m.cuda_version}, TF32 off"
    notes = [
        "peaks and bandwidth are sustained rates measured by the gradient-descent kernel on this machine, "
        "not vendor datasheet peaks",
        f"roofline fit: {fit.method}",
    ]
    for check in report.gemm_check.values():
        notes.append(
            f"direct {check.n}x{check.n} {check.dtype} GEMM: {check.flops_per_s:.4g} FLOP/s "
            f"(fitted / GEMM = {check.fitted_over_gemm:.3f})"
        )
    if report.verify is not None:
        notes.append(
            f"verify: GD training predicted {report.verify.predicted_seconds:.3g} s, measured "
            f"{report.verify.measured_seconds:.3g} s (error {report.verify.error:+.1%})"
        )
    cores = ""
    if m.device == "cpu":
        cores = f", {m.cores_usable or m.cores_logical} cores"
    data = {
        "id": name,
        "name": f"{m.name}{cores} (this machine, measured)",
        "kind": "cpu" if m.device == "cpu" else "gpu",
        "vendor": m.vendor,
        # Not a chip family with calibration runs: the peaks above are this machine's measured rates, so no
        # published family's ceiling factor applies; the estimate uses the base ceiling and the wider band.
        "family": LOCAL_FAMILY_CPU if m.device == "cpu" else LOCAL_FAMILY_GPU,
        "peak_flops_per_s": {PROFILE_DTYPE_KEY[d]: float(v) for d, v in fit.peak_flops_per_s.items()},
        "memory_bytes": float(m.memory_total_bytes) if m.memory_total_bytes else None,
        "memory_bandwidth_bytes_per_s": float(fit.bandwidth_bytes_per_s),
        "devices_per_node": 1,
        "measured": ["peak_flops_per_s", "memory_bandwidth_bytes_per_s"],
        "calibration": {"fitted_on": f"{where} ({stack})"},
        "sources": [f"{where} ({stack}); machine: {m.name}"],
        "missing": [
            "tdp_watts, prices, intra-/inter-node bandwidth: not measured by flopcast bench",
            *([] if m.memory_total_bytes else ["memory_bytes: total memory not reported by the OS"]),
        ],
        "notes": notes,
    }
    if data["memory_bytes"] is None:
        raise RuntimeFailure("the total memory of this machine is unknown, so no profile can be written")
    return HardwareProfile.model_validate({k: v for k, v in data.items() if v is not None})


def profile_yaml(profile: HardwareProfile, written_by: str = "flopcast bench --save-profile", title=None) -> str:
    """A profile as the YAML a saved profile file holds, with a header naming the command that wrote it."""
    header = (
        f"# {title or profile.name}\n"
        f"# Written by `{written_by}`; rerun it to refresh. Units: SI (FLOP/s, bytes, bytes/s).\n"
    )
    body = yaml.safe_dump(
        profile.model_dump(mode="json", exclude_none=True), sort_keys=False, allow_unicode=True, width=110
    )
    return header + body


def save_profile(profile: HardwareProfile, path: Path) -> Path:
    """Write ``profile`` to ``path`` atomically, after validating the exact bytes that will land there."""
    from flopcast.io import atomic_write_checked

    return atomic_write_checked(path, profile_yaml(profile), check_profile_file)


def check_profile_file(path: Path) -> None:
    """Refuse a profile file flopcast wrote that does not validate (a bug, never the user's input)."""
    _, problems = profile_problems(path)
    if problems:
        raise RuntimeFailure(f"the profile flopcast wrote is invalid: {problems[0]}", hint="report this bug")
