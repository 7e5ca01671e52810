"""What `compare`, `plan` and `size` share: Ctrl-C handling and the workload flags as library keywords."""

from __future__ import annotations

from contextlib import contextmanager


@contextmanager
def interruptible():
    """Ctrl-C → :class:`Interrupted` (one line, exit 130). typer's own handler would exit 130 silently.

    Nothing is written before the result is complete, so Ctrl-C leaves no partial ``--output``.
    """
    try:
        yield
    except KeyboardInterrupt:
        from flopcast.errors import Interrupted

        raise Interrupted("interrupted (Ctrl-C); nothing was written") from None


def workload(model, tokens, seq_len, precision, global_batch, **architecture) -> dict:
    """The model, token and architecture flags as the keyword arguments of ``flopcast.plan/compare``."""
    given = {"model": model, "tokens": tokens, "seq_len": seq_len, "precision": precision}
    return {**given, "global_batch": global_batch, **architecture}
