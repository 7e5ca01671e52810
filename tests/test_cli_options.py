"""Shared options are declared once, in flopcast.cli.options, each with its help text.

Read from the click command tree typer builds (typer.main.get_command), so what is checked is what the
user gets: a flag that two or more commands take must come from flopcast.cli.options in every one of them.
"""

from __future__ import annotations

import typing
from collections import defaultdict

import typer
import typer.main
import typer.models

from flopcast.cli import COMMAND_MODULES, app, options


def declared() -> dict[str, typer.models.OptionInfo]:
    """Every option alias of flopcast.cli.options: name -> the typer.Option inside its Annotated."""
    out = {}
    # the layout record's flags are declared once in options.LAYOUT_OPTIONS (one per field, `with_layout_options`)
    named = {**vars(options), **{f"LAYOUT_OPTIONS[{k}]": v for k, v in options.LAYOUT_OPTIONS.items()}}
    for name, value in named.items():
        if typing.get_origin(value) is typing.Annotated:
            infos = [m for m in value.__metadata__ if isinstance(m, typer.models.OptionInfo)]
            assert len(infos) == 1, name
            out[name] = infos[0]
    return out


def commands():
    """(path, click command) for every command that runs (groups excluded)."""

    def walk(cmd, path):
        group = getattr(cmd, "commands", None)
        if group:
            for name in cmd.list_commands(None):
                yield from walk(group[name], [*path, name])
        else:
            yield " ".join(path), cmd

    return list(walk(typer.main.get_command(app), []))


def option_sources():
    """(command, flag, from options.py?) for every option of every command."""
    shared = {id(info) for info in declared().values()}
    out = []
    for path, cmd in commands():
        hints = typing.get_type_hints(cmd.callback, include_extras=True)
        for param in cmd.params:
            if param.param_type_name != "option":
                continue
            hint = hints.get(param.name)
            metadata = getattr(hint, "__metadata__", ()) if typing.get_origin(hint) is typing.Annotated else ()
            from_options = any(id(m) in shared for m in metadata)
            for flag in (*param.opts, *param.secondary_opts):
                if flag.startswith("--") and flag != "--help":
                    out.append((path, flag, from_options))
    return out


def test_every_shared_option_has_help():
    infos = declared()
    assert {"Model", "Tokens", "Hardware", "Devices", "Format", "Output", "Quiet", "Plot"} <= set(infos)
    empty = [name for name, info in infos.items() if not (info.help or "").strip()]
    assert not empty, f"options without help: {empty}"


def test_a_flag_two_commands_take_is_declared_in_options_py():
    sources = option_sources()
    by_flag = defaultdict(set)
    for path, flag, _ in sources:
        by_flag[flag].add(path)
    local = sorted(
        f"`flopcast {path}` {flag}"
        for path, flag, from_options in sources
        if not from_options and len(by_flag[flag]) > 1
    )
    assert not local, "declare these in flopcast/cli/options.py: " + ", ".join(local)


def test_no_command_redeclares_a_flag_of_options_py():
    flags_in_options = {flag for _, flag, from_options in option_sources() if from_options}
    local = sorted(
        f"`flopcast {path}` {flag}"
        for path, flag, from_options in option_sources()
        if not from_options and flag in flags_in_options
    )
    assert not local, "use the option of flopcast/cli/options.py: " + ", ".join(local)


def test_every_declared_option_is_used():
    used = set()
    for _, cmd in commands():
        hints = typing.get_type_hints(cmd.callback, include_extras=True)
        used |= {id(m) for h in hints.values() for m in getattr(h, "__metadata__", ())}
    unused = [name for name, info in declared().items() if id(info) not in used]
    assert not unused, f"options.py declares options no command takes: {unused}"


def test_the_lazy_loader_knows_one_module_per_command():
    assert COMMAND_MODULES["compare"] == "flopcast.cli.compare_cmd"
    assert COMMAND_MODULES["plan"] == "flopcast.cli.plan_cmd"
    assert COMMAND_MODULES["size"] == "flopcast.cli.size_cmd"
    training = [COMMAND_MODULES[c] for c in ("estimate", "compare", "plan", "size", "serve")]
    assert len(set(training)) == len(training)
