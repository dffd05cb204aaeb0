import pytest

from nvr.api.timerange import parse_time_range
from nvr.errors import BadRange


def test_parse_time_range_offsets_normalised_to_utc() -> None:
    span = parse_time_range(
        {"start": "2026-12-03T10:00:00+01:00", "end": "2026-12-03T09:30:00Z"}
    )
    assert span.end_us - span.start_us == 30 * 60 * 1_000_000


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"end": "2026-12-03T10:00:00Z"}, "'start' is required"),
        ({"start": "2026-12-03T10:00:00Z", "end": "soon"}, "end: not an RFC 3339"),
        (
            {"start": "2026-12-03T10:00:00Z", "end": "2026-12-03T09:00:00Z"},
            "after start",
        ),
        (
            {"start": "2026-12-03T10:00:00Z", "end": "2026-12-03T10:00:00Z"},
            "after start",
        ),
        (
            {"start": "2026-12-01T00:00:00Z", "end": "2026-12-03T00:00:00Z"},
            "longer than 24 h",
        ),
    ],
)
def test_parse_time_range_bad_query_names_problem(
    query: dict[str, str], message: str
) -> None:
    with pytest.raises(BadRange, match=message):
        parse_time_range(query)
