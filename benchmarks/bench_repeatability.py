"""Repeatability of `flopcast bench --quick` (DESIGN §8 "bench" and "local loop" bars).

Runs ``flopcast bench --quick --format json`` twice as separate processes and prints, for each run, the
fitted peak per dtype, the fitted bandwidth, the fitted-vs-direct-GEMM ratio, the verify error and the
wall time; then the relative difference between the two runs.

Targets: repeat difference ≤ 5 % (peaks and bandwidth); fitted peak within 10 % of the direct GEMM;
verify error within ±15 % (DESIGN) / ±10 % (issue); whole `--quick` process ≤ 15 s.

Usage:  python benchmarks/bench_repeatability.py [--threads N] [--runs N] [--default]
Timings depend on what else the machine is doing: run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

REPEAT_TARGET = 0.05
GEMM_TARGET = 0.10
VERIFY_TARGET = 0.15
QUICK_SECONDS_TARGET = 15.0


def run_bench(extra: list[str]) -> tuple[dict, float]:
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "flopcast", "bench", "--format", "json", "--quiet", *extra],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"flopcast bench failed ({proc.returncode}): {proc.stderr.strip()}")
    return json.loads(proc.stdout), wall


def describe(label: str, doc: dict, wall: float) -> None:
    roof = doc["roofline"]
    peaks = ", ".join(f"{d} {v / 1e9:.1f} GFLOP/s" for d, v in roof["peak_flops_per_s"].items())
    ratios = ", ".join(f"{d} {g['fitted_over_gemm']:.3f}" for d, g in doc["gemm_check"].items())
    verify = doc.get("verify")
    busy = doc.get("other_cpu_share")
    busy_text = "" if busy is None else f"; other programs used {busy:.0%} of the CPU time"
    print(f"{label}: wall {wall:.1f} s (bench {doc['elapsed_seconds']:.1f} s{busy_text})")
    print(f"  peaks: {peaks}; bandwidth {roof['bandwidth_bytes_per_s'] / 1e9:.2f} GB/s")
    print(f"  fitted / direct GEMM: {ratios} (target within {GEMM_TARGET:.0%})")
    if verify:
        runs = ", ".join(f"{r['dtype']} {r['regime']} {r['error']:+.1%}" for r in verify["runs"])
        print(
            f"  verify: predicted {verify['predicted_seconds']:.3f} s, measured {verify['measured_seconds']:.3f} s, "
            f"error {verify['error']:+.1%} (target ±{VERIFY_TARGET:.0%}); per run: {runs}"
        )
    noisy = [w for w in doc["warnings"] if "spread" in w]
    if noisy:
        print(f"  note: {noisy[0]}")


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", help="passed to flopcast bench --threads")
    parser.add_argument("--runs", type=int, default=2, help="number of --quick runs (≥ 2)")
    parser.add_argument("--default", action="store_true", help="also time one default (full) run")
    args = parser.parse_args()
    extra = ["--threads", args.threads] if args.threads else []
    docs = []
    for i in range(max(2, args.runs)):
        doc, wall = run_bench(["--quick", *extra])
        describe(f"--quick run {i + 1}", doc, wall)
        docs.append((doc, wall))
    a, b = docs[0][0]["roofline"], docs[1][0]["roofline"]
    print("repeat difference (run 2 / run 1 − 1):")
    worst = 0.0
    for dtype in a["peak_flops_per_s"]:
        diff = b["peak_flops_per_s"][dtype] / a["peak_flops_per_s"][dtype] - 1
        worst = max(worst, abs(diff))
        print(f"  peak {dtype}: {diff:+.1%}")
    diff = b["bandwidth_bytes_per_s"] / a["bandwidth_bytes_per_s"] - 1
    worst = max(worst, abs(diff))
    print(f"  bandwidth: {diff:+.1%}")
    ratios = [g["fitted_over_gemm"] for d, _ in docs for g in d["gemm_check"].values()]
    errors = [d["verify"]["error"] for d, _ in docs if d.get("verify")]
    walls = [w for _, w in docs]
    print("summary:")
    print(f"  repeat difference ≤ {REPEAT_TARGET:.0%}: worst {worst:.1%} {verdict(worst <= REPEAT_TARGET)}")
    worst_gemm = max(abs(r - 1) for r in ratios)
    print(f"  fitted within {GEMM_TARGET:.0%} of GEMM: worst {worst_gemm:.1%} {verdict(worst_gemm <= GEMM_TARGET)}")
    if errors:
        worst_v = max(abs(e) for e in errors)
        print(f"  verify error within ±{VERIFY_TARGET:.0%}: worst {worst_v:.1%} {verdict(worst_v <= VERIFY_TARGET)}")
    print(
        f"  --quick ≤ {QUICK_SECONDS_TARGET:.0f} s: slowest {max(walls):.1f} s "
        f"{verdict(max(walls) <= QUICK_SECONDS_TARGET)}"
    )
    if args.default:
        doc, wall = run_bench(extra)
        describe("default run", doc, wall)


if __name__ == "__main__":
    main()
