"""A small log-log roofline chart in plain text (no terminal library needed, so it also goes in Markdown).

x: arithmetic intensity (FLOP/byte); y: FLOP/s. The roof of each dtype is drawn with ``/`` where it is
bandwidth bound and ``-`` on its flat compute ceiling; each measured point is the dtype's letter
(``D`` float64, ``S`` float32, ``B`` bfloat16, ``H`` float16).
"""

from __future__ import annotations

import math

from flopcast.reports.bench import BenchPoint, RooflineFit
from flopcast.units import format_si

MARKERS = {"float64": "D", "float32": "S", "bfloat16": "B", "float16": "H"}
_LABEL_WIDTH = 12


def _marker(dtype: str) -> str:
    return MARKERS.get(dtype, dtype[:1].upper() or "?")


def roofline_chart(points: list[BenchPoint], fit: RooflineFit, width: int = 60, height: int = 14) -> str:
    """The chart as lines of text (about ``width + 14`` columns wide)."""
    if not points:
        return ""
    bws = fit.bandwidth_bytes_per_s_by_dtype
    ridges = [p / bws[d] for d, p in fit.peak_flops_per_s.items()]
    xs = [p.intensity_flops_per_byte for p in points]
    ys = [p.flops_per_s for p in points]
    x_lo, x_hi = math.log10(min(xs) / 2), math.log10(max(max(xs), *ridges) * 2)
    y_lo = math.log10(min(ys) / 2)
    y_hi = math.log10(max(max(ys), *fit.peak_flops_per_s.values()) * 1.5)
    grid = [[" "] * width for _ in range(height)]

    def col(x: float) -> int:
        return min(width - 1, max(0, round((math.log10(x) - x_lo) / (x_hi - x_lo) * (width - 1))))

    def row(y: float) -> int:
        return min(height - 1, max(0, round((y_hi - math.log10(y)) / (y_hi - y_lo) * (height - 1))))

    for dtype, peak in sorted(fit.peak_flops_per_s.items(), key=lambda kv: kv[1]):
        bw = bws[dtype]
        for c in range(width):
            x = 10 ** (x_lo + c / (width - 1) * (x_hi - x_lo))
            y = min(peak, x * bw)
            if y <= 0 or math.log10(y) < y_lo:
                continue
            grid[row(y)][c] = "-" if x * bw >= peak else "/"
    for p in points:
        grid[row(p.flops_per_s)][col(p.intensity_flops_per_byte)] = _marker(p.dtype)
    labels = {0: format_si(10**y_hi, "FLOP/s"), height - 1: format_si(10**y_lo, "FLOP/s")}
    for dtype, peak in fit.peak_flops_per_s.items():
        labels.setdefault(row(peak), f"{dtype} peak")
    lines = [f"{labels.get(r, ''):>{_LABEL_WIDTH}} |{''.join(cells).rstrip()}" for r, cells in enumerate(grid)]
    lines.append(f"{'':>{_LABEL_WIDTH}} +{'-' * width}")
    left, right = f"{10**x_lo:.3g}", f"{10**x_hi:.3g} FLOP/byte"
    lines.append(f"{'':>{_LABEL_WIDTH}}  {left}{right:>{width - len(left)}}")
    legend = ", ".join(f"{_marker(d)} {d}" for d in fit.peak_flops_per_s)
    lines.append(
        f"{'':>{_LABEL_WIDTH}}  points: {legend}; roof: '/' bandwidth {format_si(bw, 'B/s')}, '-' peak per dtype"
    )
    return "\n".join(lines)
