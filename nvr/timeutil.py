"""Conversions between UTC microsecond instants, RFC 3339 text and media ticks.

Instants are integers: microseconds since the Unix epoch, UTC (names end in ``_us``).
Media time is counted in a stream's timebase ticks and never mixed with wall time
without one of the explicit conversions here.
"""

import re
import time
from datetime import UTC, datetime
from fractions import Fraction

from nvr.errors import BadRange

US_PER_S = 1_000_000

# Instants the API accepts: nothing was recorded before the epoch, and every accepted
# instant must still format as RFC 3339 after any offset is applied.
EARLIEST_US = 0
LATEST_US = 253_370_764_800 * US_PER_S  # 9999-01-01T00:00:00Z


def wall_now_us() -> int:
    """The system's UTC wall clock, in microseconds since the epoch."""
    return time.time_ns() // 1000


def monotonic_us() -> int:
    """A monotonic clock for durations and timeouts; unrelated to wall time."""
    return time.monotonic_ns() // 1000


# RFC 3339 section 5.6 date-time (a missing offset gets its own message below). Stricter
# than datetime.fromisoformat, which also takes ISO 8601 forms (week dates, no separators,
# a leading sign) that VMS clients never mean.
_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})?$"
)


def parse_rfc3339_us(text: str) -> int:
    """Parses RFC 3339 with any offset into UTC microseconds; a missing offset is an error."""
    if not _RFC3339.match(text.strip()):
        raise BadRange(
            f"not an RFC 3339 time: {text!r} (e.g. 2026-12-03T18:00:00Z or "
            "2026-12-03T19:00:00.5+01:00)"
        )
    try:
        parsed = datetime.fromisoformat(text.strip().replace("z", "Z"))
    except ValueError as exc:
        raise BadRange(f"not an RFC 3339 time: {text!r}") from exc
    if parsed.tzinfo is None:
        raise BadRange(f"time has no UTC offset: {text!r} (add Z or +HH:MM)")
    instant_us = datetime_to_us(parsed)
    if not EARLIEST_US <= instant_us < LATEST_US:
        raise BadRange(f"time out of range: {text!r} (years 1970 to 9998 in UTC)")
    return instant_us


def datetime_to_us(moment: datetime) -> int:
    """An aware datetime as UTC microseconds; naive datetimes are refused."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: refusing to guess its zone")
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * US_PER_S + delta.microseconds


def us_to_datetime(instant_us: int) -> datetime:
    """UTC microseconds as an aware UTC datetime."""
    seconds, micros = divmod(instant_us, US_PER_S)
    return datetime.fromtimestamp(seconds, tz=UTC).replace(microsecond=micros)


def format_rfc3339(instant_us: int) -> str:
    """UTC microseconds as RFC 3339 text in UTC, e.g. ``2026-12-03T18:00:00.250000Z``."""
    text = us_to_datetime(instant_us).isoformat(timespec="microseconds")
    return text.replace("+00:00", "Z")


def ticks_to_us(ticks: int, time_base: Fraction) -> int:
    """Media ticks in ``time_base`` as microseconds, rounded to nearest."""
    return round(ticks * time_base * US_PER_S)


def us_to_ticks(duration_us: int, time_base: Fraction) -> int:
    """Microseconds as media ticks in ``time_base``, rounded to nearest."""
    return round(Fraction(duration_us, US_PER_S) / time_base)
