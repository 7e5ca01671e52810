"""`serve --request-rate`: continuous batching in steady state, against hand derivations.

The profile here has a huge peak, so every pass is memory bound and its time is bytes / bandwidth; the runtime
is bare (no fixed cost, all of the bandwidth), so the steady state can be solved by hand in closed form.
"""

from __future__ import annotations

import json

import pytest

from flopcast.errors import Infeasible, InvalidValue
from flopcast.serving import ServeRequest, estimate_serving
from flopcast.serving_load import poisson_quantile
from serve_bare import BW, IDEAL, KV, LLAMA2_7B, W_HELD, W_READ, P, T
from serve_bare import bare_profile as _profile


def _serve(rate, **kw):
    req = ServeRequest(runtime=IDEAL, prompt_tokens=P, output_tokens=T, request_rate=rate, devices=1, **kw)
    return estimate_serving(LLAMA2_7B, _profile(), req)


def test_steady_state_by_hand():
    rate = 5.0
    load = _serve(rate).load
    # one prompt: the weights + its KV written, t_p = (W + P·K)/B; a decode step of b sequences at the mean
    # context c = P + T/2 = 640: τ(b) = (W + b·K·c)/B
    t_p = (W_READ + P * KV) / BW
    c = P + T / 2
    rho = rate * t_p
    # Little's law, b = λ·T·τ(b)/(1 − ρ), is linear in b: b = λTW / (B(1 − ρ) − λTKc)
    b = rate * T * W_READ / (BW * (1 - rho) - rate * T * KV * c)
    tau = (W_READ + b * KV * c) / BW
    assert load.prefill_busy_fraction == pytest.approx(rho, rel=1e-9)
    assert load.running_batch == pytest.approx(b, rel=1e-3)
    assert load.step_seconds == pytest.approx(tau, rel=1e-3)
    # TPOT: T − 1 steps of τ plus N prefills of t_p, N ~ Poisson(λ(T − 1)τ/(1 − ρ)); its median by hand
    mean_n = rate * (T - 1) * tau / (1 - rho)
    assert load.time_per_output_token_p50_seconds == pytest.approx(
        tau + t_p * poisson_quantile(mean_n, 0.5) / (T - 1), rel=1e-3
    )
    assert load.output_tokens_per_second == rate * T
    # cost at this load: $3.60 per device-hour over 1,280 tokens/s = 4.608M tokens/h → $0.78125 per 1M
    assert load.usd_per_million_tokens == pytest.approx(3.6 / (rate * T * 3600) * 1e6)


def test_most_sustained_rate_by_hand():
    # the batch whose KV cache fits: (80 GB − 8 GB allowance − weights) / (K·(P + T)) sequences
    b_max = (80e9 - 8e9 - W_HELD) // (KV * (P + T))
    t_p = (W_READ + P * KV) / BW
    tau = (W_READ + b_max * KV * (P + T / 2)) / BW
    most = 1 / (t_p + T * tau / b_max)
    load = _serve(1.0).load
    assert load.max_request_rate_per_s == pytest.approx(most, rel=1e-9)
    with pytest.raises(Infeasible) as info:
        _serve(most * 1.01)
    assert info.value.exit_code == 3 and f"{most:.3g} requests/s" in info.value.one_line()


def test_more_load_means_a_bigger_batch_and_slower_tokens():
    loads = [_serve(r).load for r in (0.5, 1, 3, 6)]
    for lo, hi in zip(loads, loads[1:], strict=False):
        assert hi.running_batch > lo.running_batch
        assert hi.time_per_output_token_p50_seconds >= lo.time_per_output_token_p50_seconds
        assert hi.time_to_first_token_p90_seconds >= lo.time_to_first_token_p50_seconds
    # at a light load the first token comes after about one prefill (+ at most one decode step in progress)
    t_p = (W_READ + P * KV) / BW
    light = loads[0]
    assert t_p <= light.time_to_first_token_p50_seconds <= t_p + light.step_seconds
    for g in loads:
        assert g.time_to_first_token_p90_seconds >= g.time_to_first_token_p50_seconds
        assert g.time_per_output_token_p90_seconds >= g.time_per_output_token_p50_seconds


def test_poisson_quantiles():
    # Poisson(4): P(N ≤ 3) = 0.433, P(N ≤ 4) = 0.629 → median 4; P(N ≤ 6) = 0.889, P(N ≤ 7) = 0.949 → P90 7
    assert poisson_quantile(4.0, 0.5) == 4
    assert poisson_quantile(4.0, 0.9) == 7
    assert poisson_quantile(0.0, 0.9) == 0
    # a large mean: normal, 10,000 ± 1.2816·100 → 10,128
    assert poisson_quantile(10_000.0, 0.9) == pytest.approx(10_128, abs=1)


@pytest.mark.parametrize("rate", [0.0, -1.0, float("nan")])
def test_a_rate_that_is_not_positive_is_refused(rate):
    with pytest.raises(InvalidValue) as info:
        _serve(rate)
    assert info.value.one_line().startswith("request_rate")


def test_cli_request_rate(cli):
    ok = cli("serve", "-m", "llama-2-7b", "-H", "h100-80gb", "--request-rate", "5", "-f", "json")
    assert ok.exit_code == 0, ok.stderr
    doc = json.loads(ok.stdout)
    assert doc["inputs"]["request_rate_per_s"] == 5 and doc["load"]["sustainable"]
    assert all(v["load"]["request_rate_per_s"] == 5 for v in doc["variants"])
    table = cli("serve", "-m", "llama-2-7b", "-H", "h100-80gb", "--request-rate", "5")
    assert "time to first token P50 / P90" in table.stdout
    too_many = cli("serve", "-m", "llama-2-7b", "-H", "h100-80gb", "--request-rate", "1000")
    assert too_many.exit_code == 3 and "sustains at most" in too_many.stderr and "Traceback" not in too_many.stderr
    bad = cli("serve", "-m", "llama-2-7b", "--request-rate", "0")
    assert bad.exit_code == 2 and "--request-rate" in bad.stderr
