"""The one exception hierarchy of flopcast.

The core raises only these; the CLI turns each into a single line on stderr and an exit code
(DESIGN §7): 1 runtime failure, 2 bad usage or input, 3 no feasible plan, 130 interrupted.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_RUNTIME = 1
EXIT_USAGE = 2
EXIT_INFEASIBLE = 3
EXIT_INTERRUPTED = 130


class FlopcastError(Exception):
    """Base class. ``message`` says what is wrong; ``hint`` says how to fix it (optional)."""

    exit_code: int = EXIT_RUNTIME

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        """The single line the CLI prints: the problem, then the fix."""
        text = self.message.replace("\n", " ").strip()
        if self.hint:
            text = f"{text} ({self.hint.replace(chr(10), ' ').strip()})"
        return text


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
