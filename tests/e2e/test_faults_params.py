"""Cameras that send SPS/PPS (H.265: VPS/SPS/PPS) only in the SDP, never in band.

Such a stream carries its parameter sets once, in the DESCRIBE answer's
sprop-parameter-sets; no keyframe repeats them. The recorder must write them into each
file's sample description (every segment and every clip decodes on its own) and must not
take their absence from the keyframes for a stream change.
"""

import io
import subprocess
import time
from typing import Any

import av
import av.logging
import pytest

from nvr.timeutil import format_rfc3339, parse_rfc3339_us, wall_now_us
from tests.e2e.checks import assert_rows_match_files, listing_since, state

pytestmark = pytest.mark.e2e

SEGMENT_S = 10
RECORD_S = 25
CLIP_S = 12
CAMERAS = {"sdp-h264": "h264", "sdp-h265": "hevc"}


def _ffprobe_errors(path: str) -> str:
    probe = subprocess.run(
        ["ffprobe", "-v", "error", path], capture_output=True, text=True, check=False
    )
    return f"rc={probe.returncode} {probe.stdout}{probe.stderr}".strip()


def _decode(data: bytes) -> tuple[int, list[str]]:
    """Decodes every video frame; returns the frame count and FFmpeg's error messages."""
    previous = av.logging.get_level()
    av.logging.set_level(av.logging.ERROR)
    frames = 0
    try:
        with av.logging.Capture() as logs, av.open(io.BytesIO(data), "r") as container:
            for _ in container.decode(video=0):
                frames += 1
    finally:
        av.logging.set_level(previous)
    return frames, [message for _, _, message in logs]


@pytest.mark.timeout(240)
def test_serve_camera_without_inband_params_records_decodable_segments_and_clip(
    rtsp_camera_factory: Any, recorder_factory: Any
) -> None:
    cams = {
        camera_id: rtsp_camera_factory(codec=codec, inband_params=False)
        for camera_id, codec in CAMERAS.items()
    }
    recorder = recorder_factory(
        [(camera_id, cam.url) for camera_id, cam in cams.items()],
        segment_seconds=SEGMENT_S,
    )
    began_us = wall_now_us()
    recorder.start()
    recorder.wait_for(
        lambda: all(state(recorder, c) == "recording" for c in CAMERAS),
        60,
        "both cameras recording",
    )
    time.sleep(RECORD_S)
    assert all(state(recorder, c) == "recording" for c in CAMERAS)
    recorder.stop()  # closes the open segments, so everything recorded is indexed
    recorder.start()
    until_us = wall_now_us()

    assert "stream-changed" not in recorder.log_text()
    for camera_id in CAMERAS:
        rows = assert_rows_match_files(recorder, camera_id)
        assert len(rows) >= 3, rows  # two full segments and the one stop closed
        assert len({row.run_id for row in rows}) == 1, "the run was broken"
        for row in rows:
            assert _ffprobe_errors(str(recorder.storage / row.path)) == "rc=0"
            assert (row.width, row.height) == (640, 360)
        listing = listing_since(recorder, camera_id, began_us - 60_000_000, until_us)
        assert not [g for g in listing["gaps"] if g["reason"] == "stream-changed"]

        # a clip across the first segment boundary decodes without one error
        first_start_us = parse_rfc3339_us(listing["segments"][0]["start"])
        start_us = first_start_us + (SEGMENT_S - CLIP_S // 2) * 1_000_000
        query = (
            f"start={format_rfc3339(start_us)}"
            f"&end={format_rfc3339(start_us + CLIP_S * 1_000_000)}"
        )
        status, _, data = recorder.get(f"/api/v1/cameras/{camera_id}/video.mp4?{query}")
        assert status == 200, data[:300]
        frames, errors = _decode(data)
        assert errors == [], (camera_id, errors[:5])
        assert frames >= CLIP_S * 25 - 5, (camera_id, frames)
