"""Speed of the planner (DESIGN §6/§8: ≥ 1,000,000 layouts/s on one core; a default `plan` in ≤ 2 s).

Prints, for the default search (every shipped profile, default device counts, no constraints):
* the search's layouts per second (layouts evaluated / search seconds), median of several runs;
* the whole `flopcast plan ... --format json` command's wall time in a fresh process, median of several runs.

Run:  .venv/bin/python benchmarks/plan_speed.py [--runs 5] [--model llama-2-7b] [--tokens 2T]
Pinned to one core (taskset where available) and one BLAS/OpenMP thread, as the target says "one core".
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
os.environ.update(ONE_THREAD)

TARGET_LAYOUTS_PER_S = 1_000_000
TARGET_PLAN_SECONDS = 2.0


def _pin_to_one_core() -> str:
    if hasattr(os, "sched_setaffinity"):
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        return f"pinned to CPU {cpu}"
    return "not pinned (no sched_setaffinity)"


def search_speed(model: str, tokens: str, runs: int) -> tuple[float, list[float], object]:
    from flopcast.model_resolve import resolve_model
    from flopcast.planner import search
    from flopcast.request import resolve_hardware_list
    from flopcast.units import parse_count

    spec = resolve_model(model)
    profiles = resolve_hardware_list(None)
    rates, result = [], None
    search(spec, profiles, parse_count(tokens))  # warm-up (imports, fit file, caches)
    for _ in range(runs):
        result = search(spec, profiles, parse_count(tokens))
        rates.append(result.layouts_evaluated / result.seconds)
    return statistics.median(rates), rates, result


def command_seconds(model: str, tokens: str, runs: int) -> tuple[float, list[float]]:
    cmd = [sys.executable, "-m", "flopcast", "plan", "--model", model, "--tokens", tokens, "--format", "json"]
    env = {**os.environ, **ONE_THREAD}
    if sys.platform.startswith("linux") and hasattr(os, "sched_getaffinity"):
        cmd = ["taskset", "-c", str(min(os.sched_getaffinity(0)))] + cmd
    subprocess.run(cmd, capture_output=True, env=env, check=True)  # warm the file cache
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, capture_output=True, env=env, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--model", default="llama-2-7b")
    parser.add_argument("--tokens", default="2T")
    args = parser.parse_args()
    pinned = _pin_to_one_core()
    rate, rates, result = search_speed(args.model, args.tokens, args.runs)
    print(f"planner search, {args.model} on {args.tokens} tokens, every shipped profile ({pinned}):")
    print(
        f"  layouts evaluated per run: {result.layouts_evaluated:,} ({result.layouts_feasible:,} feasible), "
        f"{result.device_counts:,} (hardware, device count) pairs, up to {result.max_devices} devices"
    )
    print(
        f"  layouts/s: median {rate:,.0f} over {len(rates)} runs "
        f"(min {min(rates):,.0f}, max {max(rates):,.0f}); target ≥ {TARGET_LAYOUTS_PER_S:,}: "
        f"{'OK' if rate >= TARGET_LAYOUTS_PER_S else 'MISSED'}"
    )
    seconds, all_seconds = command_seconds(args.model, args.tokens, args.runs)
    print(f"`flopcast plan --model {args.model} --tokens {args.tokens} --format json` (whole process):")
    print(
        f"  wall time: median {seconds:.2f} s over {len(all_seconds)} runs "
        f"(min {min(all_seconds):.2f}, max {max(all_seconds):.2f}); target ≤ {TARGET_PLAN_SECONDS} s: "
        f"{'OK' if seconds <= TARGET_PLAN_SECONDS else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
