"""Segment file names and the durable rename."""

from pathlib import Path

import pytest

from nvr.errors import StorageError
from nvr.segmenter.files import (
    closed_path,
    parse_closed_start_us,
    parse_partial_name,
    partial_path,
    rename_durable,
)


def test_closed_path_late_evening_uses_utc_date() -> None:
    start_us = 1_796_428_799_999_999  # 2026-12-04T23:59:59.999999Z

    path = closed_path(Path("/srv"), "door", start_us)

    assert path == Path(f"/srv/door/2026/12/04/door-{start_us}.mp4")
    assert parse_closed_start_us(path.name, "door") == start_us


def test_partial_path_name_round_trips() -> None:
    path = partial_path(Path("/srv"), "door", 17, "abc123", 4)

    assert path == Path("/srv/door/partial/17-abc123-4.mp4")
    parsed = parse_partial_name(path.name)
    assert parsed is not None
    assert (parsed.start_us, parsed.run_id, parsed.seq) == (17, "abc123", 4)


def test_parse_partial_name_foreign_file_is_none() -> None:
    assert parse_partial_name("notes.txt") is None
    assert parse_closed_start_us("other-17.mp4", "door") is None


def test_rename_durable_existing_target_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "a.mp4"
    target = tmp_path / "x" / "y" / "b.mp4"
    source.write_bytes(b"new")
    target.parent.mkdir(parents=True)
    target.write_bytes(b"old")

    with pytest.raises(StorageError):
        rename_durable(source, target)
    assert target.read_bytes() == b"old"
    assert source.exists()
