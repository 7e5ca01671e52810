"""`bench --collectives --save-profile NAME`: a hardware profile whose link numbers were measured.

A collectives run measures the links, not the chip, so the profile starts from a base that has the compute and
memory figures: the profile given as ``hardware`` (a datasheet profile such as ``h100-80gb``, or one that
`flopcast bench --save-profile` wrote), or else NAME itself when the user profile dir already holds it (a
refresh of that profile's link numbers). Onto the base go, from the all-reduce fit (the collective data-parallel
training spends its time in; its bus bandwidth is the per-device, per-direction link bandwidth the estimator's
ring formulas take, nccl-tests PERFORMANCE.md):

- ``intra_node_bandwidth_bytes_per_s``: the fitted bus bandwidth, when every rank ran on one host;
- ``inter_node_bandwidth_bytes_per_s``: when the ranks spanned hosts, the fitted bus bandwidth divided by the
  ranks per host (the inverse of :func:`flopcast.estimator.comms.ring_bandwidth_bytes_per_s`, where k ranks of a
  node drive k NICs);
- ``collective_latency_s``: the fitted latency;

and ``measured`` lists them. Written atomically by :func:`flopcast.bench.profile.save_profile`, after the run.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from flopcast._version import __version__
from flopcast.bench.collectives import ALL_REDUCE
from flopcast.errors import InvalidValue, RuntimeFailure, opt
from flopcast.hardware import PROFILE_SUFFIXES, HardwareProfile, load_profile
from flopcast.reports.bench_collectives import CollectivesReport, seconds_text

INTRA = "intra_node_bandwidth_bytes_per_s"
INTER = "inter_node_bandwidth_bytes_per_s"
LATENCY = "collective_latency_s"


def plan_profile(name: str, hardware: str | None, profiles, force: bool) -> tuple[Path, HardwareProfile]:
    """Before measuring: the file NAME will be written to and the base profile (UsageError if there is none)."""
    from flopcast.bench.profile import check_profile_target, profile_path
    from flopcast.request import resolve_hardware

    if hardware is not None:
        return check_profile_target(name, force), resolve_hardware(hardware, profiles)
    existing = [p for p in (profile_path(name).with_suffix(s) for s in PROFILE_SUFFIXES) if p.exists()]
    if not existing:
        raise InvalidValue(
            f"{opt('save_profile')} {name}: a collectives run measures the links, not the chip's FLOP/s and memory",
            hint=f"add {opt('hardware')} ID for those (a datasheet profile, or one that `flopcast bench "
            f"{opt('save_profile')}` wrote), or save NAME with `flopcast bench` first",
        )
    check_profile_target(name, force=True)  # the name's form and a writable dir; NAME itself is refreshed
    return existing[0], load_profile(existing[0])


def build_collectives_profile(
    report: CollectivesReport, base: HardwareProfile, name: str, today: dt.date | None = None
) -> HardwareProfile:
    """``base`` as profile ``name`` with the link numbers ``report`` measured."""
    fit = report.fit(ALL_REDUCE)
    if fit is None or fit.bus_bandwidth_bytes_per_s is None:
        raise RuntimeFailure(
            "no all-reduce bandwidth was fitted (the time did not grow with the size), so there is no link bandwidth "
            "to save; the profile was not written",
            hint=f"rerun on a quieter machine, with a larger {opt('max_bytes')} (default 256MiB)",
        )
    s = report.settings
    day = (today or dt.datetime.now(dt.UTC).date()).isoformat()
    where = (
        f"measured by flopcast {__version__} bench --collectives on {day}: {s.backend}, {s.ranks} ranks on "
        f"{s.nodes} host(s), {s.device_name}, PyTorch {s.torch_version}, {s.mode} run"
    )
    data = base.model_dump(mode="json", exclude_none=True)
    if s.nodes > 1:
        data[INTER] = fit.bus_bandwidth_bytes_per_s / s.ranks_per_node
        fields = [INTER]
    else:
        data[INTRA] = fit.bus_bandwidth_bytes_per_s
        fields = [INTRA]
    if fit.latency_s > 0:
        data[LATENCY] = fit.latency_s
        fields.append(LATENCY)
    measured = [m for m in data.get("measured", []) if m not in fields]  # earlier measurements of other fields stay
    notes = [n for n in data.get("notes", []) if not n.startswith("bench --collectives:")]
    notes.append(
        f"bench --collectives: all-reduce over {s.ranks} ranks fitted latency {seconds_text(fit.latency_s)}, bus "
        f"bandwidth {fit.bus_bandwidth_bytes_per_s:.4g} B/s (nccl-tests busbw convention); measured: "
        f"{', '.join(fields)}"
    )
    sources = [x for x in data.get("sources", []) if "bench --collectives" not in x]
    data.update(
        id=name,
        aliases=[] if name != base.id else data.get("aliases", []),
        measured=[*measured, *fields],
        sources=[*sources, where],
        notes=notes,
        missing=[m for m in data.get("missing", []) if "intra-/inter-node" not in m or s.nodes > 1],
    )
    return HardwareProfile.model_validate(data)
