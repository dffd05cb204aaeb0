import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from nvr.config import CameraConfig, S3Config
from nvr.errors import ObjectStoreUnavailable
from nvr.evidence.chain import audit_chain_breaks, walk_segment_chain
from nvr.index import Index
from nvr.index.evidence import (
    audit_entries,
    iter_audit_log,
    iter_chain_records,
    place_hold,
    release_hold,
)
from nvr.retention import catalogue
from nvr.retention.sweeper import sweep
from nvr.storage.s3 import S3Store
from nvr.storage.testing import SeaweedServer
from tests.index.support import SECOND_US, T0_US
from tests.storage.conftest import new_bucket

from .support import (
    CAMERAS,
    DAY_US,
    GROUPS,
    Store,
    bucket_keys,
    make_store,
    replicate,
)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    opened = make_store(tmp_path)
    for camera_id in ("cam1", "cam2"):
        for seq in range(3):
            opened.add(camera_id, seq)
    return opened


def _sweep_at(store: Store, now_us: int) -> int:
    store.clock.now_us = now_us
    return sweep(store.index, store.root, now_us=store.clock).segments


def _left(index: Index, camera_id: str) -> int:
    return len(index.segments_overlapping(camera_id, T0_US, T0_US + DAY_US))


def test_sweep_general_deleted_just_after_30_days_key_area_kept_until_90(
    store: Store,
) -> None:
    last_end_us = T0_US + 3 * 60 * SECOND_US

    assert _sweep_at(store, last_end_us + 30 * DAY_US) == 2  # the last ends exactly now
    assert _sweep_at(store, last_end_us + 30 * DAY_US + 1) == 1
    assert _left(store.index, "cam1") == 0
    assert _sweep_at(store, last_end_us + 90 * DAY_US - 1) == 2
    assert _left(store.index, "cam2") == 1
    assert _sweep_at(store, last_end_us + 90 * DAY_US + 1) == 1

    assert store.files() == set() and store.rows() == set()
    assert {d.reason for d in store.index.deletions("cam1")} == {"retention"}


def test_sweep_one_microsecond_before_retention_deletes_nothing(store: Store) -> None:
    first_end_us = T0_US + 60 * SECOND_US

    assert _sweep_at(store, first_end_us + 30 * DAY_US) == 0
    assert _left(store.index, "cam1") == 3


def test_sweep_held_segment_survives_retention_until_released(store: Store) -> None:
    held_id = store.ids[("cam1", 1)]
    hold = place_hold(
        store.index,
        "cam1",
        T0_US + 90 * SECOND_US,
        T0_US + 91 * SECOND_US,
        "CASE-7",
        "incident",
        "olive",
    )

    assert _sweep_at(store, T0_US + 200 * DAY_US) == 5
    assert [
        row.id
        for row in store.index.segments_overlapping("cam1", T0_US, T0_US + DAY_US)
    ] == [held_id]
    assert len(store.files()) == 1

    release_hold(store.index, hold.id, "olive")
    assert _sweep_at(store, T0_US + 200 * DAY_US) == 1
    assert store.files() == set()


def test_sweep_deletion_logged_with_range_bytes_reason_and_audited(
    store: Store,
) -> None:
    _sweep_at(store, T0_US + 31 * DAY_US)

    deletions = store.index.deletions("cam1")
    assert sorted((d.start_us, d.end_us, d.bytes, d.reason) for d in deletions) == [
        (T0_US + n * 60 * SECOND_US, T0_US + (n + 1) * 60 * SECOND_US, 10, "retention")
        for n in range(3)
    ]
    audit = audit_entries(store.index, action="deletion")
    assert len(audit) == 3 and {entry.actor for entry in audit} == {"retention"}


def test_sweep_max_segments_bounds_one_pass(store: Store) -> None:
    store.clock.now_us = T0_US + 200 * DAY_US

    first = sweep(store.index, store.root, now_us=store.clock, batch=2, max_segments=4)
    second = sweep(store.index, store.root, now_us=store.clock, batch=2, max_segments=4)

    assert (first.segments, second.segments) == (4, 2)


def test_sweep_batches_across_cameras_oldest_end_first_chains_intact(
    tmp_path: Path, db_url: str
) -> None:
    store = make_store(tmp_path, url=db_url)
    more = (CameraConfig(id="cam3", url="rtsp://127.0.0.1/c", group="general"),)
    store.index.sync_groups_and_cameras(GROUPS, CAMERAS + more)
    for seq in range(7):
        store.add("cam1", seq)
        store.add("cam3", seq, start_s=60 * seq + 30)  # ends between cam1's
        store.add("cam2", seq)
    store.clock.now_us = T0_US + 31 * DAY_US

    result = sweep(store.index, store.root, now_us=store.clock, batch=4)

    assert (result.segments, result.blocked, result.more) == (14, 0, False)
    assert {p.split("/")[0] for p in store.files()} == {"cam2"}
    assert store.files() == store.rows()
    log = list(reversed(catalogue.deletion_log(store.index, reason="retention")))
    assert [d.end_us for d in log] == sorted(d.end_us for d in log)
    assert [d.camera_id for d in log[:4]] == ["cam1", "cam3", "cam1", "cam3"]
    audited = audit_entries(store.index, action="deletion")
    assert [json.loads(e.details)["segment_id"] for e in audited] == [
        d.segment_id for d in log
    ]
    assert list(audit_chain_breaks(iter_audit_log(store.index))) == []
    for camera in ("cam1", "cam3"):
        links = list(walk_segment_chain(iter_chain_records(store.index, camera)))
        assert len(links) == 7 and all(link.intact for link in links)


def test_sweep_max_segments_reached_reports_more(store: Store) -> None:
    store.clock.now_us = T0_US + 200 * DAY_US

    first = sweep(store.index, store.root, now_us=store.clock, batch=2, max_segments=4)
    second = sweep(store.index, store.root, now_us=store.clock, batch=2, max_segments=4)

    assert first.more and not second.more


def test_sweep_locked_object_blocks_only_its_segment_until_lock_expires(
    tmp_path: Path, aws_env: SeaweedServer
) -> None:
    store = make_store(tmp_path)
    ids = [store.add("cam1", seq) for seq in range(3)]
    bucket = new_bucket(aws_env, object_lock=True)
    client = aws_env.client()
    until = datetime.now(UTC) + timedelta(seconds=4)
    keys = [
        replicate(
            store,
            client,
            bucket,
            segment_id,
            **(
                {"ObjectLockMode": "COMPLIANCE", "ObjectLockRetainUntilDate": until}
                if segment_id == ids[1]
                else {}
            ),
            ChecksumAlgorithm="SHA256",
        )
        for segment_id in ids
    ]
    s3 = S3Store(S3Config(endpoint_url=aws_env.endpoint_url, bucket=bucket))
    store.clock.now_us = T0_US + 31 * DAY_US

    first = sweep(store.index, store.root, now_us=store.clock, store=s3)
    again = sweep(store.index, store.root, now_us=store.clock, store=s3)

    assert (first.segments, first.blocked) == (2, 1)
    assert again.segments == 0
    assert [c.segment_id for c in catalogue.marked(store.index, 10)] == [ids[1]]
    assert store.files() == set()  # the local copy goes first; the mark stays
    assert bucket_keys(client, bucket) == {keys[1]}
    assert sorted(d.segment_id for d in store.index.deletions("cam1")) == [
        ids[0],
        ids[2],
    ]

    time.sleep(max(0.0, (until - datetime.now(UTC)).total_seconds()) + 1.5)
    sweep(store.index, store.root, now_us=store.clock, store=s3)

    assert catalogue.marked(store.index, 10) == []
    assert store.rows() == set() and bucket_keys(client, bucket) == set()
    assert len(store.index.deletions("cam1")) == 3
    versions = client.list_object_versions(Bucket=bucket).get("Versions", [])
    assert versions == []  # the versions themselves, not hidden behind markers


def test_sweep_s3_unreachable_finishes_local_keeps_replicated_marked(
    tmp_path: Path, aws_env: SeaweedServer, bucket: str
) -> None:
    store = make_store(tmp_path)
    replicated = store.add("cam1", 0)
    client = aws_env.client()
    key = replicate(store, client, bucket, replicated)
    local_only = store.add("cam1", 1)
    down = S3Store(
        S3Config(
            endpoint_url="http://127.0.0.1:9", bucket=bucket, request_timeout_seconds=1
        )
    )
    store.clock.now_us = T0_US + 31 * DAY_US

    with pytest.raises(ObjectStoreUnavailable):
        sweep(store.index, store.root, now_us=store.clock, store=down)

    assert [d.segment_id for d in store.index.deletions("cam1")] == [local_only]
    assert [c.segment_id for c in catalogue.marked(store.index, 10)] == [replicated]
    assert bucket_keys(client, bucket) == {key}

    up = S3Store(S3Config(endpoint_url=aws_env.endpoint_url, bucket=bucket))
    sweep(store.index, store.root, now_us=store.clock, store=up)

    assert catalogue.marked(store.index, 10) == []
    assert bucket_keys(client, bucket) == set() and store.rows() == set()
