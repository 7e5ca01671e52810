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
