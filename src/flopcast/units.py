"""One parser for every quantity a user types: counts, bytes, bandwidth, durations, dollars, FLOPs.

Decimal SI prefixes (k, M, G/B, T, P, E) unless the unit says ``iB`` (KiB, MiB, GiB, TiB, PiB).
``B`` after a bare number is *billion* for counts ("7B" parameters) and *bytes* for sizes ("80GB").
Counts and dollars also take the lower-case k, m, b, t (``2t`` tokens, ``350m`` parameters): ``m`` is mega
there, never milli (no count or amount is typed in thousandths); ``g``, ``p`` and ``e`` stay upper-case only
(``1e`` would read as a broken exponent). Sizes keep their own rules: ``B`` bytes, ``b`` bits (``400Gb/s``).
Every parser refuses NaN, infinities, negatives and junk with an :class:`InvalidValue` that lists
the accepted forms.
"""

from __future__ import annotations

import math
import re
from enum import Enum

from flopcast.errors import InvalidValue

SECONDS_PER_MINUTE = 60.0
SECONDS_PER_HOUR = 3600.0
SECONDS_PER_DAY = 86400.0
SECONDS_PER_WEEK = 7 * SECONDS_PER_DAY
SECONDS_PER_YEAR = 365.25 * SECONDS_PER_DAY

# Sanity bounds on every typed quantity, in SI base units. Not physics: they catch typos such as 1e400 or
# 5e-324 and keep every product and quotient the estimator forms far inside float64 (max ~1.8e308), so a
# result is always finite. 1e50 is ~23 orders of magnitude above the largest real input (a 1e27-FLOP budget);
# 1e-9 is below any fraction, price or duration a person types (an MFU of 0.1% is 1e-3).
MAX_QUANTITY = 1e50
MIN_POSITIVE_QUANTITY = 1e-9

_DECIMAL_PREFIX = {"": 1.0, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "B": 1e9, "T": 1e12, "P": 1e15, "E": 1e18}
_LOWER_COUNT_PREFIX = {"k": 1e3, "m": 1e6, "b": 1e9, "t": 1e12}  # counts and dollars: 2t, 350m, 7b
_BINARY_PREFIX = {"Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30, "Ti": 2.0**40, "Pi": 2.0**50}
_DURATION_UNIT = {
    "s": 1.0,
    "sec": 1.0,
    "secs": 1.0,
    "second": 1.0,
    "seconds": 1.0,
    "min": SECONDS_PER_MINUTE,
    "mins": SECONDS_PER_MINUTE,
    "minute": SECONDS_PER_MINUTE,
    "minutes": SECONDS_PER_MINUTE,
    "h": SECONDS_PER_HOUR,
    "hr": SECONDS_PER_HOUR,
    "hrs": SECONDS_PER_HOUR,
    "hour": SECONDS_PER_HOUR,
    "hours": SECONDS_PER_HOUR,
    "d": SECONDS_PER_DAY,
    "day": SECONDS_PER_DAY,
    "days": SECONDS_PER_DAY,
    "w": SECONDS_PER_WEEK,
    "wk": SECONDS_PER_WEEK,
    "week": SECONDS_PER_WEEK,
    "weeks": SECONDS_PER_WEEK,
    "y": SECONDS_PER_YEAR,
    "yr": SECONDS_PER_YEAR,
    "year": SECONDS_PER_YEAR,
    "years": SECONDS_PER_YEAR,
}

_NUMBER = r"(?P<num>[0-9][0-9_,]*(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?|\.[0-9]+(?:[eE][+-]?[0-9]+)?)"


class Quantity(str, Enum):
    """What a value measures; selects the accepted suffixes."""

    COUNT = "count"  # parameters, tokens, devices, FLOPs: 7B, 350M, 2T, 1.5e12
    BYTES = "bytes"  # 80GB, 80GiB, 512MiB
    BANDWIDTH = "bandwidth"  # 2TB/s, 900GB/s, 100Gb/s (bits)
    DURATION = "duration"  # 30d, 12h, 90min, 3600 (seconds)
    USD = "usd"  # $2M, 2.5k, $1,000,000


ACCEPTED_FORMS = {
    Quantity.COUNT: "a number with an optional k/M/B/G/T/P suffix, e.g. 7B, 350M, 2T, 2t, 1.5e12",
    Quantity.BYTES: "a size such as 80GB, 80GiB, 512MiB, 1.5TB or a plain number of bytes",
    Quantity.BANDWIDTH: "a rate such as 2TB/s, 900GB/s, 1.6TiB/s, 400Gb/s (bits) or bytes per second",
    Quantity.DURATION: "a duration such as 30d, 12h, 90min, 2w, 45s or a plain number of seconds",
    Quantity.USD: "an amount such as $2M, 2.5k, $1,000,000 or 1e6",
}


def _bad(text: str, what: str, kind: Quantity) -> InvalidValue:
    return InvalidValue(f"{what}: cannot read {text!r}", hint=f"expected {ACCEPTED_FORMS[kind]}")


def _number(raw: str) -> float:
    value = float(raw.replace("_", "").replace(",", ""))
    return value


def parse_quantity(
    text: str | float | int,
    kind: Quantity = Quantity.COUNT,
    *,
    what: str = "value",
    allow_zero: bool = False,
) -> float:
    """Parse ``text`` as a ``kind`` quantity and return it in SI base units (1, bytes, bytes/s, s, USD).

    ``what`` names the option in error messages: an option as :func:`flopcast.errors.opt` marks it (the
    library then shows its keyword, the CLI its flag), never a literal flag. Zero is refused unless ``allow_zero``.
    """
    if isinstance(text, bool):
        raise _bad(str(text), what, kind)
    if isinstance(text, int | float):
        value = float(text)
    else:
        value = _parse_text(str(text), kind, what)
    if not math.isfinite(value):
        raise InvalidValue(f"{what}: {text!r} is not a finite number", hint=f"expected {ACCEPTED_FORMS[kind]}")
    if value < 0:
        raise InvalidValue(f"{what}: {text!r} is negative", hint="give a positive value")
    if value == 0 and not allow_zero:
        raise InvalidValue(f"{what}: {text!r} is zero", hint="give a positive value")
    if value > MAX_QUANTITY:
        raise InvalidValue(f"{what}: {text!r} is too large", hint=f"give a value below {MAX_QUANTITY:.0e}")
    if 0 < value < MIN_POSITIVE_QUANTITY:
        raise InvalidValue(f"{what}: {text!r} is too small", hint=f"give {MIN_POSITIVE_QUANTITY:.0e} or more")
    return value


def _parse_text(text: str, kind: Quantity, what: str) -> float:
    s = text.strip()
    if not s:
        raise InvalidValue(f"{what}: empty value", hint=f"expected {ACCEPTED_FORMS[kind]}")
    lowered = s.lower()
    if lowered.lstrip("+-$") in {"nan", "inf", "infinity"}:
        raise InvalidValue(f"{what}: {text!r} is not a finite number", hint=f"expected {ACCEPTED_FORMS[kind]}")
    negative = s.startswith("-")
    if negative:
        s = s[1:].strip()
    if kind is Quantity.USD:
        s = s.lstrip("$").strip()
        if s.upper().endswith("USD"):
            s = s[:-3].strip()
    match = re.fullmatch(_NUMBER + r"\s*(?P<unit>[A-Za-z/$]*)", s)
    if not match:
        raise _bad(text, what, kind)
    try:
        number = _number(match.group("num"))
    except ValueError:
        raise _bad(text, what, kind) from None
    unit = match.group("unit")
    scale = _scale(unit, kind)
    if scale is None:
        raise _bad(text, what, kind)
    value = number * scale
    return -value if negative else value


def _scale(unit: str, kind: Quantity) -> float | None:
    if kind is Quantity.COUNT or kind is Quantity.USD:
        return _DECIMAL_PREFIX.get(unit, _LOWER_COUNT_PREFIX.get(unit))
    if kind is Quantity.DURATION:
        if unit == "":
            return 1.0
        return _DURATION_UNIT.get(unit.lower() if unit != "M" else "min")
    if kind is Quantity.BYTES:
        return _size_scale(unit)
    if kind is Quantity.BANDWIDTH:
        if unit == "":
            return 1.0
        if not unit.endswith("/s"):
            return None
        return _size_scale(unit[:-2], bits_allowed=True)
    return None


def _size_scale(unit: str, bits_allowed: bool = False) -> float | None:
    if unit == "":
        return 1.0
    if unit in {"B", "byte", "bytes"}:
        return 1.0
    for suffix, factor in (("B", 1.0), ("b", 0.125)):
        if unit.endswith(suffix) and (suffix == "B" or bits_allowed):
            prefix = unit[: -len(suffix)]
            if prefix in _BINARY_PREFIX:
                return _BINARY_PREFIX[prefix] * factor
            if prefix in _DECIMAL_PREFIX and prefix != "B":
                return _DECIMAL_PREFIX[prefix] * factor
            if prefix.upper() in {"K", "M", "G", "T", "P"}:
                return _DECIMAL_PREFIX[prefix.upper()] * factor
    return None


def parse_count(text: str | float | int, *, what: str = "value", allow_zero: bool = False) -> float:
    return parse_quantity(text, Quantity.COUNT, what=what, allow_zero=allow_zero)


def parse_int(text: str | float | int, *, what: str = "value", allow_zero: bool = False) -> int:
    """A whole count such as ``512``, ``4k`` or ``1M``; refuses fractions like ``1.5``."""
    value = parse_count(text, what=what, allow_zero=allow_zero)
    if value != int(value):
        raise InvalidValue(f"{what}: {text!r} is not a whole number", hint="give an integer such as 8 or 4k")
    if value > 2**62:
        raise InvalidValue(f"{what}: {text!r} is too large", hint="give a value below 4.6e18")
    return int(value)


def parse_bytes(text: str | float | int, *, what: str = "size") -> float:
    return parse_quantity(text, Quantity.BYTES, what=what)


def parse_bandwidth(text: str | float | int, *, what: str = "bandwidth") -> float:
    return parse_quantity(text, Quantity.BANDWIDTH, what=what)


def parse_duration(text: str | float | int, *, what: str = "duration") -> float:
    return parse_quantity(text, Quantity.DURATION, what=what)


def parse_usd(text: str | float | int, *, what: str = "amount") -> float:
    return parse_quantity(text, Quantity.USD, what=what)


def format_si(value: float, unit: str = "", digits: int = 3) -> str:
    """``1.5e12`` → ``'1.5 T'`` + unit. Decimal prefixes, for display only."""
    if value is None or not math.isfinite(value):
        return "—"
    for factor, prefix in ((1e18, "E"), (1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.{digits}g} {prefix}{unit}".rstrip()
    return f"{value:.{digits}g} {unit}".rstrip()


def format_duration(seconds: float) -> str:
    """Human-readable duration: ``'34.2 d'``, ``'5.1 h'``, ``'12 min'``, ``'3.2 s'``."""
    if seconds is None or not math.isfinite(seconds):
        return "—"
    if seconds >= 2 * SECONDS_PER_YEAR:
        return f"{seconds / SECONDS_PER_YEAR:.3g} y"
    if seconds >= 2 * SECONDS_PER_DAY:
        return f"{seconds / SECONDS_PER_DAY:.3g} d"
    if seconds >= 2 * SECONDS_PER_HOUR:
        return f"{seconds / SECONDS_PER_HOUR:.3g} h"
    if seconds >= 2 * SECONDS_PER_MINUTE:
        return f"{seconds / SECONDS_PER_MINUTE:.3g} min"
    if seconds >= 0.1:
        return f"{seconds:.3g} s"
    return f"{seconds * 1e3:.3g} ms"


def format_usd(amount: float) -> str:
    if amount is None or not math.isfinite(amount):
        return "—"
    if amount >= 1e6:
        return f"${amount / 1e6:,.3g}M"
    if amount >= 1e4:
        return f"${amount / 1e3:,.4g}k"
    return f"${amount:,.2f}"


def suggest(name: str, candidates: list[str], n: int = 3) -> list[str]:
    """The closest ids to ``name`` (for 'did you mean' hints)."""
    import difflib

    lowered = {c.lower(): c for c in candidates}
    close = difflib.get_close_matches(name.lower(), list(lowered), n=n, cutoff=0.5)
    if not close:
        close = [c for c in lowered if name.lower() in c or c in name.lower()][:n]
    return [lowered[c] for c in close]
