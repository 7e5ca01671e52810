"""Safe YAML reading: no Python tags, no aliases (no YAML bombs), bounded size and depth, line numbers.

Parsing uses libyaml's C parser when PyYAML was built with it (about 10x faster than the pure-Python one;
the catalogue of profiles is read on every ``flopcast estimate``), else PyYAML's pure-Python parser. Either
way the document is *composed* into nodes first and checked before anything is constructed:

- an alias (``*name``) shows up as a node reached twice; it is refused (aliases are the vector of
  "billion laughs" bombs, and no flopcast file needs them);
- nesting deeper than :data:`MAX_YAML_DEPTH` is refused;
- a key written twice in one mapping is refused (YAML would silently keep the last one);
- construction uses PyYAML's *safe* constructor, so ``!!python/object`` and friends are refused.

Line numbers (key path → line) are computed only when asked for, i.e. when a problem must be reported as
``file:line: field: message``.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from flopcast.errors import InvalidProfile

MAX_YAML_FILE_BYTES = 1_000_000  # a profile is a few kB; anything this big is not one
MAX_YAML_DEPTH = 20  # a profile nests 3 levels; 20 leaves room for any sane data file

# libyaml's C parser with PyYAML's safe constructor, when available.
_SAFE_LOADER: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

YAML_FIELD = "(yaml)"  # the field name used in `file:line: field: message` for problems with the YAML itself
FILE_FIELD = "(file)"  # ... and for problems with the file as a whole


class YamlDocument:
    """The data of one YAML file and, on demand, the line each key path was written on (1-based)."""

    def __init__(self, data: Any, node: yaml.Node):
        self.data = data
        self._node = node

    @cached_property
    def lines(self) -> dict[tuple, int]:
        out: dict[tuple, int] = {}
        _collect_lines(self._node, (), out)
        return out

    def line_of(self, loc: tuple) -> int:
        """Line of the deepest prefix of ``loc`` that exists in the file (1 when none does)."""
        lines = self.lines
        for cut in range(len(loc), -1, -1):
            if loc[:cut] in lines:
                return lines[loc[:cut]]
        return 1


def _collect_lines(node: yaml.Node, path: tuple, out: dict[tuple, int]) -> None:
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            _collect_lines(value_node, path + (key,), out)
            out[path + (key,)] = key_node.start_mark.line + 1  # the key's line, not its value's
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _collect_lines(item, path + (i,), out)


def _problem(path: Path, line: int, message: str, field: str = YAML_FIELD, hint: str | None = None) -> InvalidProfile:
    text = f"{path}:{line}: {field}: {message}"
    return InvalidProfile(text, problems=[f"{text} ({hint})" if hint else text], hint=hint)  # validate shows hints


def _check_tree(path: Path, root: yaml.Node, text: str) -> None:
    """Refuse aliases, over-deep nesting and duplicate keys, iteratively (a bomb never gets expanded)."""
    seen: set[int] = set()
    stack: list[tuple[yaml.Node, int, int]] = [(root, 0, root.start_mark.line + 1)]
    while stack:
        node, depth, where = stack.pop()
        if id(node) in seen:
            raise _problem(
                path,
                _first_alias_line(text) or where,
                "YAML aliases (*name) are not allowed in flopcast files",
                hint="write the value out in full",
            )
        seen.add(id(node))
        if depth > MAX_YAML_DEPTH:
            raise _problem(path, node.start_mark.line + 1, f"nested deeper than {MAX_YAML_DEPTH} levels")
        if isinstance(node, yaml.MappingNode):
            keys: set = set()
            for key_node, value_node in node.value:
                key_line = key_node.start_mark.line + 1
                if not isinstance(key_node, yaml.ScalarNode):
                    raise _problem(path, key_line, "a key must be a plain value, not a list or mapping")
                if key_node.value in keys:
                    raise _problem(
                        path,
                        key_line,
                        f"key {key_node.value!r} is written twice in the same mapping",
                        hint="keep one of them",
                    )
                keys.add(key_node.value)
                stack.append((key_node, depth + 1, key_line))
                stack.append((value_node, depth + 1, key_line))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, depth + 1, item.start_mark.line + 1) for item in node.value)


def _first_alias_line(text: str) -> int | None:
    """The 1-based line of the first ``*alias`` (parse events only: nothing is expanded)."""
    for event in yaml.parse(text, Loader=_SAFE_LOADER):
        if isinstance(event, yaml.AliasEvent):
            return event.start_mark.line + 1
    return None


def _read_text(path: Path) -> str:
    try:
        if path.is_dir():
            raise _problem(path, 1, "is a directory, not a YAML file", FILE_FIELD, hint="give a .yaml file")
        size = path.stat().st_size
        if size > MAX_YAML_FILE_BYTES:
            raise _problem(path, 1, f"file is {size} bytes, larger than {MAX_YAML_FILE_BYTES}", FILE_FIELD)
        with path.open("rb") as handle:  # bounded: /dev/zero and pipes report a size of 0
            raw = handle.read(MAX_YAML_FILE_BYTES + 1)
        if len(raw) > MAX_YAML_FILE_BYTES:
            raise _problem(path, 1, f"file is larger than {MAX_YAML_FILE_BYTES} bytes", FILE_FIELD)
    except OSError as exc:
        raise _problem(path, 1, f"cannot read: {exc.strerror or exc}", FILE_FIELD) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _problem(path, 1, "not a YAML text file (not UTF-8)", FILE_FIELD, hint="give a .yaml file") from None
    if "\x00" in text:
        raise _problem(path, 1, "not a YAML text file (binary content)", FILE_FIELD, hint="give a .yaml file")
    return text


def load_yaml(path: Path) -> YamlDocument:
    """Read ``path`` safely. Raises :class:`InvalidProfile` (message ``file:line: field: problem``)."""
    text = _read_text(path)
    loader = _SAFE_LOADER(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise _problem(path, 1, "the file is empty", FILE_FIELD, hint="a profile needs at least id, name, kind")
        _check_tree(path, node, text)
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        problem = " ".join((exc.problem or exc.context or "malformed YAML").split())
        if exc.problem and exc.context and exc.context_mark and exc.context_mark.line + 1 != line:
            problem += f" ({' '.join(exc.context.split())} that starts on line {exc.context_mark.line + 1})"
        if "python/" in problem or "could not determine a constructor" in problem:
            problem = f"{problem} (Python object tags are refused: flopcast reads YAML safely)"
        hint = None
        if "tab character" in problem:
            hint = f"YAML indents with spaces only: replace the tab on line {line} with spaces"
        elif "mapping values are not allowed" in problem:
            hint = "quote a value that holds ': ' (name: \"A: B\"), or indent nested keys with spaces"
        raise _problem(path, line, f"malformed YAML: {problem}", hint=hint) from None
    except yaml.YAMLError as exc:
        raise _problem(path, 1, f"malformed YAML: {' '.join(str(exc).split())}") from None
    except RecursionError:  # pure-Python parser on absurd nesting
        raise _problem(path, 1, "malformed YAML: nested too deeply") from None
    finally:
        loader.dispose()
    return YamlDocument(data, node)


def read_yaml(path: Path) -> tuple[Any, dict[tuple, int]]:
    """Read ``path`` safely; return ``(data, lines)``. Raises :class:`InvalidProfile` on any problem."""
    doc = load_yaml(path)
    return doc.data, doc.lines
