"""The shipped fit is reproducible: refitting the fit split with this code gives the stored constants (and the
stored band and held-out figures: the whole refit takes about half a minute). Needs scipy (the ``test`` and
``fit`` extras)."""

from __future__ import annotations

import pytest

from flopcast.calibration.runs import load_runs, shipped_runs_paths, split_runs
from flopcast.estimator.efficiency import FITTED_NAMES, EfficiencyParams
from flopcast.hardware import load_catalog

pytest.importorskip("scipy")


def _files():
    return {path: load_runs(path) for path in shipped_runs_paths()}


def test_refit_reproduces_the_stored_constants():
    """One fit on the fit split (the frozen holdout left out) lands on the stored constants and bounds."""
    from flopcast.calibration.fit import fit

    stored = EfficiencyParams.load()
    fit_runs, _ = split_runs([r for runs in _files().values() for r in runs])
    values, params, info = fit(fit_runs, load_catalog())
    for name in FITTED_NAMES:
        assert values[name] == pytest.approx(getattr(stored, name), rel=1e-4), name
    assert params.family_ceiling_factor == pytest.approx(stored.family_ceiling_factor, rel=1e-4)
    assert info.on_bound == stored.extra["on_bound"]
    assert set(info.std_error) == set(stored.extra["std_error"])


def test_full_refit_reproduces_the_stored_band_and_figures():
    """The whole refit (leave-one-family-out over the fit families, the split-conformal band, the frozen
    holdout) reproduces what efficiency_fit.json stores."""
    from flopcast.calibration.fit import refit

    stored = EfficiencyParams.load()
    doc = refit(_files(), load_catalog()).document
    for level in ("p10", "p80", "p90"):
        assert doc[f"log_ratio_{level}"] == pytest.approx(getattr(stored, f"log_ratio_{level}"), abs=1e-4)
    for key in ("median_abs_error", "p90_abs_error", "coverage"):
        assert doc["held_out"][key] == pytest.approx(stored.extra["held_out"][key], abs=1e-4)
        assert doc["leave_one_group_out"]["all"][key] == pytest.approx(
            stored.extra["leave_one_group_out"]["all"][key], abs=1e-4
        )
