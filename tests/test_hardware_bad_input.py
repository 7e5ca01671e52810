"""Bad profiles and bad ids: one line on stderr, exit 2, no traceback (DESIGN §7, §8 'errors').

Each bad file is checked two ways: loaded through the catalogue (`--profiles DIR`: one line naming
``file:line``) and through `hardware validate` (every problem as ``file:line: field: message``).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from flopcast.hardware import shipped_profiles_dir

PROBLEM_LINE = re.compile(r"^(?P<file>.+?):(?P<line>\d+): (?P<field>\S+): (?P<message>.+)$")

VALID = """\
id: test-gpu
name: Test GPU
kind: gpu
peak_flops_per_s:
  bf16: 1.0e15
memory_bytes: 8.0e10
memory_bandwidth_bytes_per_s: 2.0e12
sources: ["test fixture"]
"""


def _write(tmp_path: Path, text: str | bytes, name: str = "bad.yaml") -> Path:
    folder = tmp_path / "profiles"
    folder.mkdir(exist_ok=True)
    path = folder / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def _validate(cli, path: Path) -> list[re.Match]:
    """Run `hardware validate`; check exit 2 and the shape of every line; return the parsed problems."""
    result = cli("hardware", "validate", path)
    assert result.exit_code == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("flopcast: ") and "problem(s)" in lines[-1]
    matches = [PROBLEM_LINE.match(line) for line in lines[:-1]]
    assert matches and all(matches), lines
    assert all(m["file"] == str(path) for m in matches)
    return matches


def _load(cli, one_line_error, path: Path, *fragments: str) -> str:
    """Load the folder holding ``path`` as --profiles: one line, exit 2, naming the file."""
    result = cli("hardware", "show", "h100", "--profiles", path.parent)
    return one_line_error(result, 2, str(path), *fragments)


def test_valid_fixture_is_valid(cli, tmp_path):
    path = _write(tmp_path, VALID, "ok.yaml")
    result = cli("hardware", "validate", path)
    assert result.exit_code == 0 and "1 profile(s) valid" in result.stdout


def test_every_shipped_profile_validates(cli):
    result = cli("hardware", "validate", *sorted(shipped_profiles_dir().glob("*.yaml")))
    assert result.exit_code == 0, result.stderr
    result = cli("hardware", "validate", shipped_profiles_dir())  # a folder stands for its profiles
    assert result.exit_code == 0, result.stderr


# --- unknown ids ---------------------------------------------------------------------------------------------


def test_unknown_id_suggests_the_closest(cli, one_line_error):
    line = one_line_error(cli("hardware", "show", "h100-80g"), 2, "unknown hardware", "h100-80gb")
    assert line.startswith("flopcast: error:")


@pytest.mark.parametrize(("name", "ids"), [("a100", ("a100-40gb", "a100-80gb")), ("v100", ("v100-16gb", "v100-32gb"))])
def test_ambiguous_name_suggests_both_sizes(cli, one_line_error, name, ids):
    one_line_error(cli("hardware", "show", name), 2, f"hardware '{name}' is ambiguous", *ids)  # as README says


def test_unrelated_id_points_to_the_list(cli, one_line_error):
    one_line_error(cli("hardware", "show", "zzzzzzzz"), 2, "flopcast hardware list")


# --- malformed or hostile files -------------------------------------------------------------------------------


def test_malformed_yaml_reports_its_line(cli, one_line_error, tmp_path):
    path = _write(tmp_path, "id: x\nname: X\nkind: [gpu\nmemory_bytes: 1\n")
    (match,) = _validate(cli, path)
    assert match["field"] == "(yaml)" and "malformed YAML" in match["message"]
    assert "line 3" in match["message"]  # the flow list opened on line 3 was never closed
    _load(cli, one_line_error, path, "(yaml)", "malformed YAML")


def test_bad_indentation_reports_the_line(cli, tmp_path):
    path = _write(tmp_path, "id: x\nname: X\n  kind: gpu\n")
    (match,) = _validate(cli, path)
    assert match["line"] == "3" and match["field"] == "(yaml)"


@pytest.mark.parametrize(
    ("replace", "by", "field", "line", "message"),
    [
        ("bf16: 1.0e15", "bf16: -1.0e15", "peak_flops_per_s.bf16", 5, "greater than 0"),
        ("memory_bytes: 8.0e10", "memory_bytes: 0", "memory_bytes", 6, "greater than 0"),
        ("memory_bytes: 8.0e10\n", "", "memory_bytes", 1, "required field is missing"),
        ("memory_bytes: 8.0e10", "memory_byte: 8.0e10", "memory_byte", 6, "unknown key (did you mean memory_bytes?)"),
        ("memory_bytes: 8.0e10", "memory_bytes: yes", "memory_bytes", 6, "expected a number, got true"),
        ("memory_bytes: 8.0e10", "memory_bytes: .inf", "memory_bytes", 6, "finite number"),
        ("memory_bytes: 8.0e10", "memory_bytes: 80 gigs", "memory_bytes", 6, "valid number"),
        ("kind: gpu", "kind: fpga", "kind", 3, "'gpu', 'tpu', 'cpu' or 'accelerator'"),
        ('sources: ["test fixture"]', "sources: []", "sources", 8, "at least 1 item"),
        ("  bf16: 1.0e15", "  bf17: 1.0e15", "peak_flops_per_s.bf17", 5, "did you mean bf16?"),
        ("id: test-gpu", "id: Test GPU", "id", 1, "must be lower-case letters"),
        ("kind: gpu", "kind: gpu\naliases: [Big GPU]", "aliases", 4, "must be lower-case"),
        ("  bf16: 1.0e15", "  bf16: null", "peak_flops_per_s", 4, "at least one dtype"),
    ],
)
def test_schema_problem_names_field_and_line(cli, one_line_error, tmp_path, replace, by, field, line, message):
    assert replace in VALID
    path = _write(tmp_path, VALID.replace(replace, by))
    matches = _validate(cli, path)
    hits = [m for m in matches if m["field"] == field]
    assert hits, [m.group(0) for m in matches]
    assert int(hits[0]["line"]) == line and message in hits[0]["message"]
    _load(cli, one_line_error, path, field)


def test_all_problems_of_a_file_are_listed_in_line_order(cli, tmp_path):
    text = VALID.replace("bf16: 1.0e15", "bf16: -1").replace("memory_bytes: 8.0e10", "memory_bytes: 0")
    path = _write(tmp_path, text + "colour: red\n")
    matches = _validate(cli, path)
    assert [(m["line"], m["field"]) for m in matches] == [
        ("5", "peak_flops_per_s.bf16"), ("6", "memory_bytes"), ("9", "colour"),
    ]  # fmt: skip


def test_catalogue_error_counts_the_other_problems(cli, one_line_error, tmp_path):
    path = _write(
        tmp_path, VALID.replace("bf16: 1.0e15", "bf16: -1").replace("memory_bytes: 8.0e10", "memory_bytes: 0")
    )
    _load(cli, one_line_error, path, "(and 1 more)", "flopcast hardware validate")


@pytest.mark.parametrize(
    ("content", "field", "message"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "(file)", "not a YAML text file"),
        (b"\x00\x01\x02binary\x00", "(file)", "binary content"),
        ("- a\n- list\n", "(file)", "must be a YAML mapping"),
        ("just a sentence\n", "(file)", "must be a YAML mapping"),
        ("", "(file)", "the file is empty"),
        ("# only a comment\n", "(file)", "the file is empty"),
    ],
    ids=["png", "nul-bytes", "list", "scalar", "empty", "comment-only"],
)
def test_not_a_profile_at_all(cli, one_line_error, tmp_path, content, field, message):
    path = _write(tmp_path, content)
    (match,) = _validate(cli, path)
    assert match["line"] == "1" and match["field"] == field and message in match["message"]
    _load(cli, one_line_error, path, message)


def test_python_object_tag_is_refused_and_never_run(cli, one_line_error, tmp_path):
    marker = tmp_path / "pwned"
    path = _write(tmp_path, f'id: x\nname: !!python/object/apply:os.system ["touch {marker}"]\n')
    (match,) = _validate(cli, path)
    assert match["line"] == "2" and "Python object tags are refused" in match["message"]
    _load(cli, one_line_error, path, "Python object tags are refused")
    assert not marker.exists()


def test_yaml_alias_bomb_is_refused_without_expanding(cli, one_line_error, tmp_path):
    # "billion laughs": 9 levels of 9 references = 9^9 (387 million) leaves if expanded
    levels = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, 9):
        levels.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    path = _write(tmp_path, "\n".join(levels) + "\n")
    (match,) = _validate(cli, path)
    assert match["line"] == "2" and "aliases" in match["message"]  # the first *alias is on line 2
    _load(cli, one_line_error, path, "aliases")


def test_any_alias_is_refused(cli, tmp_path):
    path = _write(tmp_path, VALID + "notes: [&n 'x', *n]\n")
    (match,) = _validate(cli, path)
    assert match["line"] == "9" and "aliases" in match["message"]


def test_duplicate_key_is_refused(cli, tmp_path):
    path = _write(tmp_path, VALID + "memory_bytes: 9.0e10\n")
    (match,) = _validate(cli, path)
    assert match["line"] == "9" and "written twice" in match["message"]


def test_absurd_nesting_is_refused(cli, tmp_path):
    path = _write(tmp_path, VALID + "notes: " + "[" * 60 + "]" * 60 + "\n")
    (match,) = _validate(cli, path)
    assert "nested deeper" in match["message"]


def test_validate_reports_missing_file_in_the_same_shape(cli, tmp_path):
    path = tmp_path / "nope.yaml"
    (match,) = _validate(cli, path)
    assert match["field"] == "(file)" and "does not exist" in match["message"]


# --- bad places -------------------------------------------------------------------------------------------------


def test_profiles_dir_that_does_not_exist(cli, one_line_error, tmp_path):
    missing = tmp_path / "no-such-dir"
    one_line_error(cli("hardware", "list", "--profiles", missing), 2, str(missing), "does not exist", "--profiles")


def test_env_profiles_dir_that_does_not_exist(cli, one_line_error, tmp_path, monkeypatch):
    missing = tmp_path / "no-such-dir"
    monkeypatch.setenv("FLOPCAST_PROFILES", str(missing))
    one_line_error(cli("hardware", "list"), 2, str(missing), "does not exist", "$FLOPCAST_PROFILES")


def test_profiles_dir_that_is_a_file(cli, one_line_error, tmp_path):
    path = _write(tmp_path, VALID, "ok.yaml")
    one_line_error(cli("hardware", "list", "--profiles", path), 2, "is not a directory")


def test_two_files_with_the_same_id(cli, one_line_error, tmp_path):
    _write(tmp_path, VALID, "a.yaml")
    second = _write(tmp_path, "# the same id again\n" + VALID, "b.yaml")
    line = one_line_error(cli("hardware", "list", "--profiles", second.parent), 2, f"{second}:2: id:", "a.yaml")
    assert "'test-gpu'" in line


def test_debug_shows_the_traceback(cli, tmp_path):
    result = cli("--debug", "hardware", "show", "zzzzzzzz")
    assert result.exit_code != 0 and result.exception is not None
