"""The click that typer runs on: recent typer vendors it as ``typer._click``, older typer depends on click."""

try:  # typer >= 0.26 ships its own copy of click
    from typer import _click as click  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - older typer
    import click  # type: ignore[no-redef]

__all__ = ["click"]
