"""The unit parser against hand-computed values."""

import pytest

from flopcast.errors import InvalidValue, flag_style, opt
from flopcast.units import Quantity, parse_int, parse_quantity


@pytest.mark.parametrize(
    ("text", "kind", "expected"),
    [
        ("7B", Quantity.COUNT, 7e9),
        ("350M", Quantity.COUNT, 350e6),
        ("2T", Quantity.COUNT, 2e12),
        ("1.5e12", Quantity.COUNT, 1.5e12),
        ("1,000", Quantity.COUNT, 1000),
        ("80GB", Quantity.BYTES, 80e9),
        ("80GiB", Quantity.BYTES, 80 * 2**30),
        ("2TB/s", Quantity.BANDWIDTH, 2e12),
        ("400Gb/s", Quantity.BANDWIDTH, 400e9 / 8),  # bits → bytes
        ("30d", Quantity.DURATION, 30 * 86400),
        ("12h", Quantity.DURATION, 12 * 3600),
        ("90min", Quantity.DURATION, 90 * 60),
        ("$2M", Quantity.USD, 2e6),
        ("2.5k", Quantity.USD, 2500),
        # lower-case count suffixes (issue 19): m is mega for counts, never milli
        ("2t", Quantity.COUNT, 2e12),
        ("7b", Quantity.COUNT, 7e9),
        ("350m", Quantity.COUNT, 350e6),
        ("4k", Quantity.COUNT, 4e3),
        ("$2m", Quantity.USD, 2e6),
    ],
)
def test_parses_documented_forms(text, kind, expected):
    assert parse_quantity(text, kind) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["7Q", "1..5T", "", "nan", "inf", "-3", "0", "abc", "1e400", "2g", "1p", "7bb"])
def test_refuses_bad_counts_with_accepted_forms(text):
    with pytest.raises(InvalidValue) as info:
        parse_quantity(text, Quantity.COUNT, what=opt("tokens"))
    assert info.value.one_line().startswith("tokens: ") and info.value.one_line(flag_style).startswith("--tokens: ")


def test_bad_value_lists_accepted_forms():
    with pytest.raises(InvalidValue) as info:
        parse_quantity("7Q", Quantity.COUNT)
    assert "7B" in info.value.one_line() and "350M" in info.value.one_line()


def test_parse_int_refuses_fractions():
    assert parse_int("4k") == 4000
    with pytest.raises(InvalidValue):
        parse_int("1.5")
