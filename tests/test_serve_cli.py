"""`flopcast serve` through typer's CliRunner (and one real subprocess): formats, files, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from flopcast import models

# Llama-2-7B given explicitly (works with or without the preset catalogue)
LLAMA2_7B_FLAGS = [
    "--layers",
    "32",
    "--d-model",
    "4096",
    "--heads",
    "32",
    "--ffn",
    "11008",
    "--gated-ffn",
    "--vocab",
    "32k",
    "--seq-len",
    "4096",
]
A100 = ["--hardware", "a100-80gb"]
needs_presets = pytest.mark.skipif(not hasattr(models, "resolve_model"), reason="model presets not merged yet")


def _serve(cli, *extra):
    return cli("serve", *A100, *LLAMA2_7B_FLAGS, *extra)


def test_json_has_the_contract_fields(cli):
    result = _serve(cli, "--format", "json", "--prompt-tokens", "4000", "--output-tokens", "96")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["report"] == "serve"
    # 6,738,415,616 params × 2 B; KV 2·32·32·128·4096·2 B = 2,147,483,648 B
    assert doc["memory"]["weights_bytes"] == 6_738_415_616 * 2
    assert doc["memory"]["kv_cache_bytes"] == 2_147_483_648
    assert doc["memory"]["fits"] is True
    assert doc["memory"]["per_device_bytes"] < 80e9
    for key in ("seconds", "time_to_first_token_seconds"):
        assert doc["prefill"][key] > 0
    assert doc["decode"]["tokens_per_second"] < 2039e9 / (6.74e9 * 2)  # ≈ 151 tok/s bandwidth bound
    assert doc["decode"]["seconds_per_token"] == pytest.approx(1 / doc["decode"]["tokens_per_second"])
    assert doc["cost"]["usd_per_million_tokens"] > 0 and doc["cost"]["tier"] == "on-demand"
    assert [v["weights_bits"] for v in doc["variants"]] == [16, 8, 4]
    assert result.stderr == ""  # JSON mode: nothing else printed


def test_table_shows_16_8_4_side_by_side_with_the_chosen_one_marked(cli):
    result = _serve(cli, "--weights", "4")
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert "16-bit weights" in out and "8-bit weights" in out and "4-bit weights *" in out
    assert "16-bit weights *" not in out
    assert "cost / 1M output tokens" in out and "tokens/s per request" in out


@pytest.mark.parametrize("fmt", ["markdown", "csv"])
def test_markdown_and_csv(cli, fmt):
    result = _serve(cli, "--format", fmt)
    assert result.exit_code == 0, result.stderr
    first = result.stdout.splitlines()[0]
    assert ("16-bit weights *" in result.stdout) and (
        "| devices" in result.stdout if fmt == "markdown" else first.startswith(",16-bit weights *")
    )


def test_output_file_is_written_atomically_and_not_overwritten_without_force(cli, tmp_path):
    target = tmp_path / "serve.json"
    assert _serve(cli, "-f", "json", "-o", target).exit_code == 0
    assert json.loads(target.read_text())["report"] == "serve"
    again = _serve(cli, "-f", "json", "-o", target)
    assert again.exit_code == 2 and "--force" in again.stderr
    assert _serve(cli, "-f", "json", "-o", target, "--force").exit_code == 0


def test_devices_too_small_reports_does_not_fit_with_the_count_that_would(cli):
    # Llama-2-70B fp16 = 137.95 GB of weights: 2 × A100-80GB hold 69 GB + 8 GB allowance each
    flags = [
        "--layers",
        "80",
        "--d-model",
        "8192",
        "--heads",
        "64",
        "--kv-heads",
        "8",
        "--ffn",
        "28672",
        "--gated-ffn",
        "--vocab",
        "32000",
    ]
    result = cli("serve", *A100, *flags, "--devices", "1", "-f", "json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["memory"]["fits"] is False and doc["memory"]["devices_needed"] == 2
    assert any("does not fit" in w for w in doc["warnings"])
    table = cli("serve", *A100, *flags, "--devices", "1")
    assert "NO (needs 2)" in table.stdout and "does not fit" in table.stderr


def test_cpu_profile_without_price_and_with_price_per_hour(cli):
    result = cli("serve", "--hardware", "epyc-9654", *LLAMA2_7B_FLAGS, "-f", "json")
    doc = json.loads(result.stdout)
    assert result.exit_code == 0
    assert doc["cost"]["usd_per_million_tokens"] is None and "cost omitted" in doc["cost"]["note"]
    priced = json.loads(
        cli("serve", "--hardware", "epyc-9654", *LLAMA2_7B_FLAGS, "-f", "json", "--price-per-hour", "$2").stdout
    )
    assert priced["cost"]["tier"] == "custom"
    assert priced["cost"]["usd_per_million_tokens"] == pytest.approx(
        2.0 / (priced["output_tokens_per_second"] * 3600) * 1e6
    )


def test_a_profile_from_another_directory_works(cli, tmp_path):
    # what `flopcast bench --save-profile` writes: a measured CPU profile, no price tiers
    (tmp_path / "my-box.yaml").write_text(
        "id: my-box\nname: measured box\nkind: cpu\npeak_flops_per_s: {fp32: 1.2e12}\nmemory_bytes: 64e9\n"
        "memory_bandwidth_bytes_per_s: 40e9\nsources: [measured by flopcast bench]\n"
    )
    result = cli(
        "serve",
        "--hardware",
        "my-box",
        "--profiles",
        tmp_path,
        *LLAMA2_7B_FLAGS,
        "--prompt-tokens",
        "5",
        "--output-tokens",
        "200",
        "--bandwidth-efficiency",
        "1",
        "--matmul-efficiency",
        "1",
        "-f",
        "json",
    )
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    # measured figures are sustained ones (η = 1 for both roofs): memory bound, as the FLOPs (1.33e10 at
    # 1.2e12 FLOP/s = 11 ms) take far less than the bytes:
    # (6,607,077,376 weights read · 2 B + 524,288 B · 105 tokens of KV) / 40 GB/s, plus the default CPU runtime's
    # (llama.cpp) fixed cost, which on a CPU adds to the work: (32 layers × 22 + 5) graph nodes × 2 µs + 10 µs
    assert doc["runtime"]["id"] == "llama.cpp"
    assert doc["decode"]["seconds_per_token"] == pytest.approx(13_269_204_992 / 40e9 + 709 * 2e-6 + 10e-6)
    assert doc["decode"]["overhead_seconds_per_token"] == pytest.approx(709 * 2e-6 + 10e-6)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--batch", "0"], "--batch"),
        (["--prompt-tokens", "0"], "--prompt-tokens"),
        (["--output-tokens", "0"], "--output-tokens"),
        (["--weights", "3"], "--weights 3"),
        (["--kv-bits", "4"], "--kv-bits 4"),
        (["--devices", "3"], "must divide"),
        (["--price-tier", "spot"], "--price-tier"),
        (["--batch", "2048", "--prompt-tokens", "4000", "--output-tokens", "96"], "fits on no number"),
        (["--batch", "two"], "--batch"),
    ],
)
def test_bad_input_is_one_line_exit_2(cli, one_line_error, args, fragment):
    one_line_error(_serve(cli, *args), 2, fragment)


def test_unknown_hardware_and_model(cli, one_line_error):
    one_line_error(cli("serve", "--hardware", "a100-80gx", *LLAMA2_7B_FLAGS), 2, "unknown hardware")
    one_line_error(cli("serve", *A100, "--model", "no-such-model-xyz"), 2, "no-such-model-xyz")


@needs_presets
def test_preset_llama_2_7b(cli):
    doc = json.loads(cli("serve", *A100, "--model", "llama-2-7b", "-f", "json").stdout)
    assert doc["model"]["params"] == 6_738_415_616
    assert doc["memory"]["weights_bytes"] == 6_738_415_616 * 2


def test_subprocess_run():
    cmd = [sys.executable, "-m", "flopcast", "serve", *A100, *LLAMA2_7B_FLAGS, "-f", "json", "--weights", "8"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["weights_bits"] == 8
