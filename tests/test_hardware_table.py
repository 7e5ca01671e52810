"""The README's "which hardware" table: generated from the shipped catalogue and fit (scripts/gen_hardware_table.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_readme_hardware_table_is_up_to_date():
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_hardware_table.py"), "--check"], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_table_rows_against_datasheets():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import gen_hardware_table
    finally:
        sys.path.pop(0)
    rows = {line.split("|")[1].strip(" `"): [c.strip() for c in line.split("|")[2:-1]]
            for line in gen_hardware_table.table().splitlines()[2:]}  # fmt: skip
    # H100 SXM datasheet: 80 GB, 3.35 TB/s, 989 dense bf16 TFLOP/s, 1,979 fp8; decode bound 3.35e12 / 14e9 = 239
    h100 = rows["h100-80gb"]
    assert h100[2:6] == ["80", "3.35", "989", "1,979"]
    assert h100[9] == "239"
    # 8 × 80 GB / 18 B per parameter = 35.6e9 parameters
    assert h100[10] == "36B"
    # V100 has no bf16: its fp16 tensor-core peak, 125 TFLOP/s (V100 SXM2 datasheet), labelled
    assert rows["v100-32gb"][4] == "125 (fp16)"
    # one row per shipped profile file
    shipped = list((ROOT / "hardware_profiles").glob("*.yaml"))
    assert len(rows) == len(shipped)
