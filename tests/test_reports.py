"""Shareable reports: every command's formats, `flopcast report FILE.json`, and plain text outside a terminal.

Checks (issue 7): a JSON report re-rendered by `flopcast report` reproduces the command's own output (same
numbers in JSON, the same table, Markdown and CSV); Markdown tables render (markdown-it-py, which ships with
rich) to an HTML <table> with one body row per result; CSV loads with the csv module with one row per
result; a bad or foreign file is one line and exit 2; NO_COLOR, pipes and --output never carry ANSI codes.
"""

from __future__ import annotations

import csv
import io
import json
import re

import pytest
from markdown_it import MarkdownIt
from typer.testing import CliRunner

from flopcast.cli import app

# One small, fast invocation per report kind (each well under a second in-process).
COMMANDS = {
    "estimate": ["estimate", "-m", "llama-2-7b", "-t", "2T", "-n", "256"],
    "sweep": ["estimate", "-m", "llama-2-7b", "-t", "2T", "--sweep", "devices=8..64"],
    "compare": ["compare", "-m", "llama-2-7b", "-t", "2T", "-n", "64"],
    "plan": ["plan", "-m", "1B", "-t", "20B", "--max-devices", "64", "-H", "a100-80gb,h100"],
    "size": ["size", "--flops", "1e21", "-H", "a100-80gb", "-n", "8"],
    "serve": ["serve", "-m", "llama-2-7b", "--hardware", "a100-80gb"],
    "validate": ["validate"],
    "bench": ["bench", "--quick", "--size-scale", "0.01", "--no-verify"],
}
OK_CODES = {"validate": (0, 1)}  # validate exits 1 when the accuracy bars fail, after writing its report
ANSI = re.compile(r"\x1b\[")
BOX_DRAWING = re.compile("[\u2500-\u257f]")


def run(*args, env=None):
    return CliRunner().invoke(app, [str(a) for a in args], env=env)


def ok(result, kind="estimate"):
    assert result.exit_code in OK_CODES.get(kind, (0,)), (result.exit_code, result.stdout, result.stderr)
    return result


def strict_json(text: str):
    def no_constant(name):
        raise AssertionError(f"{name} is not valid JSON")

    return json.loads(text, parse_constant=no_constant)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """kind -> (path of the saved JSON report, the command's own outputs by format)."""
    folder = tmp_path_factory.mktemp("reports")
    out = {}
    for kind, args in COMMANDS.items():
        path = folder / f"{kind}.json"
        ok(run(*args, "--format", "json", "--output", path, "--quiet"), kind)
        outputs = {fmt: ok(run(*args, "--format", fmt), kind).stdout for fmt in ("table", "markdown", "csv")}
        out[kind] = (path, outputs)
    return out


@pytest.mark.parametrize("kind", list(COMMANDS))
def test_saved_json_carries_kind_and_versions(saved, kind):
    doc = strict_json(saved[kind][0].read_text())
    assert doc["report"] == kind
    assert doc["schema_version"] == "2.2" and re.fullmatch(r"\d+\.\d+\.\d+.*", doc["flopcast_version"])


@pytest.mark.parametrize("kind", list(COMMANDS))
def test_report_json_round_trip_reproduces_the_same_document(saved, kind):
    path = saved[kind][0]
    again = run("report", path, "--format", "json")
    assert again.exit_code == 0, again.stderr
    assert strict_json(again.stdout) == strict_json(path.read_text())


def test_round_trip_keeps_the_estimate_numbers(saved):
    """The figures people quote survive the round trip exactly (DESIGN §7 field names)."""
    original = strict_json(saved["estimate"][0].read_text())
    back = strict_json(run("report", saved["estimate"][0], "-f", "json").stdout)
    for section, field in [
        ("time", "wall_clock_seconds"), ("time", "device_hours_p10"), ("time", "device_hours_p90"),
        ("cost", "total_usd"), ("memory", "per_device_bytes"), ("flops", "total"), ("energy", "kwh"),
    ]:  # fmt: skip
        assert back[section][field] == original[section][field]


# The JSON and the text formats come from separate runs: the plan's search time and every bench measurement
# differ between runs, so those parts are masked before comparing.
SEARCH_SPEED = re.compile(r"in [\d.]+ s \([\d.]+ M layouts/s\)")


def comparable(kind: str, fmt: str, text: str) -> str:
    if kind == "plan":
        return SEARCH_SPEED.sub("in # s (# M layouts/s)", text)
    if kind == "bench":  # measurements differ run to run: compare the structure (CSV header, headings, titles)
        if fmt == "csv":
            return text.splitlines()[0]
        keep = ("#", "Roofline", "Points", "Closing the loop", "flopcast bench")
        lines = [line.strip() for line in text.splitlines() if line.strip().startswith(keep)]
        return re.sub(r"\d+(\.\d+)? s\)", "# s)", "\n".join(lines))
    return text


@pytest.mark.parametrize("fmt", ["table", "markdown", "csv"])
@pytest.mark.parametrize("kind", list(COMMANDS))
def test_report_renders_like_the_command(saved, kind, fmt):
    """`flopcast report` reuses each command's renderer: the same text as the command printed."""
    path, outputs = saved[kind]
    result = run("report", path, "--format", fmt)
    assert result.exit_code == 0, result.stderr
    assert comparable(kind, fmt, result.stdout) == comparable(kind, fmt, outputs[fmt])
    assert comparable(kind, fmt, result.stdout).strip()


def test_report_defaults_to_a_table(saved):
    path, outputs = saved["compare"]
    assert run("report", path).stdout == outputs["table"]


# --- Markdown and CSV: one row per result ------------------------------------------------------------------


def markdown_tables(text: str) -> list[tuple[list[str], list[list[str]]]]:
    """(header cells, body rows) of every table the Markdown renders to."""
    html = MarkdownIt("commonmark").enable("table").render(text)
    tables = []
    for table in re.findall(r"<table>(.*?)</table>", html, flags=re.S):
        head = re.findall(r"<th(?:\s[^>]*)?>(.*?)</th>", table, flags=re.S)
        body = re.search(r"<tbody>(.*?)</tbody>", table, flags=re.S)
        rows = re.findall(r"<tr>(.*?)</tr>", body.group(1), flags=re.S) if body else []
        tables.append((head, [re.findall(r"<td(?:\s[^>]*)?>(.*?)</td>", r, flags=re.S) for r in rows]))
    return tables


def csv_rows(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


def test_estimate_markdown_and_csv_are_one_row(saved):
    path, outputs = saved["estimate"]
    doc = strict_json(path.read_text())
    (head, rows), *_ = markdown_tables(outputs["markdown"])
    assert len(rows) == 1 and len(rows[0]) == len(head)
    cell = dict(zip(head, rows[0], strict=True))
    assert cell["model"] == "llama-2-7b" and cell["devices"] == "256" and cell["hardware"] == "a100-80gb"
    table = csv_rows(outputs["csv"])
    assert len(table) == 1
    assert int(table[0]["devices"]) == 256 and int(table[0]["params"]) == doc["model"]["params"]
    assert float(table[0]["device_hours"]) == pytest.approx(doc["time"]["device_hours"], rel=1e-3)


def test_compare_has_one_row_per_hardware(saved):
    path, outputs = saved["compare"]
    shipped = strict_json(run("hardware", "list", "--format", "json").stdout)
    (head, rows), *_ = markdown_tables(outputs["markdown"])
    assert len(rows) == len(shipped) and head[1] == "hardware"
    assert {r[1] for r in rows} == {h["id"] for h in shipped}
    table = csv_rows(outputs["csv"])
    assert [r["hardware"] for r in table] == [r[1] for r in rows]  # same ranking in both
    assert sorted(int(r["rank"]) for r in table) == list(range(1, len(shipped) + 1))


def test_plan_csv_has_one_row_per_pareto_point_and_marks_the_best(saved):
    path, outputs = saved["plan"]
    doc = strict_json(path.read_text())
    table = csv_rows(outputs["csv"])
    assert len(table) == len(doc["pareto"]) > 0
    assert [r["best"] for r in table].count("true") == 1
    (head, rows), *_ = markdown_tables(outputs["markdown"])
    assert 0 < len(rows) <= len(doc["pareto"]) and [r[0] for r in rows].count("*") == 1


def test_validate_has_one_row_per_run(saved):
    path, outputs = saved["validate"]
    doc = strict_json(path.read_text())
    runs = doc["summary"]["runs"]
    assert len(csv_rows(outputs["csv"])) == runs == len(doc["rows"])
    (head, rows), *_ = markdown_tables(outputs["markdown"])
    assert len(rows) == runs and head[:2] == ["run", "target"]


def test_sweep_has_one_row_per_device_count(saved):
    path, outputs = saved["sweep"]
    table = csv_rows(outputs["csv"])
    assert [int(r["devices"]) for r in table] == [8, 16, 32, 64]  # the powers of two in 8..64
    (head, rows), *_ = markdown_tables(outputs["markdown"])
    assert [r[0] for r in rows] == ["8", "16", "32", "64"]


# --- bad files: one line, exit 2, nothing on stdout -----------------------------------------------------------


def test_bad_files_are_one_line_and_exit_2(tmp_path, saved, one_line_error):
    listing = tmp_path / "hardware.json"
    listing.write_text(run("hardware", "list", "--format", "json").stdout)
    not_json = tmp_path / "estimate.md"
    not_json.write_text(saved["estimate"][1]["markdown"])
    unknown = tmp_path / "unknown.json"
    unknown.write_text(json.dumps({"report": "forecast", "schema_version": "1.0"}))
    doc = strict_json(saved["estimate"][0].read_text())
    doc["time"]["wall_clock_seconds"] = "a week"
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps(doc))
    future = tmp_path / "future.json"
    future.write_text(json.dumps({**strict_json(saved["estimate"][0].read_text()), "schema_version": "9.0"}))
    cases = [
        (tmp_path / "missing.json", "no such file"),
        (not_json, "not JSON"),
        (listing, "not a flopcast report"),
        (unknown, "unknown report kind 'forecast'"),
        (tampered, "time.wall_clock_seconds"),
        (future, "schema version 9.0"),
    ]
    for path, needle in cases:
        result = run("report", path)
        one_line_error(result, 2, needle)
        assert result.stdout == ""


def test_report_output_refuses_to_overwrite_without_force(tmp_path, saved, one_line_error):
    target = tmp_path / "estimate.md"
    assert run("report", saved["estimate"][0], "-f", "markdown", "-o", target).exit_code == 0
    first = target.read_text()
    one_line_error(run("report", saved["estimate"][0], "-f", "csv", "-o", target), 2, "--force")
    assert target.read_text() == first
    assert run("report", saved["estimate"][0], "-f", "csv", "-o", target, "--force").exit_code == 0
    assert target.read_text() == saved["estimate"][1]["csv"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["estimate.md"]  # no temporary file left behind


# --- JSON on stdout is only JSON; no ANSI codes outside a terminal --------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        COMMANDS["estimate"], COMMANDS["sweep"], COMMANDS["compare"], COMMANDS["plan"], COMMANDS["size"],
        COMMANDS["serve"], ["hardware", "list"], ["hardware", "show", "h100"], ["models", "list"],
        ["models", "show", "llama-2-7b"], ["schema"],
    ],
    ids=lambda a: " ".join(a[:2]),
)  # fmt: skip
def test_format_json_prints_only_json(args):
    result = run(*args, "--format", "json")
    assert result.exit_code == 0, result.stderr
    strict_json(result.stdout)  # the whole of stdout parses
    assert not ANSI.search(result.stdout + result.stderr)


def test_no_ansi_codes_unless_forced_and_never_in_a_file(tmp_path):
    args = COMMANDS["estimate"]
    forced = run(*args, env={"FORCE_COLOR": "1"})
    assert ANSI.search(forced.stdout), "FORCE_COLOR=1 should colour a pipe (proves the check can see codes)"
    assert not ANSI.search(run(*args).stdout)  # a pipe: plain
    assert not ANSI.search(run(*args, env={"NO_COLOR": "1", "FORCE_COLOR": "1"}).stdout)  # NO_COLOR wins
    target = tmp_path / "estimate.txt"
    assert run(*args, "-o", target, env={"FORCE_COLOR": "1"}).exit_code == 0
    text = target.read_text()
    assert "Estimate: llama-2-7b" in text and not ANSI.search(text)


def test_pipes_keep_unicode_boxes_and_term_dumb_gets_ascii():
    args = COMMANDS["compare"]
    assert BOX_DRAWING.search(run(*args).stdout)
    dumb = run(*args, env={"TERM": "dumb"}).stdout
    assert not BOX_DRAWING.search(dumb) and not ANSI.search(dumb)
    assert "+--" in dumb and "| h100-80gb" in dumb.replace("|  ", "| ")


def test_piped_tables_are_at_most_120_columns():
    for kind in ("estimate", "sweep", "compare", "serve"):
        widths = [len(line) for line in run(*COMMANDS[kind]).stdout.splitlines()]
        assert max(widths) <= 120, (kind, max(widths))


def test_written_reports_are_readable_by_others_and_overwrites_keep_their_mode(tmp_path):
    """A report is for sharing: a new file gets 0666 less the umask (not tempfile's private 0600)."""
    import os

    old = os.umask(0o022)
    try:
        target = tmp_path / "estimate.json"
        assert run(*COMMANDS["estimate"], "-f", "json", "-o", target, "-q").exit_code == 0
        assert target.stat().st_mode & 0o777 == 0o644
        target.chmod(0o600)  # the owner made it private: --force keeps that
        assert run(*COMMANDS["estimate"], "-f", "csv", "-o", target, "-q", "--force").exit_code == 0
        assert target.stat().st_mode & 0o777 == 0o600
    finally:
        os.umask(old)
