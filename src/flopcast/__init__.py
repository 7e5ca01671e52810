"""flopcast: plan compute for training and serving deep-learning models.

Library use (one calling convention: keyword arguments, numbers or strings with units; each returns a
validated report — see :mod:`flopcast.api`)::

    import flopcast
    report = flopcast.estimate(model="llama-2-7b", tokens="2T", hardware="a100-80gb", devices=512)
    print(report.time.wall_clock_seconds)
    flopcast.plan(model="llama-2-7b", tokens="2T", deadline="30d").best_point

Heavy modules load lazily so that the CLI starts fast.
"""

from flopcast._version import __version__

QUESTIONS = ("estimate", "plan", "compare", "size", "serve", "serve_plan", "calibrate")
__all__ = ["__version__", *QUESTIONS]


def __getattr__(name: str):
    if name in QUESTIONS:
        from flopcast import api

        return getattr(api, name)
    raise AttributeError(f"module 'flopcast' has no attribute {name!r}")
