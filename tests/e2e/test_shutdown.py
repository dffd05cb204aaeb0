"""Stopping ``nvr serve`` the way a service manager does closes every open segment."""

import os
import signal
import time
from typing import Any

import pytest

from tests.e2e.checks import assert_rows_match_files, state

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("client", ["native", "ffmpeg"])
def test_serve_sigterm_to_whole_group_closes_and_indexes_open_segment(
    rtsp_camera_factory: Any, recorder_factory: Any, client: str
) -> None:
    # systemd's default KillMode=control-group sends SIGTERM to the workers too
    camera = rtsp_camera_factory(codec="h264", audio="aac", bframes=True)
    recorder = recorder_factory(
        [("cam", camera.url)], segment_seconds=60, rtsp_client=f'"{client}"'
    )
    recorder.start()
    recorder.wait_for(lambda: state(recorder, "cam") == "recording", 30, "recording")
    time.sleep(6)

    assert recorder.process is not None
    os.killpg(recorder.process.pid, signal.SIGTERM)
    assert recorder.process.wait(timeout=40) == 0, recorder.log_text()[-3000:]
    recorder.process = None

    partial = recorder.storage / "cam" / "partial"
    assert list(partial.glob("*.mp4")) == [], "an open segment was left unclosed"
    rows = assert_rows_match_files(recorder, "cam")
    assert len(rows) == 1
    assert rows[0].end_us - rows[0].start_us >= 4_000_000
