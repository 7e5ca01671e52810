"""Speed of `serve --plan` (issue 17 item 4: the default plan answers in under 2 s, whole process).

Prints the median wall time of the whole `flopcast serve --plan --model M --ttft 500ms --tpot 50ms
--request-rate 20 --format json` command in a fresh process over several runs (the default search: every GPU
profile with a price × every weight format × tensor parallel × replicas up to 64 devices), and how many
configurations it searched.

Run:  .venv/bin/python benchmarks/serve_plan_speed.py [--runs 5] [--model llama-3.1-8b] [--request-rate 20]
Pinned to one core (taskset where available) and one BLAS/OpenMP thread, as benchmarks/plan_speed.py is.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
TARGET_SECONDS = 2.0


def command(model: str, rate: str, ttft: str, tpot: str) -> list[str]:
    cmd = [sys.executable, "-m", "flopcast", "serve", "--plan", "--model", model, "--ttft", ttft, "--tpot", tpot,
           "--request-rate", rate, "--format", "json"]  # fmt: skip
    if sys.platform.startswith("linux") and hasattr(os, "sched_getaffinity"):
        cmd = ["taskset", "-c", str(min(os.sched_getaffinity(0))), *cmd]
    return cmd


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--model", default="llama-3.1-8b")
    parser.add_argument("--request-rate", default="20")
    parser.add_argument("--ttft", default="500ms")
    parser.add_argument("--tpot", default="50ms")
    args = parser.parse_args()
    cmd = command(args.model, args.request_rate, args.ttft, args.tpot)
    env = {**os.environ, **ONE_THREAD}
    first = subprocess.run(cmd, capture_output=True, env=env, text=True, check=False)  # warms the file cache
    if first.returncode not in (0, 3):
        sys.exit(f"serve --plan failed (exit {first.returncode}): {first.stderr.strip()}")
    report = json.loads(first.stdout)
    times = []
    for _ in range(args.runs):
        start = time.perf_counter()
        subprocess.run(cmd, capture_output=True, env=env, check=False)
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    shown = " ".join(c for c in cmd[cmd.index("-m") + 1 :] if c != "flopcast")
    print(f"`flopcast {shown}` (whole process, one core):")
    print(
        f"  {report['configurations_searched']:,} configurations on {len(report['inputs']['hardware'])} hardware, "
        f"feasible: {report['feasible']}"
    )
    print(
        f"  wall time: median {median:.2f} s over {len(times)} runs (min {min(times):.2f}, max {max(times):.2f}); "
        f"target < {TARGET_SECONDS} s: {'OK' if median < TARGET_SECONDS else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
