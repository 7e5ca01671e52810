#!/usr/bin/env python3
"""Refit the efficiency model's constants on the published runs and print them with the residual summary.

    python scripts/refit_efficiency.py            # fit, leave-one-group-out, print; writes nothing
    python scripts/refit_efficiency.py --write    # ... and store the result in flopcast/data/efficiency_fit.json
    python scripts/refit_efficiency.py --no-logo  # quick look: the fit and its in-sample errors only

Data: the shipped runs (``flopcast/data/published_runs.csv`` and ``holdout_runs.csv``), or the files given
with ``--runs FILE`` (repeatable); the frozen held-out source families (``flopcast/data/holdout_families.json``)
are never fitted, only predicted. Needs scipy: ``pip install -e ".[fit]"``. The fit itself is
:mod:`flopcast.calibration.fit`; this script only reads the arguments, prints and writes.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from flopcast.calibration.fit import refit, write_fit
from flopcast.calibration.runs import load_runs, shipped_runs_paths
from flopcast.estimator.efficiency import FIT_FILE
from flopcast.hardware import load_catalog


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true", help=f"store the fit in flopcast/data/{FIT_FILE}")
    ap.add_argument(
        "--runs", type=Path, action="append", default=None, help="CSV of runs to fit (repeatable; default: shipped)"
    )
    ap.add_argument("--no-logo", action="store_true", help="skip leave-one-group-out (quick look; never --write)")
    args = ap.parse_args(argv)
    if args.write and args.no_logo:
        ap.error("--write needs the leave-one-group-out check (it sets the P10-P90 band): drop --no-logo")
    catalog = load_catalog()
    files = {path: load_runs(path) for path in args.runs or shipped_runs_paths()}
    result = refit(files, catalog, held_out=not args.no_logo)
    print("fitted:", json.dumps({k: round(v, 4) for k, v in result.values.items()}))
    print("std error:", json.dumps({k: round(v, 4) for k, v in result.info.std_error.items()}))
    print("on a bound:", ", ".join(result.info.on_bound) or "none")
    for p in result.predictions:
        print(
            f"  {p.run.run_id:32s} {p.run.family:20s} {p.run.target:17s} reported {p.run.target_value:<10.4g} "
            f"predicted {p.predicted:<10.4g} {p.error:+.1%}"
        )
    print("in-sample:", json.dumps(result.in_sample))
    if result.document is None:
        return 0
    for fam, s in result.document["leave_one_group_out"].items():
        if fam != "all":
            print(f"  held out {fam:20s}: median |err| {s['median_abs_error']:.1%}, max {s['max_abs_error']:.1%}")
    print(
        "leave-one-group-out (fit families):",
        result.held_out_summary,
        f"residual P10 {result.residual_p10:+.3f} P90 {result.residual_p90:+.3f}",
    )
    for p in result.frozen or []:
        print(f"  frozen holdout {p.run.run_id:32s} {p.error:+.1%} {'in' if p.covered else 'OUT of'} P10-P90")
    print("frozen holdout (the claim):", result.document["held_out"])
    if args.write:
        print(f"wrote {write_fit(result.document)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
