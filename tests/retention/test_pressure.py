"""Disk pressure on a real 16 MiB tmpfs: eviction first, then general before key-area,
held segments never touched, recording stopped when only held data is left."""

import logging
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psutil  # type: ignore[import-untyped]
import pytest

from nvr.config import S3Config, StorageConfig
from nvr.index.evidence import place_hold, release_hold
from nvr.retention.pressure import DiskPressure, verified_eviction
from nvr.storage import replicas
from nvr.storage.s3 import S3Store
from nvr.storage.testing import SeaweedServer
from tests.index.support import SECOND_US, T0_US

from .support import Store, bucket_keys, make_store, replicate

MIB = 1024 * 1024
MARKS = StorageConfig(high_water_percent=60, low_water_percent=40)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs mounted for this test (needs root)."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def _fill(store: Store, camera_id: str, count: int) -> list[int]:
    return [store.add(camera_id, seq, size=MIB) for seq in range(count)]


def test_pressure_evicts_replicated_then_deletes_general_oldest_skipping_held(
    tmp_path: Path,
    small_disk: Path,
    aws_env: SeaweedServer,
    bucket: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = make_store(tmp_path, small_disk)
    general = _fill(store, "cam1", 5)
    key_area = _fill(store, "cam2", 5)
    client = aws_env.client()
    replicate(store, client, bucket, key_area[3])
    place_hold(
        store.index,
        "cam1",
        T0_US + 61 * SECOND_US,
        T0_US + 62 * SECOND_US,
        "CASE-3",
        "assault",
        "olive",
    )
    s3 = S3Store(S3Config(endpoint_url=aws_env.endpoint_url, bucket=bucket))
    pressure = DiskPressure(
        store.index,
        small_disk,
        MARKS,
        s3,
        store.clock,
        evict=verified_eviction(s3, store.index, small_disk, store.clock),
    )
    before = psutil.disk_usage(str(small_disk)).percent

    with caplog.at_level(logging.ERROR, logger="nvr.retention.deleter"):
        status = pressure.check()

    assert before >= 60
    assert status.evicted == 1 and not status.exhausted
    assert replicas.states(store.index, [key_area[3]]) == {key_area[3]: "evicted"}
    assert status.deleted_ids == [general[0], general[2], general[3]]
    assert status.used_percent < 40
    remaining = {
        row.id
        for row in store.index.segments_overlapping(
            "cam1", T0_US, T0_US + 3600 * SECOND_US
        )
    }
    assert remaining == {general[1], general[4]}  # the held one and the newest
    assert len(bucket_keys(client, bucket)) == 1  # eviction keeps the S3 copy
    assert {d.reason for d in store.index.deletions("cam1")} == {"disk-pressure"}
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 3 and all(
        "reason=disk-pressure" in r.getMessage() for r in errors
    )


def test_pressure_only_held_left_stops_recording_deletes_nothing_until_released(
    tmp_path: Path, small_disk: Path
) -> None:
    store = make_store(tmp_path, small_disk)
    _fill(store, "cam1", 5)
    _fill(store, "cam2", 5)
    holds = [
        place_hold(
            store.index,
            camera,
            T0_US,
            T0_US + 3600 * SECOND_US,
            "CASE-4",
            "riot",
            "olive",
        )
        for camera in ("cam1", "cam2")
    ]
    calls: list[str] = []
    pressure = DiskPressure(
        store.index,
        small_disk,
        MARKS,
        None,
        store.clock,
        on_exhausted=calls.append,
        on_relieved=lambda: calls.append("resumed"),
    )

    stopped = pressure.check()

    assert stopped.exhausted and stopped.deleted == 0
    assert len(store.files()) == 10
    assert len(calls) == 1 and "recording stopped" in calls[0]

    release_hold(store.index, holds[0].id, "olive")
    relieved = pressure.check()

    assert not relieved.exhausted and relieved.deleted == 4  # general, oldest first
    assert calls[-1] == "resumed"
    assert sorted(p.split("/")[0] for p in store.files()) == ["cam1"] + ["cam2"] * 5


def test_storage_config_low_mark_not_below_high_rejected() -> None:
    from nvr.config import parse_config
    from nvr.errors import ConfigError

    with pytest.raises(ConfigError, match="low_water_percent must be below"):
        parse_config("[storage]\nhigh_water_percent = 80\nlow_water_percent = 85\n")
    assert parse_config("").storage.high_water_percent == 90
