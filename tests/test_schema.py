"""`flopcast schema`: the JSON Schema of every report kind, and REAL outputs of every command validated against it."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from typer.testing import CliRunner

from flopcast.cli import app
from flopcast.reports.registry import DOCUMENTS, REPORTS, kinds

# command line -> (kind, is the output a list of documents?)
OUTPUTS = {
    "estimate": (["estimate", "-m", "llama-2-7b", "-t", "2T", "-n", "256"], "estimate", False),
    "estimate (does not fit)": (["estimate", "-m", "llama-2-70b", "-t", "2T", "-n", "1"], "estimate", False),
    "estimate --sweep": (["estimate", "-m", "llama-2-7b", "-t", "2T", "--sweep", "devices=8..64"], "sweep", False),
    "compare": (["compare", "-m", "llama-2-7b", "-t", "2T", "-n", "64"], "compare", False),
    "compare --deadline": (
        ["compare", "-m", "1B", "-t", "20B", "--deadline", "2d", "-H", "a100-80gb,h100,epyc-9654"],
        "compare",
        False,
    ),
    "plan": (["plan", "-m", "1B", "-t", "20B", "--max-devices", "64", "-H", "a100-80gb,h100"], "plan", False),
    "plan (infeasible)": (["plan", "-m", "7B", "-t", "2T", "--deadline", "1h", "--max-devices", "16"], "plan", False),
    "size": (["size", "--flops", "1e21", "-H", "a100-80gb", "-n", "8"], "size", False),
    "size --flops alone": (["size", "--flops", "1e21"], "size", False),
    "serve": (["serve", "-m", "llama-2-7b", "--hardware", "a100-80gb"], "serve", False),
    "serve --plan": (
        ["serve", "--plan", "-m", "llama-3.1-8b", "--ttft", "500ms", "--tpot", "50ms", "--request-rate", "20"],
        "serve-plan",
        False,
    ),
    "serve --plan (infeasible)": (
        ["serve", "--plan", "-m", "llama-3.1-8b", "--ttft", "0.1ms", "--request-rate", "20", "-H", "h100-80gb"],
        "serve-plan",
        False,
    ),
    "validate": (["validate"], "validate", False),
    "bench": (["bench", "--quick", "--size-scale", "0.01"], "bench", False),
    "bench --verify-serve": (["bench", "--verify-serve", "--size-scale", "0.05"], "verify-serve", False),
    "bench --collectives": (
        ["bench", "--collectives", "--nproc", "2", "--quick", "--max-bytes", "16KiB"],
        "collectives",
        False,
    ),
    "calibrate": (
        [
            "calibrate",
            str(Path(__file__).parent / "data" / "megatron_llama2_7b_8xh100.log"),
            "-m",
            "llama-2-7b",
            "-H",
            "h100-80gb",
            "-n",
            "8",
        ],
        "calibration",
        False,
    ),  # fmt: skip
    "hardware list": (["hardware", "list"], "hardware", True),
    "hardware show": (["hardware", "show", "tpu-v5e"], "hardware", False),
    "models list": (["models", "list"], "model", True),
    "models show": (["models", "show", "mixtral-8x7b"], "model", False),
    "models show SIZE": (["models", "show", "7B"], "model", False),
}
try:  # bench --verify-train trains a PyTorch transformer: checked where the optional extra is installed
    import torch  # noqa: F401

    OUTPUTS["bench --verify-train"] = (
        ["bench", "--verify-train", "--model", "125M", "--verify-scale", "16", "--quick"],
        "verify-train",
        False,
    )
except ImportError:
    pass
EXIT_OK = (0, 1, 3)  # validate exits 1 when its bars fail, plan 3 when nothing is feasible: both still report


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def schema_of(kind: str) -> dict:
    result = run("schema", kind)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize("name", list(OUTPUTS))
def test_real_output_validates_against_its_schema(name):
    args, kind, is_list = OUTPUTS[name]
    if kind in ("verify-serve", "collectives"):
        pytest.importorskip("torch")
    result = run(*args, "--format", "json")
    assert result.exit_code in EXIT_OK, (result.stdout, result.stderr)
    doc = json.loads(result.stdout)
    schema = schema_of(kind)
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    for item in doc if is_list else [doc]:
        validator.validate(item)
    if kind in REPORTS:
        assert doc["report"] == kind and doc["schema_version"] and doc["flopcast_version"]


def test_every_report_kind_has_a_real_output_checked_above():
    checked = {kind for _, kind, _ in OUTPUTS.values()}
    if "bench --verify-train" not in OUTPUTS:  # no PyTorch here: its kind cannot be produced
        checked.add("verify-train")
    assert set(REPORTS) | set(DOCUMENTS) == checked


def test_schemas_reject_a_misspelt_or_mistyped_field():
    """The schema is strict: unknown fields and wrong types fail (so drift in the reports is caught)."""
    doc = json.loads(run(*OUTPUTS["estimate"][0], "-f", "json").stdout)
    schema = schema_of("estimate")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**doc, "wall_clock": 1.0}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**doc, "time": {**doc["time"], "step_seconds": "2 s"}}, schema)


def test_schema_without_kind_lists_every_kind():
    result = run("schema")
    assert result.exit_code == 0
    listed = [line.split()[0] for line in result.stdout.splitlines() if line.split() and line.split()[0] in kinds()]
    assert listed == kinds()
    csv_text = run("schema", "-f", "csv").stdout.splitlines()
    assert csv_text[0] == "kind,type,what" and len(csv_text) == 1 + len(kinds())


def test_schema_json_without_kind_is_every_schema_in_one_object():
    result = run("schema", "--format", "json")
    doc = json.loads(result.stdout)
    assert doc["schema_version"] == "2.2" and doc["flopcast_version"]
    assert list(doc["schemas"]) == kinds()
    assert doc["schemas"]["plan"] == schema_of("plan")


def test_schema_can_be_written_to_a_file(tmp_path):
    target = tmp_path / "estimate.schema.json"
    assert run("schema", "estimate", "-o", target).exit_code == 0
    assert json.loads(target.read_text())["title"] == "EstimateReport"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["schema", "estmate"], "did you mean estimate"),
        (["schema", "estimate", "--format", "csv"], "a JSON Schema is JSON"),
    ],
)
def test_bad_schema_requests_are_one_line(args, needle, one_line_error):
    one_line_error(run(*args), 2, needle)
