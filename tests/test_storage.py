"""Issue 16: checkpoints and the dataset on a storage tier. Expected values are derived by hand in each test."""

from __future__ import annotations

import json
import math

import pytest

import flopcast
from flopcast.model_resolve import resolve_model


def test_a_70b_mixed_precision_checkpoint_is_14_to_16_bytes_per_parameter():
    """16-bit weights (2) + fp32 master (4) + Adam m and v (4 + 4) = 14 B/param, gradients not saved, plus about a
    megabyte of RNG and data-loader state per rank."""
    report = flopcast.estimate("llama-3-70b", "15T", "h100-80gb", 2048)
    params = report.model.params
    per_param = report.storage.checkpoint_bytes / params
    assert 14.0 <= per_param <= 16.0
    assert report.storage.checkpoint_bytes == pytest.approx(14 * params + 2048 * 1e6, rel=1e-12)
    assert report.storage.weights_export_bytes == pytest.approx(2 * params, rel=1e-12)


def test_dataset_bytes_follow_the_token_id_width():
    """15T tokens of a 128,256-token vocabulary need int32 ids: 60 TB; a 32,000-token vocabulary fits uint16."""
    big = flopcast.estimate("llama-3-70b", "15T", "h100-80gb", 2048)
    assert big.storage.dataset_bytes == pytest.approx(15e12 * 4)
    small = flopcast.estimate("llama-2-7b", "2T", "a100-80gb", 256)
    assert resolve_model("llama-2-7b").vocab == 32000
    assert small.storage.dataset_bytes == pytest.approx(2e12 * 2)


def test_young_daly_interval_on_lustre_by_hand():
    """FSx for Lustre at 125 MB/s per TiB provisioned, holding the dataset and 2 checkpoints; 256 nodes at
    12.5 GB/s each are not the limit. MTBF of 2048 GPUs at Llama 3's 466 interruptions per 54 days on 16,384:
    54 · 86,400 · 16,384 / (466 · 2048) = 80,096 s. Interval = sqrt(2 · write · MTBF)."""
    report = flopcast.estimate("llama-3-70b", "15T", "h100-80gb", 2048, storage="lustre")
    st = report.storage
    ckpt = st.checkpoint_bytes
    stored = 15e12 * 4 + 2 * ckpt
    aggregate = 125e6 * stored / 2**40
    assert aggregate < 256 * 12.5e9
    write = ckpt / aggregate
    mtbf = 54 * 86_400 * 16_384 / (466 * 2048)
    assert st.mtbf_seconds == pytest.approx(mtbf, rel=1e-9)
    assert st.checkpoint_write_seconds == pytest.approx(write, rel=1e-9)
    assert st.checkpoint_interval_seconds == pytest.approx(math.sqrt(2 * write * mtbf), rel=1e-9)
    assert st.checkpoint_share_of_wall_clock == pytest.approx(write / math.sqrt(2 * write * mtbf), rel=1e-9)
    months = report.time.wall_clock_seconds / (30.4375 * 86_400)
    assert st.storage_usd == pytest.approx(stored / 1e9 * 0.145 * months, rel=1e-9)
    assert st.egress_usd == pytest.approx((15e12 * 4 + ckpt) / 1e9 * 0.09, rel=1e-9)


def test_per_node_streams_bound_object_storage():
    """S3: 12.5 GB/s per node and no aggregate: 8 nodes write a 7B checkpoint (14 B/param) at 100 GB/s."""
    report = flopcast.estimate("llama-2-7b", "2T", "a100-80gb", 64, storage="s3")
    assert report.storage.checkpoint_write_seconds == pytest.approx(report.storage.checkpoint_bytes / (8 * 12.5e9))


def test_transfer_time_at_a_given_rate():
    report = flopcast.estimate("llama-2-7b", "2T", "a100-80gb", 64, transfer_gbps=10)
    moved = report.storage.dataset_bytes + report.storage.checkpoint_bytes
    assert report.storage.transfer_seconds == pytest.approx(moved * 8 / 10e9)


def test_local_nvme_is_flagged_as_not_durable():
    report = flopcast.estimate("llama-2-7b", "2T", "a100-80gb", 64, storage="local-nvme")
    assert any("not durable" in w for w in report.warnings)


def test_the_storage_block_in_json_and_table(cli):
    out = cli("estimate", "-m", "llama-3-70b", "-t", "15T", "-H", "h100-80gb", "--devices", "2048",
              "--storage", "lustre", "--format", "json")  # fmt: skip
    assert out.exit_code == 0, out.stderr
    block = json.loads(out.stdout)["storage"]
    assert block["tier"] == "lustre" and block["checkpoint_interval_seconds"] > 0
    table = cli("estimate", "-m", "llama-3-70b", "-t", "15T", "-H", "h100-80gb", "--devices", "2048",
                "--storage", "lustre")  # fmt: skip
    assert "Storage: lustre" in table.stdout and "Young/Daly" in table.stdout


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--storage", "lustr"], ["unknown storage tier", "did you mean lustre"]),
        (["--keep-checkpoints", "0"], ["--keep-checkpoints", "is zero"]),
        (["--transfer-gbps", "0"], ["--transfer-gbps", "moves nothing"]),
        (["--transfer-gbps", "fast"], ["--transfer-gbps", "not a number"]),
    ],
)
def test_bad_storage_options_are_one_line(cli, one_line_error, args, fragments):
    one_line_error(cli("estimate", "-m", "llama-2-7b", "-t", "1T", "--devices", "8", *args), 2, *fragments)


def test_a_broken_tiers_file_is_a_runtime_failure(tmp_path, monkeypatch):
    import flopcast.storage as storage
    from flopcast.errors import RuntimeFailure

    bad = tmp_path / "storage_tiers.yaml"
    bad.write_text("tiers:\n  - id: x\n    title: x\n    write_bytes_per_s_per_node: -5\n")
    monkeypatch.setattr(storage, "TIERS_FILE", bad)
    with pytest.raises(RuntimeFailure, match="not a sane quantity"):
        storage.tiers.__wrapped__()


def test_plan_gives_its_best_plan_the_storage_figures():
    report = flopcast.plan(model="llama-2-7b", tokens="2T", hardware="h100-80gb", storage="s3", max_devices=256)
    st = report.best.storage
    nodes = -(-report.best.inputs.devices // 8)
    assert st.tier == "s3"
    assert st.checkpoint_write_seconds == pytest.approx(st.checkpoint_bytes / (nodes * 12.5e9))


def test_serve_reports_the_weights_load_time_from_the_tier():
    """Llama 2 70B in 16-bit weights (~138 GB) on 2 H100s of one node, from S3 at 12.5 GB/s per node."""
    report = flopcast.serve(model="llama-2-70b", hardware="h100-80gb", storage="s3")
    wl = report.weights_load
    assert wl.tier == "s3" and wl.nodes == 1
    assert wl.load_seconds == pytest.approx(report.memory.weights_bytes / 12.5e9)
    assert flopcast.serve(model="llama-2-70b", hardware="h100-80gb").weights_load is None


def test_a_tier_puts_its_own_checkpoint_figures_into_the_wall_clock():
    """With a tier, wall-clock = training / (1 − rate·devices·(restart + load + interval/2)) × (1 + write/interval
    + evaluation + data stalls): the restart 600 s, evaluation 3.33% and data stalls 1% of reliability.py; without
    a tier the pinned 4% checkpoint allowance and 800 s interval stay."""
    report = flopcast.estimate("llama-3-70b", "15T", "h100-80gb", 2048, storage="lustre")
    st, t = report.storage, report.time
    rate = 466 / (54 * 86_400 * 16_384)
    lost = 600 + st.checkpoint_load_seconds + st.checkpoint_interval_seconds / 2
    expected = t.training_seconds / (1 - rate * 2048 * lost) * (1 + st.checkpoint_share_of_wall_clock + 0.1 / 3 + 0.01)
    assert t.wall_clock_seconds == pytest.approx(expected, rel=1e-9)
    assert t.device_hours == pytest.approx(expected * 2048 / 3600, rel=1e-9)
    plain = flopcast.estimate("llama-3-70b", "15T", "h100-80gb", 2048)
    assert plain.time.training_seconds == pytest.approx(t.training_seconds, rel=1e-12)
    assert plain.time.wall_clock_seconds != pytest.approx(t.wall_clock_seconds, rel=1e-3)
