"""The typer application and its error handling (see flopcast.cli for the entry point)."""

from __future__ import annotations

import io
import os
import sys
import warnings

import typer
from typer.core import TyperGroup

from flopcast._version import __version__
from flopcast.cli._clickcompat import click
from flopcast.errors import EXIT_INTERRUPTED, EXIT_RUNTIME, EXIT_USAGE, FlopcastError, flag_style, shorten_echoes

DEBUG_FLAG = "--debug"
ENV_DEBUG = "FLOPCAST_DEBUG"


def _say(line: str) -> None:
    try:
        from flopcast.cli.common import ascii_safe

        sys.stderr.write(ascii_safe(f"flopcast: {line}\n", sys.stderr))
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def _detach_stdout() -> None:
    """Point file descriptor 1 at /dev/null, so that Python's own flush at exit has nowhere left to fail."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _reopen_closed_streams() -> io.StringIO | None:
    """`flopcast ... >&-` starts Python with sys.stdout None (`2>&-`: sys.stderr). Give them somewhere to go;
    stdout becomes a buffer, so that a result with nowhere to go is reported (exit 1) instead of lost silently."""
    if sys.stderr is None:
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
    if sys.stdout is None:
        sys.stdout = io.StringIO()
        return sys.stdout
    return None


def _os_error_line(exc: OSError) -> str:
    """One line for an OSError nobody caught: what failed, and a fix that fits the cause (not always the disk)."""
    import errno

    where = f" ({exc.filename})" if exc.filename else ""
    if exc.errno in (errno.EACCES, errno.EPERM):
        fix = f"check the permissions of {exc.filename}" if exc.filename else "check the permissions"
    elif exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC), errno.EFBIG):
        fix = "free space or choose another --output"
    elif exc.errno in (errno.ENOENT, errno.ENOTDIR):
        fix = "check the path"
    else:
        fix = "check the path and the device, or rerun with --debug"
    return f"input/output failed{where}: {exc.strerror or exc} ({fix})"


COMPLETION_SHELLS = ("bash", "zsh", "fish", "powershell", "pwsh")
COMPLETE_VAR = "_FLOPCAST_COMPLETE"


def _completion_request(argv: list[str]) -> tuple[str, str] | None:
    """``("--show-completion", "zsh")`` when the line names a shell for --show/--install-completion.

    typer detects the running shell and reads such a flag as a bare switch, so `--show-completion zsh` from
    bash printed the bash script; a shell named on the line wins."""
    for i, arg in enumerate(argv):
        flag, eq, value = arg.partition("=")
        if flag not in ("--show-completion", "--install-completion"):
            continue
        if not eq:
            value = argv[i + 1] if i + 1 < len(argv) else ""
        if value.lower() in COMPLETION_SHELLS:
            return flag, value.lower()
    return None


def _completion(flag: str, shell: str, prog_name: str) -> int:
    from typer._completion_shared import get_completion_script, install

    if flag == "--show-completion":
        click.echo(get_completion_script(prog_name=prog_name, complete_var=COMPLETE_VAR, shell=shell))
        return 0
    shell, path = install(shell=shell, prog_name=prog_name, complete_var=COMPLETE_VAR)
    click.echo(f"{shell} completion installed in {path}")
    click.echo("Completion will take effect once you restart the terminal")
    return 0


class _StderrNotes:
    """A logging handler that writes to whatever sys.stderr is when a note comes (tests swap the stream)."""

    level = 0

    def handle(self, record) -> None:
        _say(f"debug: {record.getMessage()}")


def _debug_notes():
    """Show the library's debug notes (logger "flopcast") on stderr for this run; returns the handler."""
    import logging

    logger = logging.getLogger("flopcast")
    logger.handlers = [h for h in logger.handlers if not isinstance(h, _StderrNotes)]
    handler = _StderrNotes()
    logger.addHandler(handler)  # type: ignore[arg-type]  # duck-typed: handle() and level are all logging uses
    logger.setLevel(logging.DEBUG)
    return handler


class FlopcastGroup(TyperGroup):
    """Runs a command and turns every failure into one line and an exit code."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):  # noqa: D401
        argv = list(sys.argv[1:] if args is None else args)
        debug = DEBUG_FLAG in argv or bool(os.environ.get(ENV_DEBUG))
        argv = [a for a in argv if a != DEBUG_FLAG]
        lost = _reopen_closed_streams()
        asked = _completion_request(argv)
        if asked is not None:
            code = _completion(*asked, prog_name=prog_name or "flopcast")
            if standalone_mode:
                sys.exit(code)
            return code
        notes = _debug_notes() if debug else None  # the library's debug notes, e.g. "no user config dir"
        code = 0
        try:
            with warnings.catch_warnings():
                if not debug:  # e.g. a numpy RuntimeWarning: more lines on stderr break the one-line contract
                    warnings.simplefilter("ignore")
                result = super().main(
                    args=argv,
                    prog_name=prog_name or "flopcast",
                    complete_var=complete_var,
                    standalone_mode=False,
                    **extra,
                )
            code = result if isinstance(result, int) else 0
            if code == EXIT_INTERRUPTED:  # typer turns KeyboardInterrupt into a silent Exit(130)
                _say("interrupted")
        except FlopcastError as exc:
            if debug:
                raise
            _say(f"error: {exc.one_line(flag_style)}")
            code = exc.exit_code
        except click.exceptions.NoArgsIsHelpError as exc:
            click.echo(exc.ctx.get_help() if exc.ctx else "", err=True)
            code = EXIT_USAGE
        except click.exceptions.ClickException as exc:
            if debug:
                raise
            where = (
                f" (see `flopcast {exc.ctx.command_path.partition(' ')[2]} --help`)".replace("  ", " ")
                if getattr(exc, "ctx", None) is not None
                else ""
            )
            first = exc.format_message().splitlines()[0] if exc.format_message() else str(exc)
            _say(f"error: {shorten_echoes(first)}{where}")
            code = exc.exit_code if exc.exit_code else EXIT_USAGE
        except typer.Exit as exc:
            code = exc.exit_code
        except (KeyboardInterrupt, typer.Abort):
            _say("interrupted")
            code = EXIT_INTERRUPTED
        except BrokenPipeError:
            # the reader went away (e.g. `| head -1`): stop quietly, never a traceback; exit 1 like Python's own
            _detach_stdout()
            code = EXIT_RUNTIME
        except OSError as exc:  # the system refused I/O (a full disk, a closed stream): a runtime failure, not a bug
            if debug:
                raise
            _say(f"error: {_os_error_line(exc)}")
            _detach_stdout()
            code = EXIT_RUNTIME
        except Exception as exc:  # a bug: say so in one line unless debugging
            if debug:
                raise
            _say(f"internal error: {type(exc).__name__}: {exc} (rerun with --debug and report it)")
            code = EXIT_RUNTIME
        if lost is not None and lost.getvalue():
            _say("error: standard output is closed, so the result could not be printed (give --output FILE)")
            code = code or EXIT_RUNTIME
        try:
            sys.stdout.flush()
        except BrokenPipeError:  # the same as a broken pipe while writing: quiet, exit 1
            _detach_stdout()
            code = code or EXIT_RUNTIME
        except OSError as exc:  # e.g. `> /dev/full`: the data did not get out
            _say(f"error: cannot write the output: {exc.strerror or exc} (free space or give --output FILE)")
            _detach_stdout()
            code = code or EXIT_RUNTIME
        except ValueError:
            pass
        if notes is not None:
            import logging

            logging.getLogger("flopcast").removeHandler(notes)
        if standalone_mode:
            sys.exit(code)
        return code


app = typer.Typer(
    cls=FlopcastGroup,
    name="flopcast",
    help="Plan compute for training and serving deep-learning models: does it fit, how long, how much.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"flopcast {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
    debug: bool = typer.Option(
        False, DEBUG_FLAG, help="Show the full traceback on errors (for developers; also FLOPCAST_DEBUG=1)."
    ),
) -> None:
    """flopcast: FLOPs, memory, time, cost and energy for training and serving."""
