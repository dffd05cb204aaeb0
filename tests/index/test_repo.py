"""The catalogue's operations on real SQLite and PostgreSQL databases."""

import dataclasses
import threading

import pytest

from nvr.config import CameraConfig, GroupConfig
from nvr.errors import StorageError
from nvr.index import Index
from nvr.index import repo as repo_module
from nvr.ingest.events import SegmentClosed

from .support import CLOCK_US, GROUPS, SECOND_US, T0_US, segment_event


def _window(start_s: float, end_s: float) -> tuple[int, int]:
    return T0_US + round(start_s * SECOND_US), T0_US + round(end_s * SECOND_US)


def test_add_segment_three_segments_range_query_returns_overlapping_in_order(
    index: Index,
) -> None:
    events = [segment_event(seq=n, start_s=60 * n) for n in (2, 0, 1)]
    ids = {event.path: index.add_segment(event) for event in events}

    rows = index.segments_overlapping("cam1", *_window(59, 121))

    assert [row.seq for row in rows] == [0, 1, 2]
    assert [row.id for row in rows] == [ids[row.path] for row in rows]
    first = rows[0]
    assert first.keyframes == ((0, 1234), (90_000, 56_789), (180_000, 120_000))
    assert (first.start_us, first.end_us) == _window(0, 60)
    assert first.media_duration == 60 * 90_000 and first.timescale == 90_000
    assert first.sha256 == "a" * 64 and first.created_us == CLOCK_US
    assert first.audio_codec is None and (first.width, first.height) == (1280, 720)


def test_segments_overlapping_half_open_bounds_exclude_touching_segments(
    index: Index,
) -> None:
    for n in range(3):
        index.add_segment(segment_event(seq=n, start_s=60 * n))

    assert [
        row.seq for row in index.segments_overlapping("cam1", *_window(60, 120))
    ] == [1]
    assert index.segments_overlapping("cam1", *_window(180, 240)) == []
    assert index.segments_overlapping("cam1", *_window(-60, 0)) == []
    assert index.segments_overlapping("cam2", *_window(0, 180)) == []


def test_add_segment_same_path_twice_returns_existing_id(index: Index) -> None:
    event = segment_event()

    first = index.add_segment(event)
    second = index.add_segment(event)

    assert first == second
    assert len(index.segments_overlapping("cam1", *_window(0, 60))) == 1


def test_add_segment_same_path_other_content_raises(index: Index) -> None:
    index.add_segment(segment_event(sha="a"))

    with pytest.raises(StorageError, match="different content"):
        index.add_segment(segment_event(sha="b"))


def test_add_segment_overlapping_same_camera_raises_and_keeps_rows(
    index: Index,
) -> None:
    index.add_segment(segment_event(start_s=0, duration_s=60))
    clash = segment_event(run_id="run-b", start_s=30, duration_s=60)

    with pytest.raises(StorageError, match="overlaps"):
        index.add_segment(clash)

    assert [
        row.start_us for row in index.segments_overlapping("cam1", *_window(0, 200))
    ] == [T0_US]
    assert index.segment_by_path(clash.path) is None
    assert index.run("run-b") is None


def test_add_segment_other_camera_same_time_is_accepted(index: Index) -> None:
    index.add_segment(segment_event(camera_id="cam1"))
    index.add_segment(segment_event(camera_id="cam2", run_id="run-z"))

    assert len(index.segments_overlapping("cam2", *_window(0, 60))) == 1


def test_add_segment_unknown_camera_raises(index: Index) -> None:
    with pytest.raises(StorageError, match="not in the index"):
        index.add_segment(segment_event(camera_id="ghost"))


@pytest.mark.parametrize("change", [{"end_us": T0_US}, {"bytes": 0}, {"sha256": "xyz"}])
def test_add_segment_invalid_event_raises(
    index: Index, change: dict[str, object]
) -> None:
    event = dataclasses.replace(segment_event(), **change)  # type: ignore[arg-type]

    with pytest.raises(StorageError):
        index.add_segment(event)


def test_add_segment_creates_run_row_from_first_segment(index: Index) -> None:
    index.add_segment(segment_event(seq=1, start_s=60))
    index.add_segment(segment_event(seq=0, start_s=0))

    run = index.run("run-a")

    assert run is not None
    assert (run.camera_id, run.started_us, run.ended_us, run.end_reason) == (
        "cam1",
        T0_US,
        None,
        None,
    )


def test_add_segment_new_run_after_ended_run_records_gap_with_its_reason(
    index: Index,
) -> None:
    index.add_segment(segment_event(run_id="run-a", start_s=0))
    index.end_run("cam1", "run-a", T0_US + 60 * SECOND_US, "stalled")
    index.add_segment(segment_event(run_id="run-b", start_s=75))

    gaps = index.gaps_overlapping("cam1", *_window(0, 300))

    assert [(gap.start_us, gap.end_us, gap.reason) for gap in gaps] == [
        (*_window(60, 75), "stalled")
    ]


def test_add_segment_new_run_without_end_reason_records_disconnected_gap(
    index: Index,
) -> None:
    index.add_segment(segment_event(run_id="run-a", start_s=0))
    index.add_segment(segment_event(run_id="run-b", start_s=90))

    gaps = index.gaps_overlapping("cam1", *_window(0, 300))

    assert [(gap.start_us, gap.end_us, gap.reason) for gap in gaps] == [
        (*_window(60, 90), "disconnected")
    ]


def test_add_segment_same_run_or_touching_runs_records_no_gap(index: Index) -> None:
    index.add_segment(segment_event(run_id="run-a", seq=0, start_s=0))
    index.add_segment(segment_event(run_id="run-a", seq=1, start_s=60))
    index.add_segment(segment_event(run_id="run-b", seq=0, start_s=120))

    assert index.gaps_overlapping("cam1", *_window(0, 300)) == []


def test_add_segment_late_segment_inside_gap_splits_the_gap(index: Index) -> None:
    index.add_segment(segment_event(run_id="run-a", start_s=0))
    index.end_run("cam1", "run-a", T0_US + 60 * SECOND_US, "stalled")
    index.add_segment(segment_event(run_id="run-c", start_s=300))

    # recovery indexes a segment of a run in between, after the fact
    index.add_segment(segment_event(run_id="run-b", start_s=120, duration_s=60))

    gaps = index.gaps_overlapping("cam1", *_window(0, 400))
    assert [(gap.start_us, gap.end_us, gap.reason) for gap in gaps] == [
        (*_window(60, 120), "stalled"),
        (*_window(180, 300), "stalled"),
    ]


def test_gaps_overlapping_range_returns_only_touching_gaps(index: Index) -> None:
    index.add_segment(segment_event(run_id="run-a", start_s=0))
    index.add_segment(segment_event(run_id="run-b", start_s=100))
    index.add_segment(segment_event(run_id="run-c", start_s=200))

    assert [
        gap.start_us for gap in index.gaps_overlapping("cam1", *_window(70, 80))
    ] == [T0_US + 60 * SECOND_US]
    assert index.gaps_overlapping("cam1", *_window(100, 160)) == []
    assert len(index.gaps_overlapping("cam1", *_window(0, 400))) == 2


def test_end_run_before_any_segment_keeps_reason_and_takes_segment_start(
    index: Index,
) -> None:
    index.end_run("cam1", "run-a", T0_US + 60 * SECOND_US, "timestamp-jump")
    index.add_segment(segment_event(run_id="run-a", start_s=0))

    run = index.run("run-a")

    assert run is not None
    assert (run.started_us, run.ended_us, run.end_reason) == (
        T0_US,
        T0_US + 60 * SECOND_US,
        "timestamp-jump",
    )


def test_end_run_run_of_other_camera_raises(index: Index) -> None:
    index.add_segment(segment_event(camera_id="cam1", run_id="run-a"))

    with pytest.raises(StorageError):
        index.end_run("cam2", "run-a", T0_US, "stalled")


def test_last_segment_returns_latest_or_none(index: Index) -> None:
    assert index.last_segment("cam1") is None
    index.add_segment(segment_event(seq=0, start_s=0))
    index.add_segment(segment_event(seq=1, start_s=60))

    last = index.last_segment("cam1")

    assert last is not None and last.seq == 1
    assert index.segment_by_id(last.id) == last
    assert index.segment_by_path(last.path) == last


def test_sync_groups_and_cameras_seeds_only_and_keeps_removed_camera(
    index: Index,
) -> None:
    index.add_segment(segment_event(camera_id="cam2", run_id="run-z"))

    index.sync_groups_and_cameras(
        (
            GroupConfig(name="general", retention_days=7),
            GroupConfig(name="key-area", retention_days=90),
        ),
        (
            CameraConfig(id="cam1", url="rtsp://127.0.0.1/a", group="key-area"),
            CameraConfig(id="cam3", url="rtsp://127.0.0.1/c"),
        ),
    )

    # the index, where the API changes groups with confirmation, wins over the config
    assert index.camera_ids() == ["cam1", "cam2", "cam3"]
    assert index.camera_group("cam1") == "general"
    assert index.camera_group("cam3") == "general"
    assert index.camera_group("nope") is None
    assert index.group_retention_days() == {"general": 30, "key-area": 90}
    assert len(index.segments_overlapping("cam2", *_window(0, 60))) == 1


def test_sync_groups_and_cameras_unknown_group_raises(index: Index) -> None:
    with pytest.raises(StorageError):
        index.sync_groups_and_cameras(
            GROUPS,
            (CameraConfig(id="cam9", url="rtsp://127.0.0.1/x", group="missing"),),
        )
    assert "cam9" not in index.camera_ids()


def test_segments_older_than_filters_by_camera_group_and_orders_by_end(
    index: Index,
) -> None:
    for n in range(3):
        index.add_segment(segment_event(camera_id="cam1", seq=n, start_s=60 * n))
        index.add_segment(
            segment_event(camera_id="cam2", run_id="run-z", seq=n, start_s=60 * n + 1)
        )
    cutoff_us = T0_US + 125 * SECOND_US

    by_camera = index.segments_older_than(cutoff_us, 10, camera_id="cam1")
    by_group = index.segments_older_than(cutoff_us, 10, group="key-area")
    limited = index.segments_older_than(cutoff_us, 3)

    assert [row.seq for row in by_camera] == [0, 1]
    assert [(row.camera_id, row.seq) for row in by_group] == [("cam2", 0), ("cam2", 1)]
    assert [(row.camera_id, row.seq) for row in limited] == [
        ("cam1", 0),
        ("cam2", 0),
        ("cam1", 1),
    ]


def test_delete_segment_row_writes_deletion_and_removes_segment(index: Index) -> None:
    segment_id = index.add_segment(segment_event(seq=0, start_s=0))
    index.add_segment(segment_event(seq=1, start_s=60))
    deleted_us = CLOCK_US + 5

    deletion = index.delete_segment_row(segment_id, "retention", deleted_us)

    assert deletion is not None
    assert (deletion.segment_id, deletion.camera_id, deletion.reason) == (
        segment_id,
        "cam1",
        "retention",
    )
    assert (deletion.start_us, deletion.end_us, deletion.bytes) == (
        *_window(0, 60),
        1_000_000,
    )
    assert deletion.deleted_us == deleted_us
    assert index.segment_by_id(segment_id) is None
    assert index.deletions("cam1") == [deletion]
    assert [
        row.seq for row in index.segments_overlapping("cam1", *_window(0, 200))
    ] == [1]


def test_delete_segment_row_already_deleted_returns_none(index: Index) -> None:
    segment_id = index.add_segment(segment_event())
    index.delete_segment_row(segment_id, "retention", CLOCK_US)

    assert index.delete_segment_row(segment_id, "retention", CLOCK_US) is None
    assert len(index.deletions("cam1")) == 1


def test_delete_segment_row_failure_after_both_writes_keeps_segment_and_no_log(
    index: Index,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    segment_id = index.add_segment(segment_event())

    def crash(*_args: object) -> None:
        raise StorageError("injected crash after the deletion row and the delete")

    monkeypatch.setattr(repo_module, "prune_gaps_before_recording", crash)
    with pytest.raises(StorageError, match="injected"):
        index.delete_segment_row(segment_id, "retention", CLOCK_US)

    assert index.segment_by_id(segment_id) is not None
    assert index.deletions("cam1") == []


def test_delete_segment_row_oldest_segment_prunes_gaps_before_recording(
    index: Index,
) -> None:
    first_id = index.add_segment(segment_event(run_id="run-a", start_s=0))
    index.add_segment(segment_event(run_id="run-b", start_s=100))
    index.add_segment(segment_event(run_id="run-c", start_s=200))

    index.delete_segment_row(first_id, "retention", CLOCK_US)

    gaps = index.gaps_overlapping("cam1", *_window(0, 400))
    assert [(gap.start_us, gap.end_us) for gap in gaps] == [_window(160, 200)]


def _race(index: Index, events: list[SegmentClosed]) -> list[str]:
    """Adds the events from one thread each, released together; returns the outcomes."""
    barrier = threading.Barrier(len(events))
    outcomes: list[str] = []

    def add(event: SegmentClosed) -> None:
        barrier.wait()
        try:
            index.add_segment(event)
            outcomes.append("added")
        except StorageError:
            outcomes.append("rejected")

    threads = [threading.Thread(target=add, args=(event,)) for event in events]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return outcomes


def test_add_segment_concurrent_overlapping_writers_exactly_one_wins(
    index: Index,
) -> None:
    for round_n in range(4):
        start_s = 1000 * round_n
        events = [
            segment_event(run_id=f"run-{round_n}-{n}", start_s=start_s + n * 10)
            for n in range(2)
        ]

        outcomes = _race(index, events)

        assert sorted(outcomes) == ["added", "rejected"]
        assert (
            len(index.segments_overlapping("cam1", *_window(start_s, start_s + 100)))
            == 1
        )
