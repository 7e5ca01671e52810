"""The bare serving set-up that the load tests solve by hand (test_serve_load.py, test_serve_load_mix.py).

A profile with a huge peak, so every pass is memory bound and takes bytes / bandwidth, and a runtime with no
fixed cost that reaches all of the bandwidth. Byte counts are derived in tests/test_serve.py.
"""

from __future__ import annotations

from flopcast.hardware import HardwareProfile
from flopcast.models import ModelSpec
from flopcast.runtimes import RuntimeProfile

LLAMA2_7B = ModelSpec(
    name="llama-2-7b", layers=32, d_model=4096, heads=32, ffn=11008, gated_ffn=True, vocab=32000, seq_len=4096
)
W_READ = 13_214_154_752  # 6,607,077,376 matmul + head weights × 2 B, read by every pass (tests/test_serve.py)
W_HELD = 13_476_831_232  # all 6,738,415,616 parameters × 2 B
KV = 524_288  # 2·32·32·128·2 B per token
BW = 1e12
IDEAL = RuntimeProfile(
    id="ideal", name="test", kind="gpu", bandwidth_fraction={16: 1.0}, kernels_per_layer=0, kernels_outside_layers=0,
    launch_seconds_per_kernel=0.0, gap_seconds_per_kernel=0.0, seconds_per_forward=0.0, stream_fraction=1.0,
)  # fmt: skip
P, T = 512, 256


def bare_profile() -> HardwareProfile:
    return HardwareProfile.model_validate(
        dict(id="test-gpu", name="t", kind="gpu", peak_flops_per_s={"bf16": 1e18}, memory_bytes=80e9,
             memory_bandwidth_bytes_per_s=BW, devices_per_node=8, intra_node_bandwidth_bytes_per_s=100e9,
             inter_node_bandwidth_bytes_per_s=10e9, sources=["test"],
             prices_usd_per_device_hour={"on-demand": {"usd_per_device_hour": 3.6, "date": "t", "source": "t"}})
    )  # fmt: skip
