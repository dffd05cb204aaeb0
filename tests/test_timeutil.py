from fractions import Fraction

import pytest

from nvr.errors import BadRange
from nvr.timeutil import format_rfc3339, parse_rfc3339_us, ticks_to_us, us_to_ticks


def test_parse_rfc3339_any_offset_gives_same_instant() -> None:
    utc = parse_rfc3339_us("2026-03-29T01:30:00Z")
    assert parse_rfc3339_us("2026-03-29T03:30:00+02:00") == utc
    assert parse_rfc3339_us("2026-03-28T21:30:00-04:00") == utc
    assert utc == 1_774_747_800_000_000


def test_parse_rfc3339_naive_time_refused() -> None:
    with pytest.raises(BadRange, match="no UTC offset"):
        parse_rfc3339_us("2026-03-29T01:30:00")


def test_parse_rfc3339_garbage_refused() -> None:
    with pytest.raises(BadRange, match="not an RFC 3339 time"):
        parse_rfc3339_us("yesterday")


def test_format_rfc3339_round_trips_microseconds() -> None:
    instant_us = 1_764_786_000_123_456
    assert format_rfc3339(instant_us) == "2025-12-03T18:20:00.123456Z"
    assert parse_rfc3339_us(format_rfc3339(instant_us)) == instant_us


def test_ticks_conversion_90k_is_exact() -> None:
    assert ticks_to_us(90_000, Fraction(1, 90_000)) == 1_000_000
    assert us_to_ticks(40_000, Fraction(1, 90_000)) == 3_600


@pytest.mark.parametrize(
    "text",
    ["0001-01-01T00:00:00+14:00", "9999-12-31T23:00:00-14:00", "1969-12-31T23:59:59Z"],
)
def test_parse_rfc3339_outside_recordable_years_refused(text: str) -> None:
    with pytest.raises(BadRange, match="out of range"):
        parse_rfc3339_us(text)


@pytest.mark.parametrize(
    "text",
    [
        "+2026-12-03T18:00:00Z",  # ISO 8601 expanded year sign
        "2026-12-03T18:00Z",  # no seconds
        "20261203T180000Z",  # basic format
        "2026-W49-4T18:00:00Z",  # week date
        "2026-12-03",  # a date is not an instant
    ],
)
def test_parse_rfc3339_iso_forms_outside_rfc3339_refused(text: str) -> None:
    with pytest.raises(BadRange, match="not an RFC 3339 time"):
        parse_rfc3339_us(text)


def test_parse_rfc3339_lowercase_and_nanoseconds_accepted() -> None:
    # RFC 3339 allows t/z and any fraction; finer than a microsecond is truncated
    assert parse_rfc3339_us("2026-12-03t18:00:00.123456789z") == parse_rfc3339_us(
        "2026-12-03T18:00:00.123456Z"
    )
