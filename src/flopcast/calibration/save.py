"""`flopcast calibrate --save-profile NAME`: the base hardware profile with the fitted calibration block.

The file is a copy of the base profile (every datasheet or measured field kept) with ``id`` NAME, a
``calibration`` block (``matmul_efficiency`` = the fitted ceiling, ``fitted_on`` = what it was fitted on and
when) and a note. Its ``family`` stays the base profile's when the estimator honours a profile's own
``calibration.matmul_efficiency`` for that family; otherwise it is ``user-<NAME>`` (calibrate.family_for), so no
shipped family calibration overrides the fitted value. Written atomically into the user profile dir
(:func:`flopcast.hardware.user_profiles_dir`), after the exact bytes are validated as a profile.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from flopcast._version import __version__


def check_target(name: str, force: bool) -> Path:
    """Before any fitting: the file NAME will be written to (refuses a shipped id or an existing file without
    ``force``, a bad id, an unwritable dir), by the rule ``bench --save-profile`` uses."""
    from flopcast.bench.profile import check_profile_target

    return check_profile_target(name, force)


def calibrated_profile(base, report, name: str, today: dt.date | None = None):
    """``base`` as profile ``name`` with the ceiling ``report`` fitted."""
    from flopcast.hardware import HardwareProfile

    day = (today or dt.datetime.now(dt.UTC).date()).isoformat()
    ceiling = next(c for c in report.fitted if c.name == "matmul_efficiency")
    where = (
        f"fitted by flopcast {__version__} calibrate on {day}: {report.runs} measured row(s), "
        f"{report.distinct_layouts} distinct layout(s), on base profile {base.id}; in-sample median |error| "
        f"{report.before.median_abs_error:.1%} before, {report.after.median_abs_error:.1%} after"
    )
    data = base.model_dump(mode="json", exclude_none=True)
    notes = [n for n in data.get("notes", []) if not n.startswith("calibrate:")]
    notes.append(
        f"calibrate: matmul_efficiency {ceiling.value:.4g} = {report.ceiling_factor:.3f} x the ceiling flopcast "
        f"used before ({report.base_ceiling:.4g}, family {report.base_family or 'none'}); sources: "
        + "; ".join(report.sources)[:400]
    )
    data.update(
        id=name,
        aliases=[] if name != base.id else data.get("aliases", []),
        calibration={"matmul_efficiency": ceiling.value, "fitted_on": where},
        sources=[*data.get("sources", []), where],
        notes=notes,
    )
    if report.written_family:
        data["family"] = report.written_family
    return HardwareProfile.model_validate(data)


def profile_text(profile) -> str:
    from flopcast.bench.profile import profile_yaml

    return profile_yaml(profile, "flopcast calibrate --save-profile", f"{profile.name}, calibrated")


def write_profile(profile, path: Path) -> Path:
    """Write ``profile`` to ``path`` atomically, after validating the exact bytes that will land there."""
    from flopcast.bench.profile import check_profile_file
    from flopcast.io import atomic_write_checked

    return atomic_write_checked(path, profile_text(profile), check_profile_file)
