#!/usr/bin/env bash
# Regenerate the example figures in docs/images/ (README "Reports you can share"). Needs matplotlib:
#   pip install ".[plot]"
# The estimate, sweep, compare, plan and validate figures depend only on flopcast's data and model; the
# roofline is measured on the machine that runs this script (`flopcast bench --quick`).
set -euo pipefail
cd "$(dirname "$0")/.."
out=docs/images
mkdir -p "$out"
flopcast estimate --model llama-2-70b --tokens 2T --hardware a100-80gb --devices 1024 \
  --plot "$out/estimate.png" --force --quiet >/dev/null
flopcast estimate --model llama-2-70b --tokens 2T --hardware a100-80gb --sweep devices=8..4096 \
  --plot "$out/sweep.png" --force --quiet >/dev/null
flopcast compare --model llama-2-7b --tokens 2T --devices 64 --plot "$out/compare.png" --force --quiet >/dev/null
flopcast plan --model llama-2-7b --tokens 2T --deadline 30d --max-devices 2048 \
  --plot "$out/plan.png" --force --quiet >/dev/null
flopcast validate --plot "$out/validate.png" --force --quiet >/dev/null || true  # exit 1 = bars not met
flopcast bench --quick --plot "$out/bench.png" --force --quiet >/dev/null
ls -l "$out"
