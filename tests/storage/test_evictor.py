"""Local eviction and playback from S3, against a real SeaweedFS server."""

import asyncio
from pathlib import Path

from nvr.export.clip import ClipSource, plan_clip
from nvr.index import Index
from nvr.storage import replicas
from nvr.storage.evictor import Evictor
from nvr.storage.keys import US_PER_DAY
from nvr.storage.s3 import S3Store
from nvr.storage.service import Replication
from nvr.storage.testing import SeaweedServer

from .conftest import make_config
from .support import GROUPS, index_call
from .test_uploader import _index_segments, _rows, _uploader


def _evictor(
    index: Index, root: Path, server: SeaweedServer, bucket: str, now_us: int
) -> Evictor:
    config = make_config(root, server, bucket)
    assert config.s3 is not None
    return Evictor(
        S3Store(config.s3), index, index_call, root, GROUPS, clock=lambda: now_us
    )


async def test_evictor_replicated_past_local_days_removed_unreplicated_kept(
    aws_env: SeaweedServer,
    bucket: str,
    index: Index,
    storage_root: Path,
    segment_files: list[Path],
) -> None:
    ids = _index_segments(index, storage_root, segment_files)
    uploader = _uploader(index, storage_root, aws_env, bucket)
    await index_call(replicas.enqueue_new, index, "", 0, 0)
    items = replicas.next_batch(index, 2, set())  # replicate only the first two
    for item in items:
        await uploader._replicate(item)
    segments = [index.segment_by_id(segment_id) for segment_id in ids]
    assert all(segment is not None for segment in segments)
    last_end_us = max(s.end_us for s in segments if s is not None)
    evictor = _evictor(
        index, storage_root, aws_env, bucket, last_end_us + 4 * US_PER_DAY
    )

    removed = await evictor.evict_once()

    assert removed == 2
    states = replicas.states(index, ids)
    assert [states[i] for i in ids] == ["evicted", "evicted", "local"]
    assert [(storage_root / s.path).exists() for s in segments if s] == [
        False,
        False,
        True,
    ]


async def test_evictor_before_local_days_keeps_local_copy(
    aws_env: SeaweedServer,
    bucket: str,
    index: Index,
    storage_root: Path,
    segment_files: list[Path],
) -> None:
    ids = _index_segments(index, storage_root, segment_files[:1])
    assert await _uploader(index, storage_root, aws_env, bucket).drain(30)
    segment = index.segment_by_id(ids[0])
    assert segment is not None
    evictor = _evictor(
        index, storage_root, aws_env, bucket, segment.end_us + 2 * US_PER_DAY
    )

    assert await evictor.evict_once() == 0
    assert (storage_root / segment.path).exists()


async def test_evictor_object_gone_from_s3_requeued_not_evicted(
    aws_env: SeaweedServer,
    bucket: str,
    index: Index,
    storage_root: Path,
    segment_files: list[Path],
) -> None:
    ids = _index_segments(index, storage_root, segment_files[:1])
    assert await _uploader(index, storage_root, aws_env, bucket).drain(30)
    aws_env.client().delete_object(Bucket=bucket, Key=_rows(index)[ids[0]].object_key)
    segment = index.segment_by_id(ids[0])
    assert segment is not None
    evictor = _evictor(
        index, storage_root, aws_env, bucket, segment.end_us + 9 * US_PER_DAY
    )

    assert await evictor.evict_once() == 0

    assert (storage_root / segment.path).exists()
    assert replicas.states(index, ids)[ids[0]] == "local"


async def test_clip_evicted_segments_from_s3_byte_identical_to_local(
    aws_env: SeaweedServer,
    bucket: str,
    index: Index,
    storage_root: Path,
    segment_files: list[Path],
) -> None:
    ids = _index_segments(index, storage_root, segment_files)
    rows = [index.segment_by_id(segment_id) for segment_id in ids]
    segments = [row for row in rows if row is not None]
    start_us, end_us = segments[0].start_us + 2_500_000, segments[-1].end_us - 3_000_000
    local = await asyncio.to_thread(
        plan_clip, _sources(segments, storage_root), start_us, end_us
    )
    local_bytes = local.read(0, local.size)
    config = make_config(storage_root, aws_env, bucket, retry_max_seconds=1)
    replication = Replication(config, index, index_call, poll_s=0.1)
    assert await replication.uploader.drain(30)
    evictor = _evictor(
        index, storage_root, aws_env, bucket, segments[-1].end_us + 4 * US_PER_DAY
    )
    assert await evictor.evict_once() == 3

    locations = await replication.locations(segments)
    from_s3 = await asyncio.to_thread(
        plan_clip, _sources(segments, storage_root, locations), start_us, end_us
    )

    assert not any((storage_root / s.path).exists() for s in segments)
    assert from_s3.size == local.size
    assert await asyncio.to_thread(from_s3.read, 0, from_s3.size) == local_bytes
    middle = local.size // 2
    assert (
        await asyncio.to_thread(from_s3.read, middle, 1000)
        == local_bytes[middle : middle + 1000]
    )
    assert await replication.tiers(segments) == {i: "s3" for i in ids}


def _sources(
    segments: list, root: Path, locations: list | None = None
) -> list[ClipSource]:
    return [
        ClipSource(
            path=(locations[i] if locations else root / s.path),
            start_us=s.start_us,
            end_us=s.end_us,
            timescale=s.timescale,
            keyframes=tuple(s.keyframes),
            size=s.bytes,
        )
        for i, s in enumerate(segments)
    ]
