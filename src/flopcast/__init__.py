"""flopcast: plan compute for training and serving deep-learning models.

Library use::

    import flopcast
    report = flopcast.estimate(model="llama-2-7b", tokens="2T", hardware="a100-80gb", devices=512)
    print(report.time.wall_clock_seconds)

Heavy modules load lazily so that the CLI starts fast.
"""

from flopcast._version import __version__

__all__ = ["__version__", "estimate"]


def __getattr__(name: str):
    if name == "estimate":
        from flopcast.api import estimate

        return estimate
    raise AttributeError(f"module 'flopcast' has no attribute {name!r}")
