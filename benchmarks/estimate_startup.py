"""Whole-process time of `flopcast estimate --format json` vs `python -c "import numpy, pydantic, yaml"`.

DESIGN §8 bar: the estimate takes at most 1.5× the bare import. Both commands run N times as fresh
subprocesses, interleaved (so that load on the machine hits both alike); prints the medians and the ratio.

Modules load from bytecode, as in an installed package: the subprocesses run without
PYTHONDONTWRITEBYTECODE and with PYTHONPYCACHEPREFIX pointing at a temporary directory (so nothing is
written into the source tree); the first, untimed run of each command fills that cache.

    python benchmarks/estimate_startup.py [-n 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

BASELINE = [sys.executable, "-c", "import numpy, pydantic, yaml"]
ESTIMATE = [
    sys.executable,
    "-m",
    "flopcast",
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
BAR = 1.5


def _time(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=15, help="runs of each command (default 15)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="flopcast-pycache-") as cache:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = cache
        _time(BASELINE, env), _time(ESTIMATE, env)  # warm the page cache and fill the bytecode cache
        base, est = [], []
        for _ in range(args.n):
            base.append(_time(BASELINE, env))
            est.append(_time(ESTIMATE, env))
    b, e = statistics.median(base), statistics.median(est)
    print(f"import numpy, pydantic, yaml : median {b * 1e3:7.1f} ms over {args.n} runs")
    print(f"flopcast estimate --format json: median {e * 1e3:7.1f} ms over {args.n} runs")
    print(f"ratio {e / b:.2f} (bar ≤ {BAR})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
