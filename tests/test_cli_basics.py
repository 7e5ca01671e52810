"""Top-level CLI behaviour: --version (in-process and as a real process), help, and the hardware commands'
output formats."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys

from flopcast._version import __version__


def test_version_in_process(cli):
    result = cli("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"flopcast {__version__}"


def test_python_dash_m_version_in_a_real_process():
    env = {**os.environ, "NO_COLOR": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "flopcast", "--version"], capture_output=True, text=True, timeout=60, env=env
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"flopcast {__version__}"
    assert proc.stderr == ""


def test_help_lists_the_hardware_commands(cli):
    result = cli("hardware", "--help")
    assert result.exit_code == 0
    for command in ("list", "show", "validate"):
        assert command in result.stdout


def test_unknown_command_is_one_line(cli, one_line_error):
    one_line_error(cli("hardwre"), 2)


def test_list_json_carries_peaks_memory_bandwidth_and_sources(cli):
    result = cli("hardware", "list", "--format", "json")
    assert result.exit_code == 0, result.stderr
    entries = {e["id"]: e for e in json.loads(result.stdout)}
    h100 = entries["h100-80gb"]
    assert h100["training_dtype"] == "bf16" and h100["training_peak_flops_per_s"] == 989.4e12  # dense, CSV
    assert h100["memory_bytes"] == 80e9 and h100["memory_bandwidth_bytes_per_s"] == 3350e9
    assert h100["sources"] and h100["origin"] == "shipped"
    assert entries["v100-16gb"]["training_dtype"] == "fp16"  # no bf16 on Volta
    epyc = entries["epyc-9654"]
    assert epyc["training_dtype"] == "fp32" and epyc["training_peak_flops_per_s"] == 96 * 2.4e9 * 32
    assert result.stderr == ""


def test_list_csv_has_raw_si_numbers(cli):
    result = cli("hardware", "list", "--format", "csv")
    rows = {r["id"]: r for r in csv.DictReader(io.StringIO(result.stdout))}
    assert float(rows["tpu-v4"]["memory_bytes"]) == 32 * 2**30
    assert float(rows["a100-80gb"]["intra_node_bandwidth_bytes_per_s"]) == 600e9 / 2
    assert rows["tpu-v3"]["inter_node_bandwidth_bytes_per_s"] == ""  # not published: empty, never 0


def test_list_markdown_and_table(cli):
    markdown = cli("hardware", "list", "--format", "markdown").stdout
    assert markdown.splitlines()[0].startswith("| id |")
    assert "| h100-80gb |" in markdown
    table = cli("hardware", "list").stdout
    lines = table.splitlines()
    assert all(len(line.rstrip()) <= 120 for line in lines)
    assert any(line.split()[:1] == ["h200-141gb"] for line in lines), "one row per id, not wrapped"
    assert "989.4 bf16" in table


def test_show_every_format(cli):
    doc = json.loads(cli("hardware", "show", "tpu-v5e", "--format", "json").stdout)
    assert doc["id"] == "tpu-v5e" and doc["inter_node_bandwidth_bytes_per_s"] == 200e9 / 8 / 8
    rows = dict(csv.reader(io.StringIO(cli("hardware", "show", "v5e", "--format", "csv").stdout)))
    assert rows["id"] == "tpu-v5e" and rows["devices per node"] == "256"
    markdown = cli("hardware", "show", "v5e", "--format", "markdown").stdout
    assert markdown.startswith("### Google TPU v5e (tpu-v5e)")
    table = cli("hardware", "show", "v5e").stdout
    assert "197 TFLOP/s (bf16, dense)" in table and "file (wins)" in table


def test_show_writes_output_atomically_and_refuses_overwrite(cli, one_line_error, tmp_path):
    target = tmp_path / "h100.json"
    result = cli("hardware", "show", "h100", "--format", "json", "--output", target)
    assert result.exit_code == 0 and json.loads(target.read_text())["id"] == "h100-80gb"
    again = cli("hardware", "show", "h100", "--format", "json", "--output", target)
    one_line_error(again, 2)
