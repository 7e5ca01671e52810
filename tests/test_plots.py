"""`--plot FILE.png|svg` on the commands and on `flopcast report`: real figures, labelled axes, bad input.

SVGs keep their text as text (svg.fonttype none), so the titles, axis labels and units can be read back.
"""

from __future__ import annotations

import struct

import pytest
from typer.testing import CliRunner

from flopcast.cli import app

COMMANDS = {
    "estimate": ["estimate", "-m", "llama-2-7b", "-t", "2T", "-n", "256"],
    "sweep": ["estimate", "-m", "llama-2-70b", "-t", "2T", "--sweep", "devices=8..256"],
    "compare": ["compare", "-m", "llama-2-7b", "-t", "2T", "-n", "64"],
    "plan": ["plan", "-m", "1B", "-t", "20B", "--max-devices", "64", "-H", "a100-80gb,h100"],
    "validate": ["validate"],
    "bench": ["bench", "--quick", "--size-scale", "0.01", "--no-verify"],
}
# Text every figure must show: its subject and the axis labels with their units.
LABELS = {
    "estimate": ["seconds per optimizer step", "GB per device", "llama-2-7b on 256 × a100-80gb", "Memory"],
    "sweep": ["wall-clock (days)", "cost (USD", "devices", "P10–P90", "does not fit", "linear scaling from 16"],
    "compare": ["wall-clock (days; bars: P10–P90)", "cost (USD; bars: P10–P90)", "h100-80gb", "ranked by cost"],
    "plan": ["wall-clock (days)", "cost (USD)", "Pareto front", "best (cost"],
    "validate": ["predicted / reported", "published runs", "trust-A"],
    "bench": ["arithmetic intensity (FLOP/byte)", "FLOP/s", "measured (median)", "roof"],
}
DRAWN_WHILE_SAVING = ("bench", "validate")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PNG_DPI = 150  # flopcast.plotting.PNG_DPI, restated: the estimate figure is 11 × 4.2 inches


def run(*args, env=None):
    return CliRunner().invoke(app, [str(a) for a in args], env=env)


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_MAGIC
    return struct.unpack(">II", data[16:24])  # IHDR width, height


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    pytest.importorskip("matplotlib")
    folder = tmp_path_factory.mktemp("plots")
    paths = {}
    for kind, args in COMMANDS.items():
        paths[kind] = folder / f"{kind}.json"
        # the slow commands also draw here, so each runs once (test_slow_commands_drew_while_saving)
        extra = ["--plot", folder / f"{kind}.svg"] if kind in DRAWN_WHILE_SAVING else []
        result = run(*args, "-f", "json", "-o", paths[kind], "-q", *extra)
        assert result.exit_code in (0, 1), result.stderr
    return paths


@pytest.mark.slow  # about a second per figure
@pytest.mark.parametrize("kind", list(COMMANDS))
def test_each_report_kind_draws_a_labelled_figure(saved, kind, tmp_path):
    svg_path = tmp_path / f"{kind}.svg"
    result = run("report", saved[kind], "--plot", svg_path)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""  # --plot alone writes only the figure
    svg = svg_path.read_text()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    for label in LABELS[kind]:
        assert label in svg, (kind, label)


def test_estimate_and_validate_figures_say_what_a_reader_needs(saved, tmp_path):
    """Issue 19: the memory panel has a capacity line and a total, the step panel the overhead share, and the
    validate legend names what was predicted in words, not by field name."""
    import json

    for kind in ("estimate", "validate"):
        assert run("report", saved[kind], "--plot", tmp_path / f"{kind}.svg").exit_code == 0
    estimate = (tmp_path / "estimate.svg").read_text()
    report = json.loads(saved["estimate"].read_text())
    capacity_gb = report["memory"]["capacity_bytes"] / 1e9
    assert f"capacity {capacity_gb:.0f} GB" in estimate and ">total<" in estimate
    assert "interruptions and" in estimate and "share of wall-clock" in estimate
    validate = (tmp_path / "validate.svg").read_text()
    targets = {row["target"] for row in json.loads(saved["validate"].read_text())["rows"]}
    assert targets and not any(f">{t}<" in validate for t in targets if "_" in t)
    assert "device-hours" in validate or "TFLOP/s per device" in validate


def test_the_same_report_gives_the_same_svg(saved, tmp_path):
    first, second = tmp_path / "a.svg", tmp_path / "b.svg"
    run("report", saved["plan"], "--plot", first)
    run("report", saved["plan"], "--plot", second)
    assert first.read_bytes() == second.read_bytes()


def test_estimate_png_has_the_stated_size(saved, tmp_path):
    target = tmp_path / "estimate.png"
    run("report", saved["estimate"], "--plot", target)
    assert png_size(target.read_bytes()) == (round(11 * PNG_DPI), round(4.2 * PNG_DPI))


def test_slow_commands_drew_while_saving(saved):
    for kind in DRAWN_WHILE_SAVING:
        svg = saved[kind].with_suffix(".svg").read_text()
        assert "<svg" in svg and LABELS[kind][0] in svg


@pytest.mark.slow  # a command run and a figure each
@pytest.mark.parametrize("kind", [k for k in COMMANDS if k not in DRAWN_WHILE_SAVING])
def test_commands_draw_while_printing_their_table(kind, tmp_path):
    pytest.importorskip("matplotlib")
    target = tmp_path / f"{kind}.svg"
    result = run(*COMMANDS[kind], "--plot", target)
    assert result.exit_code in (0, 1), result.stderr
    assert result.stdout.strip() and "<svg" in target.read_text()
    assert f"wrote {target}" in result.stderr


def test_report_with_plot_and_format_writes_both(saved, tmp_path):
    target = tmp_path / "estimate.svg"
    result = run("report", saved["estimate"], "--plot", target, "--format", "csv")
    assert result.exit_code == 0 and result.stdout.startswith("model,params,")
    assert target.exists()


def test_infeasible_plan_writes_no_plot(tmp_path):
    pytest.importorskip("matplotlib")
    target = tmp_path / "plan.png"
    result = run("plan", "-m", "7B", "-t", "2T", "--deadline", "1h", "--max-devices", "16", "--plot", target)
    assert result.exit_code == 3
    assert "no plot written" in result.stderr and not target.exists()


# --- bad input: one line, exit 2, nothing written --------------------------------------------------------------


def test_unknown_image_type_fails_before_any_work(tmp_path, one_line_error):
    out, plot = tmp_path / "e.json", tmp_path / "e.pdf"
    result = run(*COMMANDS["estimate"], "-f", "json", "-o", out, "--plot", plot)
    one_line_error(result, 2, ".png or .svg")
    assert not out.exists() and not plot.exists()


def test_existing_plot_needs_force(saved, tmp_path, one_line_error):
    target = tmp_path / "plan.png"
    target.write_bytes(b"keep me")
    one_line_error(run("report", saved["plan"], "--plot", target), 2, "--plot", "--force")
    assert target.read_bytes() == b"keep me"
    assert run("report", saved["plan"], "--plot", target, "--force").exit_code == 0
    assert target.read_bytes()[:8] == PNG_MAGIC


def test_no_figure_for_serve_or_size(tmp_path, one_line_error):
    saved_serve = tmp_path / "serve.json"
    run("serve", "-m", "llama-2-7b", "--hardware", "a100-80gb", "-f", "json", "-o", saved_serve)
    target = tmp_path / "serve.png"
    one_line_error(run("report", saved_serve, "--plot", target), 2, "no figure for a serve report")
    assert not target.exists()


def test_missing_matplotlib_is_one_line_with_the_install_command(monkeypatch, tmp_path, one_line_error):
    import flopcast.plotting

    real = flopcast.plotting.importlib.util.find_spec
    monkeypatch.setattr(
        flopcast.plotting.importlib.util, "find_spec", lambda name, *a: None if name == "matplotlib" else real(name, *a)
    )
    out = tmp_path / "e.json"
    result = run(*COMMANDS["estimate"], "-f", "json", "-o", out, "--plot", tmp_path / "e.png")
    line = one_line_error(result, 2, "matplotlib")
    assert 'pip install "flopcast[plot]"' in line
    assert not out.exists()  # checked before any work
