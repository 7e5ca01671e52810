"""`serve --request-rate` with length distributions (`--prompt-dist`, `--output-dist`) and chunked prefill
(`--chunked-prefill`), against hand derivations.

As in test_serve_load.py: a profile with a huge peak, so every pass is memory bound (time = bytes / bandwidth),
and a bare runtime (no fixed cost, all of the bandwidth), so the queue and the steps can be written by hand.
"""

from __future__ import annotations

import json
import math

import pytest

from flopcast.models import ModelSpec
from flopcast.serving import ServeRequest, estimate_serving
from flopcast.serving_load import poisson_quantile
from serve_bare import BW, IDEAL, KV, LLAMA2_7B, W_READ, P, T
from serve_bare import bare_profile as _profile


def _load(rate, model=LLAMA2_7B, prompt=P, output=T, **kw):
    req = ServeRequest(runtime=IDEAL, prompt_tokens=prompt, output_tokens=output, request_rate=rate, devices=1, **kw)
    return estimate_serving(model, _profile(), req).load


# --- Pollaczek–Khinchine ------------------------------------------------------------------------------
def test_pk_mean_wait_by_hand_fixed_and_exponential_prompts():
    rate = 6.0
    # t_p(P) = (W + P·K)/B = a + b·P: linear in P, so over exponential prompts of mean m
    # E[S] = a + b·m and E[S²] = a² + 2ab·m + b²·E[P²] with E[P²] = 2m²; for fixed prompts E[S²] = E[S]²
    a, b, m = W_READ / BW, KV / BW, float(P)
    mean = a + b * m
    sq_exp = a * a + 2 * a * b * m + b * b * 2 * m * m
    rho = rate * mean
    fixed = _load(rate)
    expo = _load(rate, prompt_dist="exponential")
    assert fixed.prefill_busy_fraction == pytest.approx(rho, rel=1e-9)
    assert expo.prefill_busy_fraction == pytest.approx(rho, rel=1e-9)  # the same mean prefill
    assert fixed.queue_wait_mean_seconds == pytest.approx(rate * mean**2 / (2 * (1 - rho)), rel=1e-9)  # M/D/1
    assert expo.queue_wait_mean_seconds == pytest.approx(rate * sq_exp / (2 * (1 - rho)), rel=1e-9)  # M/G/1
    # uniform prompts on [0, 2m]: E[P²] = 4m²/3
    uni = _load(rate, prompt_dist="uniform")
    sq_uni = a * a + 2 * a * b * m + b * b * 4 * m * m / 3
    assert uni.queue_wait_mean_seconds == pytest.approx(rate * sq_uni / (2 * (1 - rho)), rel=1e-9)


def test_pk_wait_doubles_for_exponential_prompts_when_the_prefill_is_proportional_to_the_prompt():
    # a KV-heavy toy (2 layers, d = 128): the weights (≈ 0.7 MB) are read in the time of ~660 prompt tokens'
    # KV (1,024 B each), so at 50k-token prompts t_p = a + b·P with a/(b·m) ≈ 1.3% and E[S²]/E[S]² → E[P²]/m² =
    # 2 (exponential), 4/3 (uniform): (ε² + 2ε + 2)/(1 + ε)² = 1.974 and (ε² + 2ε + 4/3)/(1 + ε)² = 1.325.
    # (Attention FLOPs, ∝ P², overtake the bytes only past 2M tokens, 40 means out.) Same ρ, so the waits keep it
    toy = ModelSpec(name="toy", layers=2, d_model=128, heads=2, ffn=256, gated_ffn=True, vocab=100, seq_len=10**7)
    rate, prompt = 20.0, 50_000
    fixed = _load(rate, model=toy, prompt=prompt, output=64)
    expo = _load(rate, model=toy, prompt=prompt, output=64, prompt_dist="exponential")
    uni = _load(rate, model=toy, prompt=prompt, output=64, prompt_dist="uniform")
    weights = 2 * (2 * (4 * 128 * 128 + 3 * 128 * 256) + 100 * 128)  # 340,480 params read at 2 B each
    eps = weights / (1024 * prompt)  # a / (b·m)
    assert expo.queue_wait_mean_seconds / fixed.queue_wait_mean_seconds == pytest.approx(
        (eps**2 + 2 * eps + 2) / (1 + eps) ** 2, rel=1e-6
    )
    assert uni.queue_wait_mean_seconds / fixed.queue_wait_mean_seconds == pytest.approx(
        (eps**2 + 2 * eps + 4 / 3) / (1 + eps) ** 2, rel=1e-6
    )
    assert expo.queue_wait_mean_seconds / fixed.queue_wait_mean_seconds == pytest.approx(2.0, rel=0.02)
    # the tail: exponential prompts wait longer at P90, and the short ones start sooner at P50
    assert expo.time_to_first_token_p90_seconds > fixed.time_to_first_token_p90_seconds
    assert expo.time_to_first_token_p50_seconds < fixed.time_to_first_token_p50_seconds


def test_exponential_outputs_decode_at_the_length_biased_context():
    # E[T²]/(2E[T]) = T for exponential outputs (T/2 for fixed): the decode step of b sequences reads
    # W + b·K·(P + T) bytes instead of W + b·K·(P + T/2); Little's law keeps the mean output T
    rate = 5.0
    t_p = (W_READ + P * KV) / BW
    rho = rate * t_p
    load = _load(rate, output_dist="exponential")
    c = P + T
    b = rate * T * W_READ / (BW * (1 - rho) - rate * T * KV * c)  # b = λT·τ(b)/(1 − ρ), linear in b
    assert load.running_batch == pytest.approx(b, rel=1e-3)
    assert load.step_seconds == pytest.approx((W_READ + b * KV * c) / BW, rel=1e-3)
    # fixed prompts: the prefill and its queue are as before
    assert load.queue_wait_mean_seconds == pytest.approx(rate * t_p**2 / (2 * (1 - rho)), rel=1e-9)
    # a mix of output lengths spreads TPOT: the short requests see relatively more stall per token
    fixed = _load(rate)
    assert load.time_per_output_token_p90_seconds > fixed.time_per_output_token_p90_seconds


# --- chunked prefill ----------------------------------------------------------------------------------
def _hand_chunked(batch: float, budget: int):
    """τ₀, τ_f, the chunk c, the cost s a prompt adds: memory bound, by hand (serving_load's doc)."""
    ctx = P + T / 2
    c = min(budget - batch, P)
    tau0 = (W_READ + batch * KV * ctx) / BW
    # the chunk's KV written (c tokens) and the earlier chunks' KV read once ((P − c)/2 tokens on average)
    tauf = tau0 + (c + (P - c) / 2) * KV / BW
    return tau0, tauf, c, P * (tauf - tau0) / c


@pytest.mark.parametrize("rate, budget", [(2.0, 300), (6.0, 300), (6.0, 2048)])
def test_chunked_steady_state_by_hand(rate, budget):
    load = _load(rate, chunked_prefill_tokens=budget)
    b = load.running_batch
    tau0, tauf, c, s = _hand_chunked(b, budget)
    # Little's law with the chunks riding the steps: λ = B / (T·τ₀ + B·s)
    assert rate == pytest.approx(b / (T * tau0 + b * s), rel=2e-3)
    assert load.step_seconds == pytest.approx(tau0, rel=1e-6)
    assert load.chunk_step_seconds == pytest.approx(tauf, rel=1e-6)
    assert load.prefill_busy_fraction == pytest.approx(rate * P * tauf / c, rel=1e-6)
    assert load.prefill_chunks == math.ceil(P / c)
    # TPOT: τ₀ + s·N/(T − 1), N ~ Poisson(λ·(T − 1)·τ₀/(1 − λ·s))
    mean_n = rate * (T - 1) * tau0 / (1 - rate * s)
    assert load.time_per_output_token_p50_seconds == pytest.approx(
        tau0 + s * poisson_quantile(mean_n, 0.5) / (T - 1), rel=1e-3
    )
    # the prompt queue for the chunk slots: service P·τ_f/c, M/D/1 wait
    service = P * tauf / c
    rho = rate * service
    assert load.queue_wait_mean_seconds == pytest.approx(rate * service**2 / (2 * (1 - rho)), rel=1e-6)


def test_chunked_prefill_bounds_the_stall_and_spreads_the_prompt():
    rate, budget = 6.0, 300
    plain, chunked = _load(rate), _load(rate, chunked_prefill_tokens=budget)
    t_p = (W_READ + P * KV) / BW
    # unchunked, a prompt's whole prefill sits between two tokens of every running sequence
    assert plain.stall_seconds == pytest.approx(plain.step_seconds + t_p, rel=1e-9)
    # chunked, one step at most: the decode step plus at most the budget's tokens of KV written and the
    # prompt's earlier half read — far below a whole prefill (which re-reads all the weights)
    tau0, tauf, c, _ = _hand_chunked(chunked.running_batch, budget)
    assert chunked.stall_seconds == pytest.approx(tauf, rel=1e-6)
    assert chunked.stall_seconds - chunked.step_seconds <= (budget + P / 2) * KV / BW * (1 + 1e-9)
    assert chunked.stall_seconds < plain.stall_seconds / 1.5
    assert chunked.time_per_output_token_p90_seconds < plain.time_per_output_token_p90_seconds
    # TTFT: the prompt is spread over ⌈P/c⌉ = 2 steps (its last chunk's step carries the remainder)
    full = math.floor(P / c)
    rest = P - full * c
    own = full * tauf + tau0 + (rest + (P - rest) / 2) * KV / BW
    assert chunked.time_to_first_token_p50_seconds >= own * (1 - 1e-9)
    assert chunked.time_to_first_token_p50_seconds > plain.time_to_first_token_p50_seconds


def test_a_budget_the_batch_cannot_leave_room_in_is_unsustainable():
    from flopcast.errors import Infeasible

    with pytest.raises(Infeasible) as info:
        _load(5.0, chunked_prefill_tokens=4)
    assert "chunked_prefill" in info.value.one_line()


# --- the CLI ------------------------------------------------------------------------------------------
def test_cli_load_mix_json_and_table(cli):
    args = ["serve", "-m", "llama-2-7b", "-H", "h100-80gb", "--request-rate", "5", "--chunked-prefill", "512",
            "--prompt-dist", "exponential", "--output-dist", "uniform"]  # fmt: skip
    r = cli(*args, "-f", "json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["inputs"]["chunked_prefill_tokens"] == 512
    assert doc["inputs"]["prompt_dist"] == "exponential" and doc["inputs"]["output_dist"] == "uniform"
    load = doc["load"]
    assert load["queue_wait_mean_seconds"] > 0 and load["prefill_chunks"] >= 1
    assert load["stall_seconds"] == load["chunk_step_seconds"]
    import jsonschema  # the new fields are additive: the report still validates against `flopcast schema serve`

    schema = cli("schema", "serve")
    assert schema.exit_code == 0, schema.stderr
    jsonschema.validate(doc, json.loads(schema.stdout))
    md = cli(*args, "-f", "markdown")
    assert md.exit_code == 0, md.stderr
    for text in ("Pollaczek", "prefill chunks per mean prompt", "Sarathi-Serve", "M/G/1", "exponential prompt"):
        assert text in md.stdout, text


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--chunked-prefill", "512"], "needs --request-rate"),
        (["--prompt-dist", "exponential"], "needs --request-rate"),
        (["--request-rate", "2", "--output-dist", "pareto"], "--output-dist 'pareto': unknown"),
        (["--request-rate", "2", "--chunked-prefill", "0"], "--chunked-prefill"),
        (["--request-rate", "2", "--chunked-prefill", "lots"], "--chunked-prefill"),
        (["--request-rate", "2", "--chunked-prefill", "512", "--plan", "--ttft", "1s"], "--plan"),
    ],
)
def test_cli_bad_load_options_are_one_line_exit_2(one_line_error, cli, args, fragment):
    one_line_error(cli("serve", "-m", "llama-2-7b", "-H", "h100-80gb", *args), 2, fragment)
