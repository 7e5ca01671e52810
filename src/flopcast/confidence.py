"""The confidence a deadline or budget is met at (``confidence=`` on plan, compare and size).

``p50`` (the default, today's behaviour) compares the point estimate with the deadline or budget; ``p80``
and ``p90`` compare that percentile of the estimator's calibrated range (estimator/uncertainty.py: the
held-out residuals of the fit, wider for uncalibrated hardware and beyond the fitted runs), so a plan chosen
at p90 meets its deadline on about nine jobs in ten like it.
"""

from __future__ import annotations

from flopcast.errors import InvalidValue, opt

LEVELS = ("p50", "p80", "p90")
DEFAULT = "p50"


def parse_confidence(text: str | None) -> str:
    """``"p90"`` (or 90, "90", "P90") → ``"p90"``; None → the default; anything else raises InvalidValue."""
    if text is None:
        return DEFAULT
    value = str(text).strip().lower()
    value = value if value.startswith("p") else "p" + value
    if value not in LEVELS:
        raise InvalidValue(
            f"{opt('confidence')} must be one of {', '.join(LEVELS)}, got {text!r}",
            hint=f"e.g. {opt('confidence')} p90: deadlines and budgets met at the 90th percentile",
        )
    return value


def at(field: str, confidence: str) -> str:
    """The estimate field of ``field`` (wall_clock_seconds, device_hours, cost_usd) at ``confidence``."""
    return field if confidence == DEFAULT else f"{field}_{confidence}"


def describe(confidence: str) -> str:
    """``"P90"`` / ``"P50 (the estimate)"``: how a table states it."""
    return "P50 (the estimate)" if confidence == DEFAULT else confidence.upper()
