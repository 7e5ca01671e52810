"""Hardening (issue 8): fuzz the parsers that read what people type and the files they write.

Contract: whatever the text, only a :class:`~flopcast.errors.FlopcastError` escapes (the CLI turns it into one
line and an exit code); ``hardware.profile_problems`` never raises at all, and every problem it reports has
the ``file:line: field: message`` shape. Inputs: st.text(), number-like text, random YAML trees dumped with
PyYAML, and mutations (structural and byte-level) of a real shipped profile.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from flopcast.errors import FlopcastError, InvalidProfile
from flopcast.hardware import load_catalog, load_profile, profile_problems, shipped_profiles_dir
from flopcast.units import (
    MAX_QUANTITY,
    MIN_POSITIVE_QUANTITY,
    parse_bandwidth,
    parse_bytes,
    parse_count,
    parse_duration,
    parse_int,
    parse_usd,
)
from flopcast.yamlsafe import read_yaml

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PARSERS = [parse_count, parse_int, parse_bytes, parse_bandwidth, parse_duration, parse_usd]
PROBLEM = re.compile(r"^.+?:\d+: (?!: ).+?: .+$")  # file:line: field: message (a field is never empty)

# Text that looks like a number: digits, separators, exponents, signs, currency and unit letters.
number_like = st.from_regex(
    r"\A[ +\-$]{0,2}[0-9.,_]{0,8}([eE][+\-]?[0-9]{0,4})?[ ]?(k|K|M|G|B|T|P|E|Ki|Mi|Gi|Ti|Pi)?"
    r"(B|b|iB)?(/s|s|min|h|d|w|y|USD)?[ ]?\Z",
    fullmatch=True,
)
texts = st.one_of(st.text(max_size=30), number_like)


# --- the unit parser ------------------------------------------------------------------------------------------------


def _check_parsed(parser, value) -> None:
    if parser is parse_int:
        assert isinstance(value, int) and 0 < value < 2**62
    else:
        assert isinstance(value, float) and math.isfinite(value)
        assert MIN_POSITIVE_QUANTITY <= value <= MAX_QUANTITY


@FUZZ
@given(parser=st.sampled_from(PARSERS), text=texts)
@example(parser=parse_count, text="1e400")
@example(parser=parse_count, text="5e-324")
@example(parser=parse_usd, text="$-0")
@example(parser=parse_bandwidth, text="1e5000TB/s")
@example(parser=parse_duration, text="\x00")
@example(parser=parse_count, text="٣")  # a non-ASCII digit that float() would accept
def test_unit_parsers_return_a_sane_number_or_raise_flopcast_error(parser, text):
    try:
        value = parser(text, what="--x")
    except FlopcastError as exc:
        line = exc.one_line()
        assert "\n" not in line and line.startswith("--x")
        return
    _check_parsed(parser, value)


@FUZZ
@given(parser=st.sampled_from(PARSERS), value=st.one_of(st.floats(), st.integers(), st.booleans()))
def test_unit_parsers_take_numbers_too(parser, value):
    try:
        parsed = parser(value, what="--x")
    except FlopcastError:
        return
    _check_parsed(parser, parsed)


@FUZZ
@given(x=st.floats(min_value=MIN_POSITIVE_QUANTITY, max_value=MAX_QUANTITY))
def test_a_printed_float_reads_back_exactly(x):
    assert parse_count(repr(x)) == x
    assert parse_count(f"{x:e}") == pytest.approx(x, rel=1e-6)


@FUZZ
@given(text=texts)
def test_model_hardware_and_mfu_names_raise_only_flopcast_errors(text):
    from flopcast.model_resolve import resolve_model
    from flopcast.request import parse_mfu

    for call in (
        lambda: resolve_model(text),
        lambda: parse_mfu(text),
        lambda: CATALOG.get(text),
        lambda: resolve_model(None, layers=text, d_model="64", heads="4"),
    ):
        try:
            call()
        except FlopcastError as exc:
            assert "\n" not in exc.one_line()


CATALOG = load_catalog()


# --- the profile loader ---------------------------------------------------------------------------------------------

SHIPPED = sorted(shipped_profiles_dir().glob("*.yaml"))
SHIPPED_DATA = [yaml.safe_load(p.read_text()) for p in SHIPPED]


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz") / "profile.yaml"


def _check_file(path: Path) -> None:
    """profile_problems never raises; the loaders raise only InvalidProfile; problems are file:line lines."""
    profile, problems = profile_problems(path)
    assert (profile is None) == bool(problems)
    for line in problems:
        assert PROBLEM.match(line) and line.startswith(str(path)) and "\n" not in line, line
    try:
        load_profile(path)
    except InvalidProfile as exc:
        assert profile is None and "\n" not in exc.one_line()
    else:
        assert profile is not None
    try:
        read_yaml(path)
    except InvalidProfile as exc:
        assert "\n" not in exc.one_line()


@FUZZ
@given(text=st.text(max_size=400))
@example(text="a: &a [1]\nb: [*a, *a]\n")
@example(text="x: " + "[" * 5000 + "]" * 5000)
@example(text="id: !!python/object/apply:os.system ['true']\n")
@example(text="? [a, b]\n: 1\n")
@example(text="a: 1\na: 2\n")
@example(text="---\n...\n---\n")
def test_random_text_as_a_profile(scratch, text):
    scratch.write_text(text, encoding="utf-8")
    _check_file(scratch)


@FUZZ
@given(data=st.binary(max_size=300))
def test_random_bytes_as_a_profile(scratch, data):
    scratch.write_bytes(data)
    _check_file(scratch)


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    st.text(max_size=12),
    st.dates(),
)
trees = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(st.text(max_size=8), st.integers()), children, max_size=4),
    ),
    max_leaves=20,
)


@FUZZ
@given(tree=trees)
def test_random_yaml_trees_as_a_profile(scratch, tree):
    scratch.write_text(yaml.safe_dump(tree, allow_unicode=True), encoding="utf-8")
    _check_file(scratch)


KEYS = ["id", "name", "kind", "peak_flops_per_s", "bf16", "memory_bytes", "sources", "prices_usd_per_device_hour"]


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, (*prefix, i))


def _parent(doc, path):
    node = doc
    for p in path[:-1]:
        node = node[p]
    return node


@FUZZ
@given(
    which=st.integers(0, len(SHIPPED_DATA) - 1),
    edits=st.lists(
        st.tuples(
            st.sampled_from(["set", "delete", "rename", "add"]), st.integers(0, 10**6), st.one_of(scalars, trees)
        ),
        min_size=1,
        max_size=4,
    ),
)
def test_mutated_shipped_profiles(scratch, which, edits):
    """Change, delete, rename or add fields of a real profile: every result is a valid profile or named problems."""
    import copy

    doc = copy.deepcopy(SHIPPED_DATA[which])
    for op, pick, value in edits:
        paths = [p for p in _paths(doc) if p]
        if not paths:
            break
        path = paths[pick % len(paths)]
        parent, key = _parent(doc, path), path[-1]
        if op == "set":
            parent[key] = value
        elif op == "delete":
            del parent[key]
        elif op == "rename" and isinstance(parent, dict):
            parent[KEYS[pick % len(KEYS)] + str(pick % 3)] = parent.pop(key)
        elif op == "add" and isinstance(parent, dict):
            parent[KEYS[pick % len(KEYS)]] = value
    scratch.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    _check_file(scratch)


@FUZZ
@given(
    which=st.integers(0, len(SHIPPED) - 1),
    flips=st.lists(st.tuples(st.integers(0, 10**6), st.binary(min_size=0, max_size=3)), min_size=1, max_size=5),
)
def test_byte_mutations_of_shipped_profiles(scratch, which, flips):
    data = bytearray(SHIPPED[which].read_bytes())
    for pos, new in flips:
        at = pos % (len(data) + 1)
        data[at : at + 1] = new  # replace one byte by 0–3 bytes (deletes, substitutes, inserts)
    scratch.write_bytes(bytes(data))
    _check_file(scratch)


def test_a_profile_folder_of_fuzzed_files_fails_with_one_line(cli, tmp_path):
    """Through the CLI: a --profiles folder with a broken file is one line naming file:line, exit 2."""
    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "a.yaml").write_bytes(SHIPPED[0].read_bytes().replace(b":", b"", 3))
    result = cli("hardware", "list", "--profiles", folder)
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert str(folder / "a.yaml") in result.stderr and "Traceback" not in result.stderr


# --- the CLI with random option values ------------------------------------------------------------------------------

OPTIONS = ["--tokens", "--devices", "--hardware", "--model", "--mfu", "--price-per-hour", "--seq-len", "--zero"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(option=st.sampled_from(OPTIONS), value=texts)
def test_estimate_with_random_option_values(option, value):
    from typer.testing import CliRunner

    from flopcast.cli import app

    assume("\x00" not in value)  # a NUL cannot be passed in a real argv
    args = {"--model": "llama-2-7b", "--tokens": "2T", "--devices": "8", option: value}
    argv = ["estimate", *[x for kv in args.items() for x in kv], "--format", "json", "--quiet"]
    result = CliRunner().invoke(app, argv)
    assert "Traceback" not in result.stderr
    if result.exit_code == 0:
        assert result.stderr == "" and result.stdout.startswith("{")
    else:
        assert result.exit_code == 2, (result.exit_code, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1 and result.stdout == ""
