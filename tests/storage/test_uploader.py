"""The upload queue against a real SeaweedFS server and a real SQLite index."""

import asyncio
import hashlib
import logging
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from nvr.index import Index
from nvr.index.models import Replica
from nvr.storage import replicas
from nvr.storage.keys import US_PER_DAY, object_key
from nvr.storage.s3 import S3Store
from nvr.storage.testing import SeaweedServer
from nvr.storage.uploader import Uploader
from nvr.timeutil import wall_now_us

from .conftest import make_config, new_bucket
from .support import WALL_T0_US, index_call, place_blob, place_segment

MIB = 1024 * 1024


def _uploader(
    index: Index, root: Path, server: SeaweedServer, bucket: str, **s3: object
) -> Uploader:
    config = make_config(root, server, bucket, **s3)
    assert config.s3 is not None
    return Uploader(S3Store(config.s3), index, index_call, root, config.s3, poll_s=0.1)


def _index_segments(
    index: Index, root: Path, files: list[Path], start_us: int = WALL_T0_US
) -> list[int]:
    ids = []
    for seq, source in enumerate(files):
        event = place_segment(root, source, "cam1", seq, start_us)
        ids.append(index.add_segment(event))
        start_us = event.end_us
    return ids


def _rows(index: Index) -> dict[int, SimpleNamespace]:
    """Every replicas row, detached from its session."""
    with index.read() as session:
        return {
            row.segment_id: SimpleNamespace(
                **{
                    column.key: getattr(row, column.key)
                    for column in Replica.__table__.c
                }
            )
            for row in session.scalars(select(Replica))
        }


async def test_uploader_new_segments_replicated_with_identical_bytes(
    aws_env: SeaweedServer,
    bucket: str,
    index: Index,
    storage_root: Path,
    segment_files: list[Path],
) -> None:
    ids = _index_segments(index, storage_root, segment_files)
    uploader = _uploader(index, storage_root, aws_env, bucket)

    assert await uploader.drain(30)

    rows = _rows(index)
    client = aws_env.client()
    for segment_id in ids:
        segment = index.segment_by_id(segment_id)
        assert segment is not None
        assert rows[segment_id].state == "replicated"
        assert rows[segment_id].object_key == object_key("", "cam1", segment.start_us)
        stored = client.get_object(Bucket=bucket, Key=rows[segment_id].object_key)
        assert stored["Body"].read() == (storage_root / segment.path).read_bytes()
    assert uploader.status.state == "ok"


async def test_uploader_large_segment_multipart_verified(
    aws_env: SeaweedServer, bucket: str, index: Index, storage_root: Path
) -> None:
    event = place_blob(storage_root, "cam1", 0, WALL_T0_US, 12 * MIB + 17)
    segment_id = index.add_segment(event)
    uploader = _uploader(
        index, storage_root, aws_env, bucket, multipart_threshold_mb=5, part_size_mb=5
    )

    assert await uploader.drain(60)

    row = _rows(index)[segment_id]
    assert row.state == "replicated"
    assert row.checksum is not None and row.checksum.endswith("-3")
    body = aws_env.client().get_object(Bucket=bucket, Key=row.object_key)["Body"].read()
    assert hashlib.sha256(body).hexdigest() == event.sha256


async def test_uploader_corrupted_local_file_rejected_stays_queued(
    aws_env: SeaweedServer,
    bucket: str,
    index: Index,
    storage_root: Path,
    segment_files: list[Path],
) -> None:
    ids = _index_segments(index, storage_root, segment_files[:2])
    first = index.segment_by_id(ids[0])
    assert first is not None
    path = storage_root / first.path
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte, same size
    path.write_bytes(bytes(data))
    uploader = _uploader(index, storage_root, aws_env, bucket)

    assert not await uploader.drain(3)

    rows = _rows(index)
    assert rows[ids[0]].state == "local"
    assert "BadDigest" in (rows[ids[0]].last_error or "")
    assert rows[ids[1]].state == "replicated"  # one bad segment does not block the rest
    assert (
        aws_env.client().list_objects_v2(Bucket=bucket, Prefix=rows[ids[0]].object_key)[
            "KeyCount"
        ]
        == 0
    )


async def test_uploader_wrong_credentials_one_error_recording_untouched(
    aws_env: SeaweedServer,
    bucket: str,
    index: Index,
    storage_root: Path,
    segment_files: list[Path],
    caplog: pytest.LogCaptureFixture,
) -> None:
    ids = _index_segments(index, storage_root, segment_files[:1])
    uploader = _uploader(
        index,
        storage_root,
        aws_env,
        bucket,
        access_key_id=aws_env.access_key,
        secret_access_key="wrong",
        retry_max_seconds=1,
    )

    with caplog.at_level(logging.WARNING, logger="nvr.storage"):
        assert not await uploader.drain(4)

    assert uploader.status.state == "refused"
    assert "refused the credentials" in (uploader.status.last_error or "")
    paused = [r for r in caplog.records if "s3 replication paused" in r.getMessage()]
    assert len(paused) == 1  # several retries, one log line
    backlog = replicas.backlog(index)
    assert (backlog.segments, backlog.oldest_segment_id) == (1, ids[0])


async def test_uploader_missing_bucket_refused_then_drains_when_created(
    aws_env: SeaweedServer, index: Index, storage_root: Path, segment_files: list[Path]
) -> None:
    _index_segments(index, storage_root, segment_files[:1])
    name = "nvr-created-later"
    uploader = _uploader(index, storage_root, aws_env, name, retry_max_seconds=1)
    assert not await uploader.drain(2)
    assert uploader.status.state == "refused"
    assert "does not exist" in (uploader.status.last_error or "")

    aws_env.create_bucket(name)

    assert await uploader.drain(10)
    assert uploader.status.state == "ok"


async def test_uploader_s3_stopped_backlog_grows_then_drains(
    own_seaweed: SeaweedServer,
    index: Index,
    storage_root: Path,
    segment_files: list[Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in own_seaweed.env().items():
        monkeypatch.setenv(name, value)
    bucket = new_bucket(own_seaweed)
    uploader = _uploader(
        index,
        storage_root,
        own_seaweed,
        bucket,
        retry_max_seconds=2,
        request_timeout_seconds=2,
    )
    own_seaweed.stop()
    ids = _index_segments(index, storage_root, segment_files)

    assert not await uploader.drain(3)
    assert uploader.status.state == "unavailable"
    backlog = replicas.backlog(index)
    assert backlog.segments == 3
    assert backlog.bytes == sum(f.stat().st_size for f in segment_files)

    await asyncio.to_thread(own_seaweed.start)

    assert await uploader.drain(30)
    assert {row.state for row in _rows(index).values()} == {"replicated"}
    assert set(_rows(index)) == set(ids)


async def test_uploader_object_lock_retain_until_end_plus_retention(
    aws_env: SeaweedServer, index: Index, storage_root: Path, segment_files: list[Path]
) -> None:
    bucket = new_bucket(aws_env, object_lock=True)
    an_hour_ago_us = wall_now_us() - 3600 * 1_000_000
    ids = _index_segments(index, storage_root, segment_files[:1], an_hour_ago_us)
    uploader = _uploader(index, storage_root, aws_env, bucket, object_lock="governance")

    assert await uploader.drain(30)

    segment = index.segment_by_id(ids[0])
    assert segment is not None
    head = aws_env.client().head_object(
        Bucket=bucket, Key=_rows(index)[ids[0]].object_key
    )
    assert head["ObjectLockMode"] == "GOVERNANCE"
    until_us = int(head["ObjectLockRetainUntilDate"].timestamp() * 1_000_000)
    assert abs(until_us - (segment.end_us + 30 * US_PER_DAY)) < 1_000_000


async def test_uploader_lock_required_bucket_without_lock_refused(
    aws_env: SeaweedServer,
    bucket: str,
    index: Index,
    storage_root: Path,
    segment_files: list[Path],
) -> None:
    _index_segments(index, storage_root, segment_files[:1])
    uploader = _uploader(index, storage_root, aws_env, bucket, object_lock="compliance")

    assert not await uploader.drain(2)

    assert uploader.status.state == "refused"
    assert "has no Object Lock" in (uploader.status.last_error or "")
    assert aws_env.client().list_objects_v2(Bucket=bucket)["KeyCount"] == 0


async def test_uploader_restart_after_stored_but_unmarked_no_second_upload(
    aws_env: SeaweedServer, index: Index, storage_root: Path, segment_files: list[Path]
) -> None:
    # A versioned (locked) bucket shows every PUT as a version.
    bucket = new_bucket(aws_env, object_lock=True)
    ids = _index_segments(index, storage_root, segment_files[:1])
    first = _uploader(index, storage_root, aws_env, bucket)
    assert await first.drain(30)
    # The crash: the object was stored, but the row never left "uploading".
    replicas.mark_uploading(index, ids[0], None, WALL_T0_US)

    second = _uploader(index, storage_root, aws_env, bucket)
    assert await second.drain(30)

    key = _rows(index)[ids[0]].object_key
    versions = aws_env.client().list_object_versions(Bucket=bucket, Prefix=key)
    assert len(versions.get("Versions", [])) == 1
    assert _rows(index)[ids[0]].state == "replicated"
