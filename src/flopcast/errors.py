"""The one exception hierarchy of flopcast.

The core raises only these; the CLI turns each into a single line on stderr and an exit code
(DESIGN §7): 1 runtime failure, 2 bad usage or input, 3 no feasible plan, 130 interrupted.
"""

from __future__ import annotations

import re

EXIT_OK = 0
EXIT_RUNTIME = 1
EXIT_USAGE = 2
EXIT_INFEASIBLE = 3
EXIT_INTERRUPTED = 130


_OPTION_MARK = "\x1f"
_OPTION = re.compile(f"{_OPTION_MARK}([A-Za-z0-9_]+){_OPTION_MARK}")


def opt(name: str) -> str:
    """An option named inside a message or hint: the library shows its keyword (``micro_batch``), the CLI
    its flag (``--micro-batch``). Library code never spells a CLI flag itself (DESIGN §1)."""
    return f"{_OPTION_MARK}{name}{_OPTION_MARK}"


ECHO_MAX = 60  # characters of a value the user gave that an error message repeats
_LONG = f"{{{ECHO_MAX + 1},}}"
_QUOTED = re.compile(f"'([^'\\n]{_LONG})'|\"([^\"\\n]{_LONG})\"")


def shorten_echoes(text: str) -> str:
    """``text`` with every quoted value longer than ECHO_MAX characters cut to its start and "…": a
    100,000-character ``--model`` must not come back whole in a one-line error."""

    def cut(m: re.Match) -> str:
        quote = "'" if m.group(1) is not None else '"'
        value = m.group(1) if m.group(1) is not None else m.group(2)
        return f"{quote}{value[: ECHO_MAX - 1]}…{quote} ({len(value):,} characters)"

    return _QUOTED.sub(cut, text)


def keyword_style(name: str) -> str:
    return name


def flag_style(name: str) -> str:
    return "--" + name.replace("_", "-")


def render_options(text: str | None, style=keyword_style) -> str | None:
    """``text`` with every :func:`opt` marker written in ``style``."""
    return None if text is None else _OPTION.sub(lambda m: style(m.group(1)), text)


class FlopcastError(Exception):
    """Base class. ``message`` says what is wrong; ``hint`` says how to fix it (optional). Options named with
    :func:`opt` read as keywords here and as flags in :meth:`one_line` with ``flag_style``."""

    exit_code: int = EXIT_RUNTIME

    def __init__(self, message: str, hint: str | None = None):
        self.raw_message, self.raw_hint = message, hint
        self.message = render_options(message)
        self.hint = render_options(hint)
        super().__init__(self.message)

    def one_line(self, style=keyword_style) -> str:
        """The single line to print: the problem, then the fix (the CLI passes ``flag_style``)."""
        text = render_options(self.raw_message, style).replace("\n", " ").strip()
        if self.hint:
            text = f"{text} ({render_options(self.raw_hint, style).replace(chr(10), ' ').strip()})"
        return shorten_echoes(text)


class UsageError(FlopcastError):
    """Bad usage or input: exit 2."""

    exit_code = EXIT_USAGE


class InvalidValue(UsageError):
    """A value the user gave cannot be parsed or is out of range."""


class ConflictingOptions(UsageError):
    """Two options that cannot be used together, or that disagree."""


class UnknownHardware(UsageError):
    """No hardware profile has this id or alias."""


class UnknownModel(UsageError):
    """No model preset has this id."""


class InvalidProfile(UsageError):
    """A hardware profile file is malformed. ``problems`` holds ``file:line: field: message`` lines."""

    def __init__(self, message: str, problems: list[str] | None = None, hint: str | None = None):
        super().__init__(message, hint)
        self.problems = problems or [message]


class InvalidLayout(UsageError):
    """A parallel layout that is not valid for the model or the device count."""


class RuntimeFailure(FlopcastError):
    """Something failed while running (I/O, measurement): exit 1."""


class BrokenInstall(RuntimeFailure):
    """A data file that ships with flopcast (e.g. the efficiency fit) is missing or unreadable: exit 1."""


class Infeasible(FlopcastError):
    """No plan meets the constraints: exit 3. ``near_misses`` lists the closest options."""

    exit_code = EXIT_INFEASIBLE

    def __init__(self, message: str, hint: str | None = None, near_misses: list | None = None):
        super().__init__(message, hint)
        self.near_misses = near_misses or []


class Interrupted(FlopcastError):
    """Ctrl-C: exit 130."""

    exit_code = EXIT_INTERRUPTED
