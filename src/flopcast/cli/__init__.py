"""The command-line interface. Only this package imports typer and rich.

Each command lives in its own module and registers itself on the typer app in :mod:`flopcast.cli._app`.
Every error the core raises (:class:`~flopcast.errors.FlopcastError`) or that click raises for bad usage
becomes one line on stderr and an exit code (DESIGN §7); ``--debug`` (anywhere on the line) shows the
traceback.

Start-up time matters (``flopcast estimate`` must cost at most 1.5x importing numpy, pydantic and yaml), so
:func:`main` imports only the module of the command on the command line; ``flopcast.cli.app`` (used by
tests and shell completion) loads them all.
"""

from __future__ import annotations

import os
import sys
from importlib import import_module

# Top-level command -> the module that registers it (one module per command; the order is --help's).
COMMAND_MODULES: dict[str, str] = {
    "estimate": "flopcast.cli.estimate_cmd",
    "validate": "flopcast.cli.validate_cmd",
    "calibrate": "flopcast.cli.calibrate_cmd",
    "hardware": "flopcast.cli.hardware_cmd",
    "models": "flopcast.cli.models_cmd",
    "serve": "flopcast.cli.serve_cmd",
    "bench": "flopcast.cli.bench_cmd",
    "compare": "flopcast.cli.compare_cmd",
    "plan": "flopcast.cli.plan_cmd",
    "size": "flopcast.cli.size_cmd",
    "report": "flopcast.cli.report_cmd",
    "schema": "flopcast.cli.schema_cmd",
}

# pydantic scans installed plugins when its first model class is built (~30 ms); a CLI run needs none.
PYDANTIC_PLUGINS_ENV = "PYDANTIC_DISABLE_PLUGINS"


def _import(modules) -> None:
    for module in dict.fromkeys(modules):
        import_module(module)


def load_commands(argv: list[str] | None = None):
    """Register the commands needed for ``argv`` (all of them when it names none) and return the app."""
    from flopcast.cli._app import app

    words = [a for a in (argv or []) if not a.startswith("-")]
    wanted = COMMAND_MODULES.get(words[0]) if words else None
    asks_help = any(a in ("--help", "-h") for a in argv or [])
    completing = "_FLOPCAST_COMPLETE" in os.environ
    if wanted is not None and not asks_help and not completing:
        _import([wanted])
    else:
        _import(COMMAND_MODULES.values())
    return app


def __getattr__(name: str):
    if name == "app":
        return load_commands(None)
    raise AttributeError(f"module 'flopcast.cli' has no attribute {name!r}")


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    os.environ.setdefault(PYDANTIC_PLUGINS_ENV, "__all__")
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        app = load_commands(args)
    except KeyboardInterrupt:  # Ctrl-C while the command's modules load: one line, no traceback
        from flopcast.errors import EXIT_INTERRUPTED

        sys.stderr.write("flopcast: interrupted\n")
        sys.exit(EXIT_INTERRUPTED)
    app(args=args, prog_name="flopcast")
