"""`serve --plan`: the cheapest serving configuration under latency targets, against independent figures.

Hand derivations use the bare profile of tests/test_serve_load.py (a huge peak, so every pass is memory bound
and takes bytes / bandwidth; a runtime with no fixed cost and all of the bandwidth) with a link so slow that
tensor parallelism never sustains a load, so the plan is a number of single-device replicas that can be
solved by hand. The shipped catalogue is checked by a second path: every configuration run through plain
`flopcast.serve(..., request_rate=rate / replicas)`, one at a time.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from flopcast.api import serve, serve_plan
from flopcast.errors import Infeasible, InvalidValue
from flopcast.hardware import HardwareProfile
from flopcast.models import ModelSpec
from flopcast.serving import ServeRequest
from flopcast.serving_load import _lindley, poisson_quantiles, ttft_bounds, ttft_quantiles
from flopcast.serving_plan import ServeTargets, plan_serving
from serve_bare import BW, IDEAL, KV, LLAMA2_7B, W_HELD, W_READ, P, T

PRICE = 3.6  # $ per device-hour
# by hand (tests/test_serve_load.py): one prompt's prefill, the batch whose KV cache fits in 80 GB less the
# 8 GB allowance, its decode step at the mean context P + T/2, and the most requests/s one device sustains
T_P = (W_READ + P * KV) / BW
B_MAX = (80e9 - 8e9 - W_HELD) // (KV * (P + T))
MOST = 1 / (T_P + T * (W_READ + B_MAX * KV * (P + T / 2)) / BW / B_MAX)


def _profile() -> HardwareProfile:
    return HardwareProfile.model_validate(
        dict(id="test-gpu", name="t", kind="gpu", peak_flops_per_s={"bf16": 1e18}, memory_bytes=80e9,
             memory_bandwidth_bytes_per_s=BW, devices_per_node=8, intra_node_bandwidth_bytes_per_s=1e3,
             inter_node_bandwidth_bytes_per_s=1e3, sources=["test"],
             prices_usd_per_device_hour={"on-demand": {"usd_per_device_hour": PRICE, "date": "t", "source": "t"}})
    )  # fmt: skip


def _plan(rate, max_devices=16, **targets):
    request = ServeRequest(runtime=IDEAL, prompt_tokens=P, output_tokens=T, request_rate=rate)
    return plan_serving(LLAMA2_7B, [_profile()], request, ServeTargets(max_devices=max_devices, **targets))


def _poisson_quantile_by_hand(mean: float, q: float) -> int:
    """The smallest k with P(N ≤ k) ≥ q, summing the Poisson pmf term by term (p_k = p_{k-1}·m/k)."""
    k, term = 0, math.exp(-mean)
    cdf = term
    while cdf < q:
        k += 1
        term *= mean / k
        cdf += term
    return k


def _by_hand(rate: float) -> dict:
    """One single-device replica at ``rate``: Little's law b = λTτ(b)/(1 − ρ) with τ(b) = (W + b·K·c)/B is
    linear in b; TPOT = τ + t_p·N/(T − 1), N ~ Poisson(λ(T − 1)τ/(1 − ρ)) (serving_load.py's module doc)."""
    c = P + T / 2
    rho = rate * T_P
    b = rate * T * W_READ / (BW * (1 - rho) - rate * T * KV * c)
    tau = (W_READ + b * KV * c) / BW
    mean_n = rate * (T - 1) * tau / (1 - rho)
    tpot = {q: tau + T_P * _poisson_quantile_by_hand(mean_n, q) / (T - 1) for q in (0.5, 0.9)}
    return dict(rho=rho, batch=b, tau=tau, tpot50=tpot[0.5], tpot90=tpot[0.9])


# --- hand derivations on the bare profile -------------------------------------------------------------------


def test_replicas_needed_for_a_rate_by_hand():
    # 2.5× what one device sustains, with a loose TTFT target: 3 single-device replicas (λ/3 < most ≤ λ/2)
    rate = 2.5 * MOST
    report = _plan(rate, ttft_seconds=10.0)
    best = report.best
    assert (best.tensor_parallel, best.replicas, best.devices, best.weights_bits) == (1, 3, 3, 16)
    assert best.usd_per_hour == pytest.approx(3 * PRICE)
    # $10.80/h over λ·T output tokens per hour
    assert best.usd_per_million_tokens == pytest.approx(3 * PRICE / (rate * T * 3600) * 1e6)
    assert best.max_request_rate_per_s == pytest.approx(3 * MOST, rel=1e-9)
    hand = _by_hand(rate / 3)
    assert best.prefill_busy_fraction == pytest.approx(hand["rho"], rel=1e-9)
    assert best.running_batch == pytest.approx(hand["batch"], rel=1e-3)
    assert best.step_seconds == pytest.approx(hand["tau"], rel=1e-3)
    assert best.time_per_output_token_p90_seconds == pytest.approx(hand["tpot90"], rel=1e-3)
    # the first token: at least one prefill; at most the prefill, an M/D/1 wait and one decode step
    assert T_P <= best.time_to_first_token_p50_seconds <= best.time_to_first_token_p90_seconds
    assert report.feasible and report.infeasible_reason is None


def test_tpot_target_sets_the_replica_count_by_hand():
    rate, target = 3.0 * MOST, 0.0204  # 20.4 ms per output token: between P50 and P90 at one replica count
    needed = {
        q: next(r for r in range(1, 17) if rate / r < MOST and _by_hand(rate / r)[f"tpot{q[1:]}"] <= target)
        for q in ("p50", "p90")
    }  # the fewest replicas whose time per output token at the percentile is within the target
    assert needed["p90"] > needed["p50"] > math.ceil(rate / MOST)  # the percentile and the target decide
    for q, replicas in needed.items():
        best = _plan(rate, tpot_seconds=target, percentile=q).best
        assert (best.tensor_parallel, best.replicas) == (1, replicas)
        tpot = best.time_per_output_token_p50_seconds if q == "p50" else best.time_per_output_token_p90_seconds
        assert tpot <= target < _by_hand(rate / (replicas - 1))[f"tpot{q[1:]}"]


def test_nothing_sustains_the_rate_names_the_most_each_sustains():
    report = _plan(100 * MOST, max_devices=4, ttft_seconds=10.0)
    assert not report.feasible and report.best is None
    # the nearest: 4 single-device replicas, 4 × most requests/s
    top = report.near_misses[0]
    assert (top.tensor_parallel, top.replicas) == (1, 4)
    assert top.max_request_rate_per_s == pytest.approx(4 * MOST, rel=1e-9)
    assert f"sustains at most {4 * MOST:.3g} requests/s" == top.miss
    assert all(not p.meets_targets for p in report.near_misses)
    # one near miss per tensor-parallel degree, not the same one at several replica counts
    assert len({p.tensor_parallel for p in report.near_misses}) == len(report.near_misses)


def test_a_model_that_fits_nowhere_says_so():
    tiny = _profile().model_copy(update={"memory_bytes": 10e9})  # 10 GB less the 8 GB allowance < 13.5 GB
    request = ServeRequest(runtime=IDEAL, prompt_tokens=P, output_tokens=T, request_rate=1.0)
    report = plan_serving(LLAMA2_7B, [tiny], request, ServeTargets(ttft_seconds=1.0, max_devices=1))
    assert report.configurations_searched == 0 and not report.feasible
    assert "fits on no configuration" in report.infeasible_reason


# --- the queueing figures the plan rests on, by a second method ---------------------------------------------


@pytest.mark.parametrize("mean", [0.05, 0.7, 1.0, 4.0, 17.5, 123.4, 480.0])
@pytest.mark.parametrize("q", [0.5, 0.9])
def test_vectorised_poisson_quantile_matches_a_direct_cdf_sum(mean, q):
    got = poisson_quantiles(np.array([mean, mean]), q)
    assert list(got) == [_poisson_quantile_by_hand(mean, q)] * 2


def test_lindley_recursion_matches_a_plain_loop():
    rng = np.random.default_rng(3)
    service, gaps = 1.0, rng.exponential(1 / 0.8, 500)  # ρ = 0.8
    waits, w = [0.0], 0.0
    for gap in gaps[:-1]:  # W_{n+1} = max(0, W_n + S − A_{n+1})
        w = max(0.0, w + service - gap)
        waits.append(w)
    assert np.allclose(_lindley(service - gaps), waits)


@pytest.mark.parametrize("rho", [0.3, 0.5, 0.8])
def test_md1_mean_wait_is_pollaczek_khinchine(rho):
    # M/D/1: mean wait W = ρ·S/(2(1 − ρ)) (Pollaczek–Khinchine with a deterministic service time S)
    service = 0.02
    gaps = np.random.default_rng(11).exponential(service / rho, 400_000)
    wait = _lindley(service - gaps)
    assert wait.mean() == pytest.approx(rho * service / (2 * (1 - rho)), rel=0.05)


@pytest.mark.parametrize("rho", [0.01, 0.2, 0.55, 0.9, 0.97])
def test_ttft_bounds_bracket_the_simulation(rho):
    t_p, tau, rate = 0.02, 0.004, rho / 0.02
    first = ttft_quantiles(t_p, tau, rho, 30.0, rate)
    for which in (0, 1):
        low, high = ttft_bounds(np.array([t_p]), np.array([tau]), np.array([rho]), which)
        assert low[0] <= first[which] <= high[0]


# --- the shipped catalogue: a second path through plain `serve --request-rate` -------------------------------

SMALL = dict(model="llama-3.1-8b", hardware="h100-80gb,a100-80gb", max_devices=4)


def _latencies(load, percentile):
    if percentile == "p50":
        return load.time_to_first_token_p50_seconds, load.time_per_output_token_p50_seconds
    return load.time_to_first_token_p90_seconds, load.time_per_output_token_p90_seconds


@pytest.mark.parametrize(
    ("rate", "ttft", "tpot", "percentile"),
    [(20, 0.030, 0.010, "p90"), (20, 0.015, 0.010, "p90"), (40, 0.05, 0.005, "p90"), (30, 0.02, 0.006, "p50")],
)
def test_no_cheaper_configuration_meets_the_targets(rate, ttft, tpot, percentile):
    report = serve_plan(**SMALL, request_rate=rate, ttft=ttft, tpot=tpot, percentile=percentile)
    best = report.best
    assert best is not None
    meeting = []
    # weight-only 16/8/4 bits at bf16, and W8A8 where the hardware has an fp8 peak (the A100 has none: refused)
    variants = ((16, "bf16"), (8, "bf16"), (4, "bf16"), (8, "fp8"))
    for hardware in SMALL["hardware"].split(","):
        for bits, compute in variants:
            for tp in (1, 2, 4):
                for replicas in range(1, SMALL["max_devices"] // tp + 1):
                    try:
                        one = serve(model=SMALL["model"], hardware=hardware, devices=tp, weights=bits,
                                    compute=compute, request_rate=rate / replicas)  # fmt: skip
                    except (Infeasible, InvalidValue):  # more than it sustains, or no fp8 on this hardware
                        continue
                    first, per_token = _latencies(one.load, percentile)
                    if first <= ttft and per_token <= tpot:
                        meeting.append(one.cost.usd_per_device_hour * tp * replicas)
    assert meeting, "the grid must have a configuration that meets the targets"
    assert best.usd_per_hour == pytest.approx(min(meeting), rel=1e-12)


def test_tensor_parallelism_stays_inside_a_node():
    # 70B at 16 bit (141 GB) needs 2 of the 80 GB test GPUs: with one GPU per node there is no tensor-parallel
    # group to hold it, with two per node there is (and no degree above the node's count is tried)
    big = ModelSpec(name="llama-2-70b", layers=80, d_model=8192, heads=64, kv_heads=8, ffn=28672, gated_ffn=True,
                    vocab=32000, seq_len=4096)  # fmt: skip
    request = ServeRequest(runtime=IDEAL, prompt_tokens=P, output_tokens=T, request_rate=0.01)
    targets = ServeTargets(max_devices=16, tpot_seconds=1.0)
    for per_node, feasible in ((1, False), (2, True)):
        link = {"intra_node_bandwidth_bytes_per_s": 300e9, "inter_node_bandwidth_bytes_per_s": 300e9}
        profile = _profile().model_copy(update={"devices_per_node": per_node, **link})
        report = plan_serving(big, [profile], request, targets)
        assert report.feasible is feasible
        if not feasible:
            assert report.best is None and "fits on no configuration" in report.infeasible_reason
            continue
        assert report.best.tensor_parallel == 2
        assert max(p.tensor_parallel for p in report.pareto) <= per_node


def test_the_chosen_configuration_meets_the_targets_when_served_alone(cli):
    args = ["-m", "llama-3.1-8b", "--ttft", "500ms", "--tpot", "50ms", "--request-rate", "20"]
    table = cli("serve", "--plan", *args)
    assert table.exit_code == 0, table.stderr
    doc = json.loads(cli("serve", "--plan", *args, "-f", "json").stdout)
    best = doc["best"]
    # the table prints the `flopcast serve` command of the cheapest configuration: run it
    command = table.stdout.split("`flopcast ")[1].split("`")[0].replace("\n", " ").split()
    assert command[0] == "serve" and f"--devices {best['tensor_parallel']}" in " ".join(command)
    alone = cli(*command, "-f", "json")
    assert alone.exit_code == 0, alone.stderr
    served = json.loads(alone.stdout)
    load = served["load"]
    assert load["sustainable"]
    assert load["request_rate_per_s"] == pytest.approx(20 / best["replicas"])
    assert load["time_to_first_token_p90_seconds"] <= 0.5 and load["time_per_output_token_p90_seconds"] <= 0.05
    assert load["time_to_first_token_p90_seconds"] == pytest.approx(best["time_to_first_token_p90_seconds"])
    assert load["time_per_output_token_p90_seconds"] == pytest.approx(best["time_per_output_token_p90_seconds"])
    per_device = served["cost"]["usd_per_device_hour"]
    assert best["usd_per_hour"] == pytest.approx(per_device * best["devices"])


def test_pareto_is_sorted_and_non_dominated():
    report = serve_plan(model="llama-3.1-8b", request_rate=20, ttft="30ms", tpot="20ms")
    points = report.pareto
    assert len(points) >= 3
    costs = [p.usd_per_hour for p in points]
    firsts = [p.time_to_first_token_p90_seconds for p in points]
    assert costs == sorted(costs) and len(set(costs)) == len(costs)  # dearer one by one
    assert all(b < a for a, b in zip(firsts, firsts[1:], strict=False))  # and each faster than every cheaper
    assert all(p.time_per_output_token_p90_seconds <= 0.020 for p in points)  # the TPOT target holds on all
    assert all(p.meets_targets == (p.time_to_first_token_p90_seconds <= 0.030) for p in points)
    assert report.best in points and report.best == min((p for p in points if p.meets_targets),
                                                        key=lambda p: p.usd_per_hour)  # fmt: skip


def test_the_library_call_is_the_command_and_names_keywords():
    import flopcast

    report = flopcast.serve_plan(model="llama-3.1-8b", hardware="h100-80gb", request_rate="20", ttft=0.03)
    assert report.report == "serve-plan" and report.best.hardware == "h100-80gb"
    with pytest.raises(InvalidValue) as info:
        flopcast.serve_plan(model="llama-3.1-8b", request_rate=20)
    assert info.value.one_line().startswith("plan needs a target: ttft, tpot or both")


def test_a_higher_request_rate_never_gets_cheaper():
    costs = [serve_plan(**SMALL, request_rate=rate, ttft="40ms", tpot="10ms").best.usd_per_hour
             for rate in (2, 10, 20, 40, 60)]  # fmt: skip
    assert costs == sorted(costs) and costs[-1] > costs[0]


def test_p50_targets_never_cost_more_than_p90():
    at = {q: serve_plan(**SMALL, request_rate=40, ttft="20ms", tpot="6ms", percentile=q).best for q in ("p50", "p90")}
    assert at["p50"].usd_per_hour <= at["p90"].usd_per_hour
    assert at["p50"].time_to_first_token_p50_seconds <= 0.020 and at["p90"].time_to_first_token_p90_seconds <= 0.020


# --- the command line -------------------------------------------------------------------------------------


def test_an_impossible_target_exits_3_with_the_nearest_misses(cli, one_line_error):
    args = ["serve", "--plan", "-m", "llama-3.1-8b", "--ttft", "0.1ms", "--request-rate", "20", "-H", "h100-80gb"]
    result = cli(*args)
    line = one_line_error(result, 3, "no configuration of h100-80gb", "TTFT ≤ 0.1 ms", "nearest:")
    assert "Closest near-misses" in result.stdout and "Pareto" in result.stdout
    doc = json.loads(cli(*args, "-f", "json").stdout)
    assert doc["feasible"] is False and doc["best"] is None and doc["infeasible_reason"] in line
    misses = doc["near_misses"]
    assert 1 <= len(misses) <= 5
    for miss in misses:
        assert not miss["meets_targets"] and miss["time_to_first_token_p90_seconds"] > 0.1e-3
        assert miss["miss"].startswith("TTFT P90 ") and miss["miss"].endswith("> 0.1 ms")
    # ranked by how far they miss
    ratios = [m["time_to_first_token_p90_seconds"] for m in misses]
    assert ratios == sorted(ratios)


def test_percentile_spellings_agree(cli):
    base = ["serve", "--plan", "-m", "llama-3.1-8b", "--tpot", "10ms", "--request-rate", "20", "-H", "h100-80gb",
            "-f", "json"]  # fmt: skip
    docs = [json.loads(cli(*base, "--percentile", p).stdout) for p in ("90", "P90", "90%")]
    assert {d["inputs"]["percentile"] for d in docs} == {"p90"}
    assert len({json.dumps(d["best"]) for d in docs}) == 1
    assert json.loads(cli(*base).stdout)["inputs"]["percentile"] == "p90"  # the default


def test_every_plan_flag_reaches_the_json(cli):
    result = cli("serve", "--plan", "-m", "llama-3.1-8b", "-H", "h100-80gb,a100-80gb", "--weights", "8,4",
                 "--kv-bits", "8", "--prompt-tokens", "1024", "--output-tokens", "128", "--runtime", "sglang",
                 "--ttft", "0.4s", "--tpot", "40ms", "--percentile", "p50", "--max-devices", "8",
                 "--request-rate", "12", "--price-tier", "on-demand", "--matmul-efficiency", "0.5",
                 "--bandwidth-efficiency", "0.6", "--seq-len", "4096", "--compute", "bf16,fp8",
                 "-f", "json")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["inputs"] == {
        "model": "llama-3.1-8b", "hardware": ["h100-80gb", "a100-80gb"], "request_rate_per_s": 12.0,
        "prompt_tokens": 1024, "output_tokens": 128, "kv_bits": 8, "weights_bits": [8, 4], "runtime": "sglang",
        "compute": ["bf16", "fp8"], "ttft_target_seconds": 0.4, "tpot_target_seconds": 0.04, "percentile": "p50",
        "max_devices": 8,
        "price_tier": "on-demand", "price_per_hour_usd": None, "matmul_efficiency": 0.5,
        "bandwidth_efficiency": 0.6,
    }  # fmt: skip
    assert doc["model"]["context_tokens"] == 4096
    points = [doc["best"], *doc["pareto"]]
    assert {p["weights_bits"] for p in points} <= {8, 4} and all(p["devices"] <= 8 for p in points)
    assert {p["runtime"] for p in points} == {"sglang"}
    assert all(p["devices"] == p["tensor_parallel"] * p["replicas"] for p in points)
    # W8A8 only where the profile has an fp8 peak (the H100, not the A100) and on 8-bit weights
    fp8 = [p for p in points if p["compute"] == "fp8"]
    assert all(p["hardware"] == "h100-80gb" and p["weights_bits"] == 8 for p in fp8)


def test_compute_formats_are_searched_and_can_be_restricted(cli):
    base = ["serve", "--plan", "-m", "llama-3.1-70b", "-H", "h100-80gb", "--ttft", "500ms", "--tpot", "50ms",
            "--request-rate", "20", "-f", "json"]  # fmt: skip
    both = json.loads(cli(*base).stdout)
    only_bf16 = json.loads(cli(*base, "--compute", "bf16").stdout)
    assert both["best"]["usd_per_hour"] <= only_bf16["best"]["usd_per_hour"]  # more formats never cost more
    assert {p["compute"] for p in only_bf16["pareto"]} == {"bf16"}
    only_fp8 = json.loads(cli(*base, "--compute", "fp8").stdout)
    assert {(p["compute"], p["weights_bits"]) for p in only_fp8["pareto"]} == {("fp8", 8)}
    # on an H100 W8A8 beats 8-bit weight-only (same bytes, twice the linear peak) and wins here; the printed
    # command carries it, and re-run alone it gives the plan's latencies
    assert both["best"]["compute"] == "fp8"
    line = cli(*base[:-2]).stdout.split("`flopcast ")[1].split("`")[0].replace("\n", " ").split()
    assert "--compute" in line and line[line.index("--compute") + 1] == "fp8"
    alone = json.loads(cli(*line[:], "-f", "json").stdout)
    load = next(v for v in alone["variants"] if v["weights_bits"] == 8)["load"]
    assert load["time_per_output_token_p90_seconds"] == pytest.approx(
        both["best"]["time_per_output_token_p90_seconds"], rel=1e-9
    )


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--ttft", "500ms", "--request-rate", "0"], ["--request-rate", "positive"]),
        (["--ttft", "500ms", "--request-rate", "-3"], ["--request-rate"]),
        (["--ttft", "500ms", "--request-rate", "lots"], ["--request-rate", "cannot read"]),
        (["--ttft", "500ms"], ["--plan needs --request-rate"]),
        (["--request-rate", "20"], ["--plan needs a target", "--ttft", "--tpot"]),
        (["--ttft", "500ms", "--request-rate", "20", "--runtime", "vlm"], ["no such serving runtime", "vllm"]),
        (["--ttft", "500ms", "--request-rate", "20", "--percentile", "p99"], ["--percentile", "p50 or p90"]),
        (["--ttft", "fast", "--request-rate", "20"], ["--ttft", "cannot read"]),
        (["--ttft", "0ms", "--request-rate", "20"], ["--ttft", "positive"]),
        (["--ttft", "500ms", "--request-rate", "20", "--compute", "int8"], ["--compute 'int8'", "bf16, fp8, fp4"]),
        (["--tpot", "-5ms", "--request-rate", "20"], ["--tpot", "positive"]),
        (["--ttft", "500ms", "--request-rate", "20", "--max-devices", "0"], ["--max-devices"]),
        (["--ttft", "500ms", "--request-rate", "20", "--weights", "3"], ["--weights 3", "16, 8 or 4"]),
        (["--ttft", "500ms", "--request-rate", "20", "--weights", "4", "--runtime", "eager"], ["--weights 4"]),
        (["--ttft", "500ms", "--request-rate", "20", "-H", "nosuch"], ["unknown hardware"]),
        (["--ttft", "500ms", "--request-rate", "20", "-H", "m4-max-128gb"], ["no hardware to search", "no price"]),
        (["--ttft", "500ms", "--request-rate", "20", "--devices", "2"], ["--devices with --plan", "--max-devices"]),
        (["--ttft", "500ms", "--request-rate", "20", "--batch", "8"], ["--batch with --plan"]),
        (["--ttft", "500ms", "--request-rate", "20", "--storage", "nvme"], ["--storage with --plan"]),
        (["--ttft", "500ms", "--request-rate", "20", "--prompt-tokens", "9000"], ["maximum context"]),
        (["--ttft", "500ms", "--request-rate", "20", "--price-tier", "nosuch"], ["--price-tier nosuch"]),
        (["--ttft", "500ms", "--request-rate", "20", "--price-per-hour", "2"], ["--price-per-hour prices one"]),
    ],
)
def test_bad_plan_input_is_one_line_exit_2(cli, one_line_error, args, fragments):
    one_line_error(cli("serve", "--plan", "-m", "llama-3.1-8b", *args), 2, *fragments)


@pytest.mark.parametrize("flag", [["--ttft", "500ms"], ["--tpot", "50ms"], ["--percentile", "p50"],
                                  ["--max-devices", "8"]])  # fmt: skip
def test_plan_flags_without_plan_are_refused(cli, one_line_error, flag):
    one_line_error(cli("serve", "-m", "llama-3.1-8b", *flag), 2, f"{flag[0]} is for --plan")


def test_markdown_csv_and_report_rerender(cli, tmp_path):
    args = ["serve", "--plan", "-m", "llama-3.1-8b", "--ttft", "30ms", "--tpot", "20ms", "--request-rate", "20",
            "-H", "h100-80gb"]  # fmt: skip
    saved = tmp_path / "plan.json"
    assert cli(*args, "-f", "json", "-o", saved).exit_code == 0
    doc = json.loads(saved.read_text())
    csv = cli(*args, "-f", "csv").stdout.strip().splitlines()
    assert csv[0].startswith("hardware,runtime,bits,tp×r") and len(csv) == 1 + len(doc["pareto"])
    markdown = cli(*args, "-f", "markdown").stdout
    assert markdown.startswith("serve --plan: llama-3.1-8b at 20 requests/s") and "| hardware |" in markdown
    again = cli("report", saved, "-f", "markdown")
    assert again.exit_code == 0, again.stderr
    assert again.stdout == markdown


def test_a_runtime_without_kernels_for_a_vendor_skips_that_hardware(cli):
    # vLLM has no Metal kernels: the M4 Max is skipped with the reason, the H100 is searched
    r = cli("serve", "--plan", "-m", "llama-2-7b", "-H", "m4-max-128gb,h100-80gb", "--runtime", "vllm",
            "--tpot", "50ms", "--request-rate", "1", "-f", "json")  # fmt: skip
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["skipped"] == [{"hardware": "m4-max-128gb", "reason": "vllm does not run on Apple GPUs"}]
    assert doc["best"]["hardware"] == "h100-80gb"
