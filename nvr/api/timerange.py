"""Parsing and checking the ``start``/``end`` query parameters of the API."""

from collections.abc import Mapping
from dataclasses import dataclass

from nvr.errors import BadRange
from nvr.timeutil import parse_rfc3339_us

MAX_RANGE_US = 24 * 3600 * 1_000_000


@dataclass(frozen=True)
class TimeRange:
    start_us: int
    end_us: int


def parse_time_range(query: Mapping[str, str], max_us: int = MAX_RANGE_US) -> TimeRange:
    """Both bounds, RFC 3339 with any offset; end after start and at most ``max_us`` later."""
    bounds = []
    for name in ("start", "end"):
        text = query.get(name)
        if not text:
            raise BadRange(
                f"query parameter {name!r} is required (RFC 3339, e.g. 2026-12-03T10:00:00Z)"
            )
        try:
            bounds.append(parse_rfc3339_us(text))
        except BadRange as exc:
            raise BadRange(f"{name}: {exc}") from exc
    start_us, end_us = bounds
    if end_us <= start_us:
        raise BadRange("end must be after start")
    if end_us - start_us > max_us:
        raise BadRange(
            f"range longer than {max_us // 3_600_000_000} h; ask for a shorter one"
        )
    return TimeRange(start_us, end_us)
