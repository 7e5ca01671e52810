"""Whole-process time of `flopcast estimate --format json` vs `python -c "import numpy, pydantic, yaml"`.

DESIGN §8 bar (restated): the estimate takes at most 2.5× the bare import, and flopcast's own share at most
0.5× of it. To show where the time goes, two more
programs are timed alongside, both doing no work of flopcast's:

* stack: ``import numpy, pydantic, yaml, typer; from pydantic import BaseModel`` — what any program on
  flopcast's stack imports before it can define a single report or profile model (``import pydantic``
  alone is lazy and loads almost nothing);
* one model: the stack plus one pydantic model with one field, validated and dumped to JSON — the least a
  program with pydantic reports does;
* null app: a typer app with the same options as ``estimate`` (names, flags and annotations read from
  flopcast's own command) whose command does nothing, run with the same arguments — what parsing the
  command line costs. typer ≥ 0.29 builds a pydantic TypeAdapter per option while parsing.

``flopcast's own share`` is estimate minus the null app: loading flopcast's modules and profiles, the
estimate itself and writing the JSON.

All commands run N times as fresh subprocesses, interleaved (so that load on the machine hits them alike);
prints the medians and their ratios to the baseline, and the fastest run of each (the one least disturbed
by other load). Modules load from bytecode, as in an installed package: the subprocesses run without
PYTHONDONTWRITEBYTECODE and with PYTHONPYCACHEPREFIX pointing at a temporary directory (nothing is written
into the source tree); a first, untimed run of each fills that cache.

    python benchmarks/estimate_startup.py [-n 15]
"""

from __future__ import annotations

import argparse
import enum
import inspect
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import typing
from pathlib import Path

BAR = 2.5  # whole process, × the baseline (DESIGN §8)
OWN_SHARE_BAR = 0.5  # estimate − null app, × the baseline (DESIGN §8)
BASELINE = "import numpy, pydantic, yaml"
STACK = "import numpy, pydantic, yaml, typer; from pydantic import BaseModel"
ONE_MODEL = STACK + "\nclass Report(BaseModel):\n    x: int\nReport(x=1).model_dump_json()"
ARGS = [
    "estimate",
    "--model",
    "llama-2-7b",
    "--tokens",
    "2T",
    "--hardware",
    "a100-80gb",
    "--devices",
    "256",
    "--format",
    "json",
]


def _type_text(hint) -> str:
    """A type as source text for the null app: ``str | None``, ``list[Path] | None``, ``OutputFormat``."""
    text = hint.__name__ if isinstance(hint, type) else str(hint)
    return re.sub(r"\b(?:[A-Za-z_]\w*\.)+([A-Za-z_]\w*)", r"\1", text)  # pathlib.Path -> Path


def null_app_source() -> str:
    """A do-nothing typer app whose ``estimate`` command has flopcast's options, annotations and defaults."""
    import typer.main

    from flopcast.cli import app

    command = typer.main.get_command(app).commands["estimate"]
    params = {p.name: p for p in command.params}
    hints = typing.get_type_hints(command.callback)  # Annotated[T, typer.Option(...)] -> T
    enums: dict[str, type[enum.Enum]] = {}
    lines = []
    for name, sig in inspect.signature(command.callback).parameters.items():
        option = params[name]
        decls = ["/".join(option.opts + option.secondary_opts)] if option.secondary_opts else option.opts
        default = sig.default  # Annotated style: the signature holds the default itself ...
        if isinstance(default, typer.models.ParameterInfo):  # ... older style: `= typer.Option(default, ...)`
            default = default.default
        if isinstance(default, enum.Enum):
            enums[type(default).__name__] = type(default)
            default_text = f"{type(default).__name__}.{default.name}"
        else:
            default_text = repr(default)
        flags = ", ".join(map(repr, decls))
        lines.append(f"    {name}: {_type_text(hints[name])} = typer.Option({default_text}, {flags}),")
    enum_defs = [
        f"class {cls_name}(str, enum.Enum):\n" + "".join(f"    {m.name} = {m.value!r}\n" for m in cls)
        for cls_name, cls in enums.items()
    ]
    return "\n".join(
        [
            "from __future__ import annotations",
            "import enum",
            "from pathlib import Path",
            "import numpy, pydantic, yaml, typer",
            *enum_defs,
            "app = typer.Typer()",
            "@app.command('estimate')",
            "def estimate(",
            *lines,
            ") -> None:",
            "    print('{}')",
            "@app.command('other')",
            "def other() -> None:",
            "    pass",
            "app()",
            "",
        ]
    )


def _time(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=15, help="runs of each command (default 15)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="flopcast-startup-") as tmp:
        stub = Path(tmp) / "null_app.py"
        stub.write_text(null_app_source(), encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "pycache")
        commands = {
            f'baseline  python -c "{BASELINE}"': [sys.executable, "-c", BASELINE],
            "stack     + typer, from pydantic import BaseModel": [sys.executable, "-c", STACK],
            "one model stack + one 1-field pydantic model": [sys.executable, "-c", ONE_MODEL],
            "null app  typer, estimate's options, no work": [sys.executable, str(stub), *ARGS],
            "flopcast  estimate --format json": [sys.executable, "-m", "flopcast", *ARGS],
        }
        for cmd in commands.values():  # warm the page cache and fill the bytecode cache
            _time(cmd, env)
        runs: dict[str, list[float]] = {label: [] for label in commands}
        for _ in range(args.n):
            for label, cmd in commands.items():
                runs[label].append(_time(cmd, env))
    medians = {label: statistics.median(times) for label, times in runs.items()}
    fastest = {label: min(times) for label, times in runs.items()}
    base, base_min = next(iter(medians.values())), next(iter(fastest.values()))
    print(f"{args.n} interleaved runs each{'':33s} median  ratio    fastest  ratio")
    for label, median in medians.items():
        print(
            f"{label:58s} {median * 1e3:7.1f} ms {median / base:5.2f}x "
            f"{fastest[label] * 1e3:7.1f} ms {fastest[label] / base_min:5.2f}x"
        )
    est, null = "flopcast  estimate --format json", "null app  typer, estimate's options, no work"
    own, own_min = medians[est] - medians[null], fastest[est] - fastest[null]
    print(
        f"ratio {medians[est] / base:.2f} (bar ≤ {BAR}); flopcast's own share (estimate − null app) "
        f"{own * 1e3:.0f} ms = {own / base:.2f}x of the baseline (bar ≤ {OWN_SHARE_BAR}; fastest runs: "
        f"{own_min * 1e3:.0f} ms = {own_min / base_min:.2f}x)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
