"""End to end: real RTSP cameras, ``nvr serve`` as a process, checks through the HTTP API."""

import hashlib
import io
import itertools
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import av
import pytest

from nvr.index.db import open_index
from nvr.timeutil import format_rfc3339, parse_rfc3339_us, wall_now_us

pytestmark = pytest.mark.e2e

GOP_S = 1.0  # the simulated cameras send one keyframe a second


def _recordings(
    recorder: Any, camera_id: str, start_us: int, end_us: int
) -> dict[str, Any]:
    query = f"start={format_rfc3339(start_us)}&end={format_rfc3339(end_us)}"
    status, _, body = recorder.get(f"/api/v1/cameras/{camera_id}/recordings?{query}")
    assert status == 200, body

    return dict(json.loads(body))


def _assert_tiled(segments: list[dict[str, Any]]) -> None:
    """Segments never overlap; within one run each starts where the previous ended."""
    spans = [
        (parse_rfc3339_us(s["start"]), parse_rfc3339_us(s["end"]), s) for s in segments
    ]
    for (_, prev_end, prev), (start, end, seg) in itertools.pairwise(spans):
        assert end > start
        assert start >= prev_end, f"overlap: {prev} then {seg}"
        if seg["run_id"] == prev["run_id"]:
            assert start == prev_end, f"hole inside a run: {prev} then {seg}"


def _assert_files_intact(
    recorder: Any, camera_id: str, start_us: int, end_us: int
) -> None:
    index = open_index(recorder.index_url)
    rows = index.segments_overlapping(camera_id, start_us, end_us)
    assert rows
    for row in rows:
        path = recorder.storage / row.path
        assert hashlib.sha256(path.read_bytes()).hexdigest() == row.sha256, row.path
        probe = subprocess.run(
            ["ffprobe", "-v", "error", str(path)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert probe.returncode == 0 and not probe.stderr.strip(), (
            row.path,
            probe.stderr,
        )


def _decode_clip(data: bytes) -> tuple[float, int, set[str]]:
    """Decodes every frame; returns the video duration in seconds, frames, track kinds."""
    with av.open(io.BytesIO(data)) as container:
        kinds = {stream.type for stream in container.streams}
        video = container.streams.video[0]
        first = last = None
        frames = 0
        for frame in container.decode(video):
            frames += 1
            assert frame.pts is not None
            first = frame.pts if first is None else min(first, frame.pts)
            last = frame.pts if last is None else max(last, frame.pts)
        assert first is not None and last is not None and video.time_base is not None
        rate = video.average_rate or video.guessed_rate
        frame_s = float(1 / rate) if rate else 0.04
        return float((last - first) * video.time_base) + frame_s, frames, kinds


@pytest.mark.parametrize("client", ["native", "ffmpeg"])
def test_record_two_codecs_then_play_back_and_survive_a_camera_outage(
    rtsp_camera_factory: Any, recorder_factory: Any, client: str
) -> None:
    h264 = rtsp_camera_factory(codec="h264", audio="aac", bframes=True)
    h265 = rtsp_camera_factory(codec="hevc")
    recorder = recorder_factory(
        [("cam-h264", h264.url), ("cam-h265", h265.url)], rtsp_client=f'"{client}"'
    )
    began_us = wall_now_us()
    recorder.start()

    def recording_both() -> bool:
        cameras = recorder.get_json("/api/v1/cameras")["cameras"]
        return all(c["state"] == "recording" for c in cameras)

    recorder.wait_for(recording_both, 60, "both cameras recording")
    time.sleep(40)

    # stopping the RTSP server mid-recording produces a gap, and recording resumes
    h264.stop()
    recorder.wait_for(
        lambda: (
            recorder.get_json("/api/v1/cameras")["cameras"][0]["state"] != "recording"
        ),
        30,
        "cam-h264 to notice the outage",
    )
    time.sleep(5)
    h264.start()
    h264.wait_ready()
    resumed_from_us = wall_now_us()
    recorder.wait_for(
        lambda: (
            recorder.get_json("/api/v1/cameras")["cameras"][0]["state"] == "recording"
        ),
        60,
        "cam-h264 to resume",
    )
    time.sleep(25)
    recorder.stop()  # closes the open segments, so everything recorded is indexed
    recorder.start()
    until_us = wall_now_us()

    for camera_id in ("cam-h264", "cam-h265"):
        listing = _recordings(recorder, camera_id, began_us - 60_000_000, until_us)
        segments = listing["segments"]
        assert len(segments) >= 4, listing
        _assert_tiled(segments)
        for segment in segments[:-1]:
            assert segment["media_duration_s"] <= 10 + GOP_S + 0.1, segment
        _assert_files_intact(recorder, camera_id, began_us - 60_000_000, until_us)

    # the outage is a gap row, and segments exist after it
    listing = _recordings(recorder, "cam-h264", began_us - 60_000_000, until_us)
    gaps = [g for g in listing["gaps"] if g["end"] is not None]
    assert gaps, listing
    outage_end_us = parse_rfc3339_us(gaps[0]["end"])
    assert any(
        parse_rfc3339_us(s["start"]) >= outage_end_us for s in listing["segments"]
    )
    assert outage_end_us >= resumed_from_us - 15_000_000
    assert listing["segments"][0]["audio_codec"] == "aac"

    # a 15 s clip inside the recording lasts 15 s plus at most one GOP and decodes
    first_start_us = parse_rfc3339_us(listing["segments"][0]["start"])
    clip_start_us = first_start_us + 3_500_000
    clip_end_us = clip_start_us + 15_000_000
    query = f"start={format_rfc3339(clip_start_us)}&end={format_rfc3339(clip_end_us)}"
    status, headers, data = recorder.get(f"/api/v1/cameras/cam-h264/video.mp4?{query}")
    assert status == 200, data[:300]
    assert int(headers["Content-Length"]) == len(data)
    assert data[4:8] == b"ftyp" and data.find(b"moov") < data.find(b"mdat")
    duration_s, frames, kinds = _decode_clip(data)
    assert 15 - 0.1 <= duration_s <= 15 + GOP_S + 0.1, duration_s
    assert frames >= 15 * 20
    assert kinds == {"video", "audio"}

    # HTTP Range returns the same bytes as the whole body
    status, headers, part = recorder.get(
        f"/api/v1/cameras/cam-h264/video.mp4?{query}", {"Range": "bytes=1000-50999"}
    )
    assert status == 206
    assert headers["Content-Range"] == f"bytes 1000-50999/{len(data)}"
    assert part == data[1000:51000]

    # the H.265 clip plays too
    status, _, data = recorder.get(f"/api/v1/cameras/cam-h265/video.mp4?{query}")
    assert status == 200
    duration_s, _, kinds = _decode_clip(data)
    assert 15 - 0.1 <= duration_s <= 15 + GOP_S + 0.1
    assert kinds == {"video"}
    assert "secret" not in recorder.log_text()


def test_serve_bad_requests_get_specific_4xx(
    rtsp_camera_factory: Any, recorder_factory: Any
) -> None:
    camera = rtsp_camera_factory(codec="h264")
    recorder = recorder_factory([("cam", camera.url)])
    recorder.start()
    base = "/api/v1/cameras"
    cases = [
        (
            f"{base}/nope/recordings?start=2026-01-01T00:00:00Z&end=2026-01-01T01:00:00Z",
            404,
            "unknown camera",
        ),
        (
            f"{base}/cam/recordings?start=yesterday&end=2026-01-01T01:00:00Z",
            400,
            "RFC 3339",
        ),
        (
            f"{base}/cam/recordings?start=2026-01-01T02:00:00Z&end=2026-01-01T01:00:00Z",
            400,
            "after start",
        ),
        (
            f"{base}/cam/video.mp4?start=2026-01-01T00:00:00Z&end=2026-01-03T00:00:00Z",
            400,
            "24 h",
        ),
        (
            f"{base}/cam/video.mp4?start=2020-01-01T00:00:00Z&end=2020-01-01T01:00:00Z",
            404,
            "no recording",
        ),
        (f"{base}/cam/video.mp4?end=2020-01-01T01:00:00Z", 400, "'start' is required"),
    ]
    for path, status, message in cases:
        got, headers, body = recorder.get(path)
        assert got == status, (path, body)
        assert headers["Content-Type"].startswith("application/json")
        assert message in body.decode(), (path, body)


def test_serve_lists_cameras_without_credentials(
    rtsp_camera_factory: Any, recorder_factory: Any, tmp_path: Path
) -> None:
    camera = rtsp_camera_factory(codec="h264", user="admin", password="hunter2secret")
    recorder = recorder_factory([("locked", camera.url)])
    recorder.start()
    recorder.wait_for(
        lambda: (
            recorder.get_json("/api/v1/cameras")["cameras"][0]["state"] == "recording"
        ),
        60,
        "the camera with credentials to record",
    )
    status, _, body = recorder.get("/api/v1/cameras")
    assert status == 200 and b"hunter2secret" not in body
    assert "hunter2secret" not in recorder.log_text()
