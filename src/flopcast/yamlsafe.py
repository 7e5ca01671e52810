"""Safe YAML reading with line numbers: no Python tags, no aliases (no YAML bombs), bounded size.

Returns the plain data *and* a map from key path to the line it was written on, so validation
problems can be reported as ``file:line: field: message``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from flopcast.errors import InvalidProfile

MAX_YAML_FILE_BYTES = 1_000_000  # a profile is a few kB; anything this big is not one
MAX_YAML_DEPTH = 20


class _NoAliasLoader(yaml.SafeLoader):
    """SafeLoader that refuses anchors/aliases: they are the vector of 'billion laughs' bombs."""

    def compose_node(self, parent, index):  # type: ignore[override]
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, "YAML aliases (*name) are not allowed in flopcast files", event.start_mark
            )
        return super().compose_node(parent, index)


def _lines(node: yaml.Node, path: tuple, out: dict[tuple, int], depth: int = 0) -> None:
    if depth > MAX_YAML_DEPTH:
        raise yaml.YAMLError(f"nesting deeper than {MAX_YAML_DEPTH} levels")
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            out[path + (key,)] = key_node.start_mark.line + 1
            _lines(value_node, path + (key,), out, depth + 1)
            out[path + (key,)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _lines(item, path + (i,), out, depth + 1)


def read_yaml(path: Path) -> tuple[Any, dict[tuple, int]]:
    """Read ``path`` safely; return ``(data, lines)``. Raises :class:`InvalidProfile` on any problem."""
    try:
        if path.is_dir():
            raise InvalidProfile(f"{path}: is a directory, not a YAML file", hint="give a .yaml file")
        size = path.stat().st_size
        if size > MAX_YAML_FILE_BYTES:
            raise InvalidProfile(f"{path}:1: file is {size} bytes, larger than {MAX_YAML_FILE_BYTES}")
        raw = path.read_bytes()
    except OSError as exc:
        raise InvalidProfile(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidProfile(f"{path}:1: not a YAML text file (not UTF-8)", hint="give a .yaml profile") from None
    if "\x00" in text:
        raise InvalidProfile(f"{path}:1: not a YAML text file (binary content)", hint="give a .yaml profile")
    loader = _NoAliasLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise InvalidProfile(f"{path}:1: the file is empty", hint="a profile needs at least id, name, kind")
        lines: dict[tuple, int] = {}
        _lines(node, (), lines)
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        problem = (exc.problem or exc.context or "malformed YAML").strip()
        if "python/" in problem or "could not determine a constructor" in problem:
            problem = f"{problem} (Python object tags are refused: flopcast reads YAML safely)"
        raise InvalidProfile(f"{path}:{line}: malformed YAML: {problem}") from None
    except yaml.YAMLError as exc:
        raise InvalidProfile(f"{path}:1: malformed YAML: {exc}") from None
    except RecursionError:
        raise InvalidProfile(f"{path}:1: malformed YAML: nested too deeply") from None
    finally:
        loader.dispose()
    return data, lines
