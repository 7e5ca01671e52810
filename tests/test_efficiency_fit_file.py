"""The efficiency fit ships with flopcast: a missing or unreadable fit file is an error (exit 1, one line
naming the file and saying to reinstall), never an estimate on made-up constants."""

from __future__ import annotations

import json

import pytest

from flopcast.errors import EXIT_RUNTIME, BrokenInstall, RuntimeFailure
from flopcast.estimator import efficiency
from flopcast.estimator.efficiency import EfficiencyParams

ESTIMATE = ("estimate", "--model", "llama-2-7b", "--tokens", "2T", "--hardware", "a100-80gb", "--devices", "64")


@pytest.fixture
def fit_at(monkeypatch, tmp_path):
    """Point the estimator at a fit file of our choosing: fit_at(text or None) → its path."""

    def use(text: str | None, name: str = "efficiency_fit.json"):
        path = tmp_path / name
        if text is not None:
            path.write_text(text, encoding="utf-8")
        monkeypatch.setattr(efficiency, "fit_path", lambda: path)
        return path

    return use


def _shipped_doc() -> dict:
    return json.loads(efficiency.fit_path().read_text(encoding="utf-8"))


def test_missing_fit_file_raises_a_runtime_error_naming_it(fit_at):
    path = fit_at(None)
    with pytest.raises(BrokenInstall) as info:
        EfficiencyParams.load()
    err = info.value
    assert isinstance(err, RuntimeFailure) and err.exit_code == EXIT_RUNTIME == 1
    line = err.one_line()
    assert str(path) in line and "missing" in line and "reinstall flopcast" in line and "\n" not in line


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("{not json", "cannot read"),
        ("[1, 2]", "not a JSON object"),
        ('{"gemm_ceiling": 0.7}', "lacks family_ceiling_factor"),
    ],
)
def test_unreadable_fit_file_raises(fit_at, text, fragment):
    path = fit_at(text)
    with pytest.raises(BrokenInstall, match=fragment) as info:
        EfficiencyParams.load()
    assert str(path) in info.value.one_line()


def test_fit_file_that_is_a_directory_raises(fit_at, tmp_path):
    (tmp_path / "efficiency_fit.json").mkdir()
    fit_at(None)
    with pytest.raises(BrokenInstall, match="cannot read"):
        EfficiencyParams.load()


def test_not_utf8_fit_file_raises(fit_at, tmp_path):
    path = fit_at(None)
    path.write_bytes(b'{"gemm_ceiling": "\xff"}')
    with pytest.raises(BrokenInstall, match="cannot read"):
        EfficiencyParams.load()


def test_a_fit_missing_one_constant_is_refused(fit_at):
    doc = _shipped_doc()
    del doc["log_ratio_p90_uncalibrated"]
    fit_at(json.dumps(doc))
    with pytest.raises(BrokenInstall, match="lacks log_ratio_p90_uncalibrated"):
        EfficiencyParams.load()


def test_a_complete_fit_file_elsewhere_is_read(fit_at):
    doc = _shipped_doc()
    doc["gemm_ceiling"] = 0.5  # a value the shipped file does not hold
    fit_at(json.dumps(doc))
    assert EfficiencyParams.load().gemm_ceiling == 0.5


def test_estimate_without_the_fit_file_exits_1_with_one_line(cli, one_line_error, fit_at):
    path = fit_at(None)
    one_line_error(cli(*ESTIMATE), 1, str(path), "reinstall flopcast")


def test_no_default_constants_stand_in():
    """EfficiencyParams holds no fallback values: it cannot be built without the fitted constants."""
    with pytest.raises(TypeError):
        EfficiencyParams()
    with pytest.raises(TypeError):
        EfficiencyParams(gemm_ceiling=0.8)
