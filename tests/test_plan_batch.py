"""What a plan and an estimate say about the global batch they chose, and MFU before and after overhead."""

from __future__ import annotations

import pytest

import flopcast


@pytest.fixture(scope="module")
def seven_b_plan():
    return flopcast.plan(model="llama-2-7b", tokens="2T", hardware="h100-80gb", deadline="30d", max_devices=256)


def test_a_plan_says_when_its_batch_is_not_the_default_rules(seven_b_plan):
    # Llama-2-7B (6.7B parameters) at 4096 tokens: the rule's 2M tokens below 20B (GPT-3's 6.7B–13B batch,
    # Brown et al. 2020 Table 2.1) are 2^21 / 4096 = 512 sequences
    assert seven_b_plan.inputs.global_batch_rule == 512
    best = seven_b_plan.best.parallelism
    step = best.dp * best.micro_batch
    assert best.global_batch % step == 0
    said = [w for w in seven_b_plan.warnings if "global batch" in w]
    if best.global_batch != 512:
        assert said and f"{best.global_batch} sequences" in said[0] and f"{best.dp} × {best.micro_batch}" in said[0]
    else:
        assert not said


def test_a_pinned_global_batch_is_kept_and_not_warned_about():
    report = flopcast.plan(
        model="llama-2-7b", tokens="2T", hardware="h100-80gb", deadline="30d", max_devices=256, global_batch=768
    )
    assert report.best.parallelism.global_batch == 768 and report.inputs.global_batch_rule is None
    assert not [w for w in report.warnings if "global batch" in w]


def test_effective_mfu_is_the_whole_runs_model_flops_over_wall_clock():
    r = flopcast.estimate(model="llama-2-7b", tokens="2T", hardware="a100-80gb", devices=256)
    by_hand = r.flops.total / (r.time.wall_clock_seconds * 256 * 312e12)  # A100 bf16 dense peak, datasheet
    assert r.efficiency.effective_mfu == pytest.approx(by_hand, rel=1e-9)
    # wall-clock adds interruptions and overhead to the steps, so the effective figure is lower
    assert r.efficiency.effective_mfu < r.efficiency.mfu
    assert r.efficiency.effective_mfu == pytest.approx(
        r.efficiency.mfu * r.time.training_seconds / r.time.wall_clock_seconds, rel=1e-9
    )


# --- memory headroom ------------------------------------------------------------------------------------------

FIXED = {"tp": 1, "pp": 1, "dp": 8, "micro_batch": 1, "global_batch": 256, "zero": 3, "recompute": "none"}


def test_a_layout_fits_only_within_the_usable_memory():
    whole = flopcast.estimate(model="llama-2-7b", tokens="1T", devices=8, memory_headroom=0, **FIXED)
    need, capacity = whole.memory.per_device_bytes, whole.memory.capacity_bytes
    assert whole.memory.fits and whole.memory.usable_bytes == capacity
    share = need / capacity  # the layout's share of the device
    tight = flopcast.estimate(model="llama-2-7b", tokens="1T", devices=8, memory_headroom=1 - share + 0.01, **FIXED)
    loose = flopcast.estimate(model="llama-2-7b", tokens="1T", devices=8, memory_headroom=1 - share - 0.01, **FIXED)
    assert not tight.memory.fits and any("usable" in w for w in tight.warnings)
    assert loose.memory.fits and loose.memory.per_device_bytes == pytest.approx(need)


def test_the_default_headroom_keeps_a_tenth_of_every_device_free_in_a_plan(seven_b_plan):
    """The plan that used 79.1–79.9 GB of 80 before the headroom now stays within 72 GB."""
    best = seven_b_plan.best
    assert best.memory.headroom_fraction == 0.10
    assert best.memory.per_device_bytes <= 0.9 * best.memory.capacity_bytes
    for point in seven_b_plan.pareto:
        assert point.memory_per_device_bytes <= 0.9 * point.capacity_bytes


@pytest.mark.parametrize("value", ["0.9", "95%", "-0.1", "x"])
def test_a_headroom_outside_zero_to_ninety_percent_is_refused(cli, value):
    result = cli("estimate", "--model", "llama-2-7b", "--tokens", "1T", "--devices", "8", "--memory-headroom", value)
    assert result.exit_code == 2 and "--memory-headroom" in result.stderr and "Traceback" not in result.stderr
