"""Figures of reports (``--plot FILE.png|svg``): matplotlib is an optional extra, imported only here.

One function per report kind, each taking the pydantic report and drawing on a matplotlib ``Figure``
(no pyplot, so no global state and no display is needed):

- ``estimate``: where a step's time goes and what fills a device's memory (two panels);
- ``sweep`` (``estimate --sweep``): wall-clock and cost against device count, with their P10–P90 bands;
- ``plan``: the Pareto front of wall-clock vs cost, the best plan highlighted;
- ``compare``: the hardware ranking, wall-clock and cost with P10–P90;
- ``bench``: the local roofline, measured points and fitted roofs (log-log);
- ``validate``: predicted vs reported for every published run, with the P10–P90 range.

Units on the axes: days, USD, GB (1e9 bytes), seconds, FLOP/s, FLOP/byte.
"""

from __future__ import annotations

import importlib.util
import io
from pathlib import Path

from flopcast.errors import InvalidValue, UsageError, opt
from flopcast.layout import degrees_text

PLOT_FORMATS = {".png": "png", ".svg": "svg"}
INSTALL_HINT = 'pip install "flopcast[plot]"'
PNG_DPI = 150
SECONDS_PER_DAY = 86400.0
GB = 1e9
# One colour per series, colour-blind safe (Okabe & Ito 2008, "Color Universal Design").
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
HIGHLIGHT = "#D55E00"
MUTED = "#999999"


def plot_format(path: Path) -> str:
    """``png`` or ``svg`` from the file name; anything else is a one-line usage error."""
    suffix = Path(path).suffix.lower()
    if suffix not in PLOT_FORMATS:
        raise InvalidValue(
            f"{opt('plot')} {path}: unknown image type {suffix or '(no extension)'!r}",
            hint="name the file .png or .svg",
        )
    return PLOT_FORMATS[suffix]


def require_matplotlib() -> None:
    """Raise a one-line usage error (exit 2) when matplotlib is not installed."""
    if importlib.util.find_spec("matplotlib") is None:
        raise UsageError(f"{opt('plot')} needs matplotlib, which is not installed", hint=INSTALL_HINT)


def plot_kinds() -> list[str]:
    return list(_DRAWERS)


def render_plot(report, path: Path) -> bytes:
    """The figure of ``report`` as PNG or SVG bytes (the format from ``path``'s extension)."""
    fmt = plot_format(path)
    require_matplotlib()
    kind = getattr(report, "report", None)
    if kind not in _DRAWERS:
        raise InvalidValue(
            f"{opt('plot')}: no figure for a {kind} report", hint=f"figures exist for {', '.join(plot_kinds())} reports"
        )
    import matplotlib

    with matplotlib.rc_context(_STYLE):
        fig = _DRAWERS[kind](report)
        buf = io.BytesIO()
        metadata = {"Date": None} if fmt == "svg" else {"Software": None}
        fig.savefig(buf, format=fmt, dpi=PNG_DPI, metadata=metadata)
    return buf.getvalue()


_STYLE = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.titleweight": "bold",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "legend.frameon": False,
    "legend.fontsize": 8,
    "svg.hashsalt": "flopcast",  # stable ids: the same report gives the same SVG
    "svg.fonttype": "none",
}


def _figure(width: float, height: float, ncols: int = 1):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(1, ncols)
    return fig, axes


def _days(seconds: float) -> float:
    return seconds / SECONDS_PER_DAY


def _usd_short(value: float) -> str:
    """``413869`` → ``$414k`` (labels)."""
    if abs(value) >= 1e6:
        return f"${value / 1e6:.3g}M"
    if abs(value) >= 1e3:
        return f"${value / 1e3:.3g}k"
    return f"${value:.3g}"


def _seconds_short(value: float) -> str:
    """``0.000387`` → ``387 µs`` (labels)."""
    if value == 0:
        return "0"
    if value < 1e-3:
        return f"{value * 1e6:.3g} µs"
    if value < 1:
        return f"{value * 1e3:.3g} ms"
    return f"{value:.3g} s"


def _plain_log_axis(axis, unit: str | None = None) -> None:
    """Label a log axis 1, 2, 5, 10, 20 ... (or 1 G, 2 G, 5 G ... with ``unit``) instead of 10^0, 10^1."""
    from matplotlib.ticker import FuncFormatter, LogLocator

    from flopcast.units import format_si

    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    label = (lambda v, _pos: f"{v:g}") if unit is None else (lambda v, _pos: format_si(v, unit))
    axis.set_major_formatter(FuncFormatter(label))
    axis.set_minor_formatter(FuncFormatter(lambda v, _pos: ""))


def _usd_axis(ax, axis: str = "y") -> None:
    from matplotlib.ticker import FuncFormatter

    def fmt(value, _pos):
        if abs(value) >= 1e6:
            return f"${value / 1e6:g}M"
        if abs(value) >= 1e3:
            return f"${value / 1e3:g}k"
        return f"${value:g}"

    (ax.yaxis if axis == "y" else ax.xaxis).set_major_formatter(FuncFormatter(fmt))


# --- estimate ------------------------------------------------------------------------------------------


def _estimate(r):
    from flopcast.units import format_duration

    fig, (ax_t, ax_m) = _figure(11, 4.2, 2)
    sb, t = r.time.step_breakdown, r.time
    parts = [
        ("compute", sb.compute_seconds),
        ("tensor-parallel comms", sb.tp_comm_seconds),
        *([("context-parallel\nK/V ring", sb.cp_comm_seconds)] if r.parallelism.cp > 1 else []),
        *([("expert all-to-all", sb.ep_comm_seconds)] if r.parallelism.ep > 1 else []),
        ("pipeline sends", sb.pp_comm_seconds),
        ("data-parallel comms\n(exposed)", sb.dp_comm_exposed_seconds),
        ("pipeline bubble", sb.bubble_seconds),
        ("optimizer update", sb.optimizer_seconds),
    ]
    # interruptions, restarts and checkpoints are no part of a step: shown amortised over the steps, and every
    # share is of the wall-clock per step (as the table's "share of wall-clock" column)
    per_step_wall = t.wall_clock_seconds / t.steps if t.steps > 0 else sum(v for _, v in parts)
    parts.append(("interruptions and\noverhead (amortised)", max(0.0, per_step_wall - t.training_seconds / t.steps)
                  if t.steps > 0 else 0.0))  # fmt: skip
    names = [n for n, _ in parts][::-1]
    values = [v for _, v in parts][::-1]
    colours = [MUTED] + [PALETTE[0]] * (len(values) - 1)  # the overhead bar (drawn first, at the bottom) apart
    bars = ax_t.barh(names, values, color=colours)
    whole = max(per_step_wall, 1e-30)
    ax_t.bar_label(bars, labels=[f"{_seconds_short(v)} ({v / whole:.0%})" for v in values], padding=3, fontsize=8)
    ax_t.set_xlabel("seconds per optimizer step (%: share of wall-clock)")
    ax_t.set_title(f"Step time {format_duration(t.step_seconds)} (MFU {r.efficiency.mfu:.0%})", loc="left")
    ax_t.set_xlim(0, max(values) * 1.35 if max(values) > 0 else 1)
    ax_t.grid(axis="y", visible=False)

    m = r.memory
    mparts = m.breakdown.labelled()
    mnames = [n for n, _ in mparts][::-1] + ["total"]  # barh draws upwards: the first part under the total
    mvalues = [v / GB for _, v in mparts][::-1] + [m.per_device_bytes / GB]
    colour = PALETTE[2] if m.fits else HIGHLIGHT
    mbars = ax_m.barh(mnames, mvalues, color=[colour] * len(mparts) + ["black"])
    ax_m.bar_label(mbars, labels=[f"{v:.1f} GB" for v in mvalues], padding=3, fontsize=8)
    cap = m.capacity_bytes / GB
    ax_m.axvline(cap, color=HIGHLIGHT, linestyle="--", linewidth=1.2, label=f"capacity {cap:.0f} GB")
    ax_m.legend(loc="center right")
    ax_m.set_xlabel("GB per device (1 GB = 10⁹ bytes)")
    verdict = "fits" if m.fits else "DOES NOT FIT"
    ax_m.set_title(f"Memory {m.per_device_bytes / GB:.1f} GB of {cap:.0f} GB per device: {verdict}", loc="left")
    ax_m.set_xlim(0, max(*mvalues, cap) * 1.3 if max(*mvalues, cap) > 0 else 1)
    ax_m.grid(axis="y", visible=False)
    p = r.parallelism
    fig.suptitle(
        f"{r.model.name} on {r.inputs.devices} × {r.hardware.id} ({degrees_text(p)}, ZeRO {p.zero}, "
        f"recompute {p.recompute}): wall-clock {format_duration(t.wall_clock_seconds)} "
        f"(P10–P90 {format_duration(t.wall_clock_seconds_p10)}–{format_duration(t.wall_clock_seconds_p90)})",
        fontsize=10,
    )
    return fig


# --- sweep (estimate --sweep devices=...) -----------------------------------------------------------------


def _sweep(r):
    import numpy as np

    fig, (ax_t, ax_c) = _figure(11, 4.2, 2)
    n = np.array([row.devices for row in r.rows], dtype=float)
    fits = np.array([row.fits for row in r.rows], dtype=bool)
    wall = np.array([_days(row.wall_clock_seconds) for row in r.rows])
    lo = np.array([_days(row.wall_clock_seconds_p10) for row in r.rows])
    hi = np.array([_days(row.wall_clock_seconds_p90) for row in r.rows])
    ax_t.fill_between(n, lo, hi, color=PALETTE[0], alpha=0.18, label="P10–P90")
    ax_t.plot(n, wall, "-", color=PALETTE[0], label="predicted")
    ax_t.plot(n[fits], wall[fits], "o", color=PALETTE[0])
    ref = int(np.argmax(fits)) if fits.any() else 0  # linear scaling from the smallest count that fits
    ideal = wall[ref] * n[ref] / n[ref:]
    ax_t.plot(n[ref:], ideal, ":", color=MUTED, label=f"linear scaling from {int(n[ref])}")
    if (~fits).any():
        ax_t.plot(n[~fits], wall[~fits], "x", color=HIGHLIGHT, markersize=8, label="does not fit")
    ax_t.set_xscale("log", base=2)
    ax_t.set_yscale("log")
    _plain_log_axis(ax_t.yaxis)
    ax_t.set_xlabel("devices")
    ax_t.set_ylabel("wall-clock (days)")
    ax_t.set_title("Wall-clock time", loc="left")
    ax_t.legend(loc="upper right")

    cost = np.array([np.nan if row.cost_usd is None else row.cost_usd for row in r.rows], dtype=float)
    if np.isfinite(cost).any():
        clo = np.array([np.nan if row.cost_usd_p10 is None else row.cost_usd_p10 for row in r.rows], dtype=float)
        chi = np.array([np.nan if row.cost_usd_p90 is None else row.cost_usd_p90 for row in r.rows], dtype=float)
        ax_c.fill_between(n, clo, chi, color=PALETTE[1], alpha=0.22, label="P10–P90")
        ax_c.plot(n, cost, "-", color=PALETTE[1], label="predicted")
        ax_c.plot(n[fits], cost[fits], "o", color=PALETTE[1])
        if (~fits).any():
            ax_c.plot(n[~fits], cost[~fits], "x", color=HIGHLIGHT, markersize=8, label="does not fit")
        ax_c.set_ylim(0, np.nanmax(chi) * 1.1)
        _usd_axis(ax_c)
        ax_c.set_ylabel(f"cost (USD, {r.price_tier} at ${r.usd_per_device_hour:g}/device-hour)")
        ax_c.legend(loc="lower right")
    else:
        ax_c.text(0.5, 0.5, "no price: give --price-per-hour", ha="center", va="center", transform=ax_c.transAxes)
    ax_c.set_xscale("log", base=2)
    ax_c.set_xlabel("devices")
    ax_c.set_title("Cost", loc="left")
    for ax in (ax_t, ax_c):
        ax.set_xticks(n, [str(int(x)) for x in n])
        ax.tick_params(axis="x", labelrotation=45 if len(n) > 8 else 0)
    from flopcast.units import format_si

    fig.suptitle(
        f"{r.model.name} ({format_si(r.model.params)} params), {format_si(r.inputs.tokens)} tokens on "
        f"{r.inputs.hardware}: time and cost against device count (fastest layout that fits at each count)",
        fontsize=10,
    )
    return fig


# --- plan ----------------------------------------------------------------------------------------------------


def _same(a, b) -> bool:
    return b is not None and a.hardware == b.hardware and a.devices == b.devices and a.layout == b.layout


def _plan(r):
    import numpy as np

    fig, ax = _figure(8, 5)
    pts = list(r.pareto)
    if not pts:
        ax.text(0.5, 0.5, "no feasible plan: nothing on the Pareto front", ha="center", va="center",
                transform=ax.transAxes)  # fmt: skip
        ax.set_axis_off()
        return fig
    order = sorted(range(len(pts)), key=lambda k: pts[k].wall_clock_seconds)
    x = np.array([_days(pts[k].wall_clock_seconds) for k in order])
    y = np.array([pts[k].cost_usd for k in order], dtype=float)
    ax.step(x, y, where="post", color=MUTED, linewidth=1, zorder=1, label="Pareto front")
    hardware = list(dict.fromkeys(p.hardware for p in pts))
    for h_i, hw in enumerate(hardware):
        ks = [k for k in order if pts[k].hardware == hw]
        xs = np.array([_days(pts[k].wall_clock_seconds) for k in ks])
        ys = np.array([pts[k].cost_usd for k in ks], dtype=float)
        ax.plot(xs, ys, "o", color=PALETTE[h_i % len(PALETTE)], markersize=5, alpha=0.85, label=hw, zorder=2)
    best = r.best_point
    if best is not None and best.cost_usd is not None:
        bx, by = _days(best.wall_clock_seconds), best.cost_usd
        lo, hi = _days(best.wall_clock_seconds_p10), _days(best.wall_clock_seconds_p90)
        ax.errorbar([bx], [by], xerr=[[bx - lo], [hi - bx]], fmt="none", ecolor=HIGHLIGHT, elinewidth=1.2,
                    capsize=3, zorder=3)  # fmt: skip
        ax.plot([bx], [by], marker="*", markersize=18, color=HIGHLIGHT, markeredgecolor="black", zorder=4,
                linestyle="none", label=f"best ({r.inputs.objective}; bar: P10–P90 time)")  # fmt: skip
        lay = best.layout
        ax.annotate(
            f"best: {best.devices} × {best.hardware}\n{degrees_text(lay)}, "
            f"micro-batch {lay.micro_batch}, ZeRO {lay.zero}\n{bx:.3g} days, ${by:,.0f}",
            (bx, by), xytext=(0.42, 0.55), textcoords="axes fraction", fontsize=8,
            bbox={"boxstyle": "round", "facecolor": "white", "edgecolor": MUTED},
            arrowprops={"arrowstyle": "->", "color": "black", "linewidth": 0.8},
        )  # fmt: skip
    if x.max() / max(x.min(), 1e-12) > 20:
        ax.set_xscale("log")
        _plain_log_axis(ax.xaxis)
    if r.inputs.deadline_seconds is not None:
        ax.axvline(_days(r.inputs.deadline_seconds), color=MUTED, linestyle="--", linewidth=1, label="deadline")
    if r.inputs.budget_usd is not None:
        ax.axhline(r.inputs.budget_usd, color=MUTED, linestyle="-.", linewidth=1, label="budget")
    _usd_axis(ax)
    ax.set_xlabel("wall-clock (days)")
    ax.set_ylabel("cost (USD)")
    from flopcast.units import format_si

    ax.set_title(
        f"Plan: {r.model.name}, {format_si(r.inputs.tokens)} tokens: {len(pts)} plans on the Pareto front "
        "of time vs cost",
        loc="left",
    )
    ax.legend(loc="upper right", ncols=1 if len(hardware) < 5 else 2)
    return fig


# --- compare -------------------------------------------------------------------------------------------------


def _compare(r):
    import numpy as np

    rows = sorted(r.rows, key=lambda row: row.rank)
    fig, (ax_t, ax_c) = _figure(11, 0.9 + 0.42 * max(len(rows), 3), 2)
    labels = [f"{row.rank}. {row.hardware}" + (f" ×{row.devices}" if row.devices else "") for row in rows][::-1]
    rows = rows[::-1]
    ypos = np.arange(len(rows))

    def panel(ax, value, lo, hi, colour, unit_label, fmt):
        vals = np.array([np.nan if value(x) is None else value(x) for x in rows], dtype=float)
        los = np.array([np.nan if lo(x) is None else lo(x) for x in rows], dtype=float)
        his = np.array([np.nan if hi(x) is None else hi(x) for x in rows], dtype=float)
        colours = [colour if x.ok else MUTED for x in rows]
        shown = np.nan_to_num(vals)
        ax.barh(ypos, shown, color=colours)
        have = np.isfinite(vals) & np.isfinite(los) & np.isfinite(his)
        if have.any():
            ax.errorbar(shown[have], ypos[have], xerr=[shown[have] - los[have], his[have] - shown[have]],
                        fmt="none", ecolor="black", elinewidth=0.8, capsize=2)  # fmt: skip
        top = np.nanmax(np.where(np.isfinite(his), his, vals)) if np.isfinite(vals).any() else 1.0
        for yy, v, row in zip(ypos, vals, rows, strict=True):
            text = fmt(v) if np.isfinite(v) else (row.reason or "—")
            if not row.ok and np.isfinite(v) and row.reason:
                text += f"  ({row.reason})"
            ax.text(max(np.nan_to_num(his[yy], nan=0.0), np.nan_to_num(v)) + 0.02 * top, yy, text,
                    va="center", fontsize=7.5)  # fmt: skip
        ax.set_yticks(ypos, labels)
        ax.set_xlim(0, top * 1.55)
        ax.set_xlabel(unit_label)
        ax.grid(axis="y", visible=False)

    panel(ax_t, lambda x: None if x.wall_clock_seconds is None else _days(x.wall_clock_seconds),
          lambda x: None if x.wall_clock_seconds_p10 is None else _days(x.wall_clock_seconds_p10),
          lambda x: None if x.wall_clock_seconds_p90 is None else _days(x.wall_clock_seconds_p90),
          PALETTE[0], "wall-clock (days; bars: P10–P90)", lambda v: f"{v:.3g} d")  # fmt: skip
    panel(ax_c, lambda x: x.cost_usd, lambda x: x.cost_usd_p10, lambda x: x.cost_usd_p90, PALETTE[1],
          "cost (USD; bars: P10–P90)", _usd_short)  # fmt: skip
    _usd_axis(ax_c, "x")
    ax_t.set_title("Wall-clock", loc="left")
    ax_c.set_title("Cost", loc="left")
    ax_c.set_yticklabels([])
    from flopcast.units import format_si

    i = r.inputs
    where = f"{i.devices} devices each" if i.devices is not None else "fewest devices that meet the deadline"
    fig.suptitle(
        f"Compare: {r.model.name}, {format_si(i.tokens)} tokens on {where}; ranked by {i.objective} "
        "(grey: does not fit / misses the deadline / no price)",
        fontsize=10,
    )
    return fig


# --- bench ---------------------------------------------------------------------------------------------------


# Bytes per element of the bench dtypes (IEEE 754 binary64/32/16, bfloat16), for the direct GEMM's intensity.
ITEMSIZE_BYTES = {"float64": 8, "float32": 4, "float16": 2, "bfloat16": 2}
GEMM_OPERANDS = 3  # n×n · n×n → n×n: two matrices read, one written


def _bench(r):
    import numpy as np

    from flopcast.units import format_si

    fig, ax = _figure(8.5, 5.4)
    dtypes = list(dict.fromkeys([p.dtype for p in r.points]))
    if r.roofline is not None:
        dtypes += [d for d in r.roofline.peak_flops_per_s if d not in dtypes]
    gemm_intensity = {
        d: 2 * g.n**3 / (GEMM_OPERANDS * g.n**2 * ITEMSIZE_BYTES[d])
        for d, g in r.gemm_check.items()
        if d in ITEMSIZE_BYTES
    }
    intens = [p.intensity_flops_per_byte for p in r.points] + list(gemm_intensity.values()) or [0.1, 100.0]
    x = np.geomspace(min(intens) / 2, max(intens) * 2, 200)
    for k, dtype in enumerate(dtypes):
        colour = PALETTE[k % len(PALETTE)]
        pts = sorted((p for p in r.points if p.dtype == dtype), key=lambda p: p.intensity_flops_per_byte)
        if pts:
            ax.plot([p.intensity_flops_per_byte for p in pts], [p.flops_per_s for p in pts], "o", color=colour,
                    label=f"{dtype}: measured (median)", zorder=3)  # fmt: skip
        if r.roofline is not None and dtype in r.roofline.peak_flops_per_s:
            peak = r.roofline.peak_flops_per_s[dtype]
            bw = r.roofline.bandwidth_bytes_per_s_by_dtype.get(dtype, r.roofline.bandwidth_bytes_per_s)
            ax.plot(x, np.minimum(peak, bw * x), "-", color=colour, linewidth=1.8, alpha=0.6,
                    label=f"{dtype}: roof {format_si(peak, 'FLOP/s')}, {format_si(bw, 'B/s')}")  # fmt: skip
            ax.axvline(peak / bw, color=colour, linestyle=":", linewidth=0.8)
        gemm = r.gemm_check.get(dtype)
        if gemm is not None and dtype in gemm_intensity:
            ax.plot([gemm_intensity[dtype]], [gemm.flops_per_s], marker="D", color=colour, markeredgecolor="black",
                    linestyle="none", label=f"{dtype}: direct GEMM n={gemm.n}", zorder=4)  # fmt: skip
    ax.set_xscale("log")
    ax.set_yscale("log")
    _plain_log_axis(ax.xaxis)
    _plain_log_axis(ax.yaxis, "FLOP/s")
    ax.set_xlabel("arithmetic intensity (FLOP/byte)")
    ax.set_ylabel("FLOP/s")
    state = " (PARTIAL)" if r.partial else ""
    ax.set_title(f"Roofline of {r.machine.name}{state}: {r.settings.mode} run; dotted: ridge points", loc="left")
    ax.legend(loc="lower right", ncols=2 if len(dtypes) > 1 else 1)
    return fig


# --- validate ------------------------------------------------------------------------------------------------


# what a backtest row predicts, as a reader says it (the report's field names are for machines)
TARGET_LABELS = {
    "device_hours": "device-hours",
    "tflops_per_device": "TFLOP/s per device",
    "mfu": "MFU",
    "step_seconds": "step time",
    "tokens_per_second": "tokens/s",
    "wall_clock_seconds": "wall-clock",
}


def _validate(r):
    import numpy as np

    fig, ax = _figure(7, 6)
    targets = list(dict.fromkeys(row.target for row in r.rows))
    allv = []
    for k, target in enumerate(targets):
        rows = [row for row in r.rows if row.target == target]
        rep = np.array([row.reported for row in rows])
        pred = np.array([row.predicted for row in rows])
        lo = np.array([row.p10 for row in rows])
        hi = np.array([row.p90 for row in rows])
        # one axis for every target: each run as predicted / reported (1 = exact)
        ratio, rlo, rhi = pred / rep, lo / rep, hi / rep
        idx = np.arange(len(allv), len(allv) + len(rows))
        ax.errorbar(idx, ratio, yerr=[ratio - rlo, rhi - ratio], fmt="o", color=PALETTE[k % len(PALETTE)],
                    elinewidth=0.8, capsize=0, label=TARGET_LABELS.get(target, target.replace("_", " ")))  # fmt: skip
        allv += [row.run_id for row in rows]
    ax.axhline(1.0, color="black", linewidth=0.8)
    band = r.bars.trust_a_abs_error_max
    ax.axhspan(1 - band, 1 + band, color=MUTED, alpha=0.15, label=f"±{band:.0%} (trust-A bar)")
    ax.set_xticks(range(len(allv)), allv, rotation=90, fontsize=6)
    ax.set_ylabel("predicted / reported (bars: P10–P90)")
    s = r.summary
    ax.set_title(
        f"Backtest on {s.runs} published runs: median |error| {s.median_abs_error:.1%}, "
        f"P10–P90 coverage {s.coverage:.0%}",
        loc="left",
    )
    fig.legend(loc="outside upper center", ncols=len(targets) + 1)
    return fig


_DRAWERS = {
    "estimate": _estimate,
    "sweep": _sweep,
    "plan": _plan,
    "compare": _compare,
    "bench": _bench,
    "validate": _validate,
}
