#!/usr/bin/env bash
# One-shot check of `flopcast bench --device cuda` on a machine with an NVIDIA GPU (run from anywhere;
# works on the repository it lives in). Self-contained: makes a virtual environment that can see the
# system's packages (a preinstalled PyTorch), installs only what is missing, runs the GPU benchmark and
# the GPU tests, and prints the key figures. Whole script: under 6 minutes (a hard deadline below).
#
#   OUT=/some/dir benchmarks/gpu_check.sh      # results: $OUT/gpu_bench.json, $OUT/gpu_tests.txt, ...
#   FLOPCAST_GPU_NO_INSTALL=1 ...               # never pip install (dry run on a machine without a GPU)
#
# Reference figures printed next to the measured ones (dense, no sparsity): NVIDIA H200 SXM datasheet —
# BF16/FP16 989 TFLOP/s, FP32 67 TFLOP/s, HBM3e 4.8 TB/s. A measured GEMM typically reaches 60–80 % of the
# BF16 figure and a streaming kernel 80–90 % of the bandwidth.
set -uo pipefail

START=$(date +%s)
DEADLINE=$((START + 340))                     # 5 min 40 s: leaves margin under the 6-minute budget
REPO="$(cd "$(dirname "$0")/.." && pwd)"
OUT="${OUT:-$REPO/gpu_check_out}"
VENV="${FLOPCAST_GPU_VENV:-${TMPDIR:-/tmp}/flopcast-gpu-venv}"
mkdir -p "$OUT"
cd "$REPO" || exit 1

log() { echo "== [$(($(date +%s) - START)) s] $*"; }
left() { local s=$((DEADLINE - $(date +%s))); [ "$s" -lt 5 ] && s=5; echo "$s"; }
cap() { local want=$1 have; have=$(left); [ "$want" -lt "$have" ] && echo "$want" || echo "$have"; }

PY="${PY:-$(command -v python3 || command -v python || true)}"
[ -n "$PY" ] || { log "no python on PATH"; exit 1; }
log "python: $("$PY" --version 2>&1) at $PY"
"$PY" -c "import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)" \
  || log "WARNING: flopcast needs Python >= 3.11; set PY=/path/to/python3.11 or newer if one exists"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader

# A python that already imports torch (e.g. a machine's prebuilt torch venv) is used as it is: a venv made
# from it would not see its packages (--system-site-packages reaches the base interpreter, not a venv).
if [ -z "${FLOPCAST_GPU_VENV:-}" ] && "$PY" -c "import torch" 2>/dev/null; then
  VENV="$(dirname "$(dirname "$PY")")"
fi
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv --system-site-packages "$VENV" || { log "cannot create a venv; using $PY directly"; VENV=""; }
fi
if [ -n "$VENV" ]; then PY="$VENV/bin/python"; fi

pip_install() {  # pip_install SECONDS ARGS... ; never fatal (the machine may have no network)
  local secs=$1; shift
  if [ -n "${FLOPCAST_GPU_NO_INSTALL:-}" ]; then log "(dry run) would pip install $*"; return 0; fi
  timeout "$(cap "$secs")" "$PY" -m pip install --quiet --disable-pip-version-check "$@" \
    || log "pip install $* failed (no network?)"
}

if "$PY" -c "import torch, sys; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available()); sys.exit(0 if torch.cuda.is_available() else 3)" 2>/dev/null; then
  log "PyTorch with CUDA is importable"
else
  log "no usable PyTorch: trying pip install \".[gpu]\""
  pip_install 200 ".[gpu]"
fi

# flopcast's own dependencies; run from source (PYTHONPATH) so no build backend is needed
if ! "$PY" -c "import typer, rich, pydantic, numpy, yaml, threadpoolctl" 2>/dev/null; then
  log "installing flopcast's dependencies"
  pip_install 120 "typer>=0.12" "rich>=13" "pydantic>=2.6" "numpy>=1.26" "pyyaml>=6" "threadpoolctl>=3.1"
fi
"$PY" -c "import pytest" 2>/dev/null || pip_install 60 "pytest>=8" "hypothesis>=6.100"
export PYTHONPATH="$REPO/src${PYTHONPATH:+:$PYTHONPATH}"
export FLOPCAST_CONFIG_DIR="$OUT/config"        # --save-profile lands here, not in the user's home

log "flopcast bench --device cuda --quick"
timeout "$(cap 240)" "$PY" -m flopcast bench --device cuda --quick --format json \
  --output "$OUT/gpu_bench.json" --save-profile gpu-check --force 2>"$OUT/gpu_bench.stderr"
BENCH_RC=$?
cat "$OUT/gpu_bench.stderr"
log "bench exit code $BENCH_RC"

if [ "$BENCH_RC" -eq 0 ]; then
  timeout "$(cap 30)" "$PY" -m flopcast hardware show gpu-check >"$OUT/gpu_profile.txt" 2>&1 \
    && log "saved profile gpu-check is readable by 'hardware show'" || log "hardware show gpu-check FAILED"
fi

log "GPU tests"
timeout "$(cap 150)" "$PY" -m pytest -q -rs -p no:cacheprovider tests/test_bench_gpu.py tests/test_bench_kernel.py \
  >"$OUT/gpu_tests.txt" 2>&1
TESTS_RC=$?
tail -n 15 "$OUT/gpu_tests.txt"
log "tests exit code $TESTS_RC"

if [ -s "$OUT/gpu_bench.json" ]; then
  "$PY" - "$OUT/gpu_bench.json" <<'EOF'
import json, sys
doc = json.load(open(sys.argv[1]))
datasheet = {"bfloat16": 989e12, "float16": 989e12, "float32": 67e12}  # H200 SXM, dense
m, roof = doc["machine"], doc["roofline"]
print(f"device: {m['name']}, {m['memory_total_bytes'] / 1e9:.0f} GB, torch {m['torch_version']}, "
      f"CUDA {m['cuda_version']}, TF32 allowed: {m['tf32_allowed']}; bench {doc['elapsed_seconds']:.1f} s")
print(f"bandwidth: {roof['bandwidth_bytes_per_s'] / 1e12:.2f} TB/s (H200 datasheet 4.8 TB/s: "
      f"{roof['bandwidth_bytes_per_s'] / 4.8e12:.0%})")
for dtype, peak in roof["peak_flops_per_s"].items():
    gemm = doc["gemm_check"].get(dtype, {}) or {}
    ref = datasheet.get(dtype)
    print(f"{dtype:>9}: fitted peak {peak / 1e12:7.1f} TFLOP/s"
          + (f" ({peak / ref:.0%} of datasheet)" if ref else "")
          + (f"; direct {gemm['n']}² GEMM {gemm['flops_per_s'] / 1e12:.1f} TFLOP/s, fitted/GEMM "
             f"{gemm['fitted_over_gemm']:.3f}" if gemm else "")
          + f"; ridge {roof['ridge_flops_per_byte'][dtype]:.0f} FLOP/byte")
for p in doc["points"]:
    print(f"   {p['dtype']:>9} k={p['k']:>5} m={p['m']:>6}: {p['seconds'] * 1e3:8.3f} ms "
          f"{p['flops_per_s'] / 1e12:7.1f} TFLOP/s {p['bytes_per_s'] / 1e12:5.2f} TB/s eff {p['efficiency']:.0%} "
          f"spread {p['spread']:.0%}")
v = doc.get("verify")
if v:
    for r in v["runs"]:
        loss = (f"{r['loss_initial']:.3g} -> {r['loss_final']:.3g}" if r["loss_initial"] is not None
                and r["loss_final"] is not None else "not finite")
        print(f"verify {r['dtype']:>9} {r['regime']:>13}: predicted {r['predicted_seconds']:.4f} s, measured "
              f"{r['measured_seconds']:.4f} s, error {r['error']:+.1%}, loss {loss}")
    print(f"verify total: error {v['error']:+.1%} (target ±{v['target_abs_error']:.0%})")
for w in doc["warnings"]:
    print(f"warning: {w}")
EOF
fi
log "done (bench rc $BENCH_RC, tests rc $TESTS_RC); results in $OUT"
[ "$BENCH_RC" -eq 0 ] && [ "$TESTS_RC" -eq 0 ]
