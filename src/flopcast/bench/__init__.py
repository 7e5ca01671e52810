"""`flopcast bench`: measure this machine and check flopcast's own predictions on it (DESIGN §5).

Modules, one job each: :mod:`~flopcast.bench.kernel` (the gradient-descent kernel, its FLOP/byte counts,
timing), :mod:`~flopcast.bench.plan` (sizes, dtypes, memory check), :mod:`~flopcast.bench.roofline` (the
fit), :mod:`~flopcast.bench.verify` (predict, then train), :mod:`~flopcast.bench.run` (one whole run),
:mod:`~flopcast.bench.machine` (CPU facts), :mod:`~flopcast.bench.gpu` (the PyTorch/CUDA backend),
:mod:`~flopcast.bench.profile` (``--save-profile``) and :mod:`~flopcast.bench.chart` (text roofline chart).
Nothing here imports typer or rich.
"""
