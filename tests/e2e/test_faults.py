"""Camera faults through a real RTSP server and a faulty TCP proxy in front of it.

For each fault the recorder survives, ends the run, records the gap, shows the camera's
state and last error in GET /api/v1/cameras, and recovers by itself once the fault ends.
The recorder runs with TZ=America/New_York: nothing it stores or answers may depend on it.
"""

import subprocess
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import av
import pytest

from nvr.simulate.cameras import SimulatedCamera, free_port
from nvr.simulate.media import FFMPEG
from nvr.simulate.proxy import FaultyProxy, ProxyMode
from nvr.timeutil import parse_rfc3339_us, wall_now_us
from tests.e2e.checks import (
    assert_rows_match_files,
    assert_sane_segments,
    camera,
    listing_since,
    state,
)

pytestmark = pytest.mark.e2e

SEGMENT_S = 6
DST_ZONE = "America/New_York"


def _observe(recorder: Any, cameras: list[str], seconds: float) -> dict[str, list[Any]]:
    """Polls GET /api/v1/cameras; returns each camera's (state, last_error) seen."""
    seen: dict[str, list[Any]] = defaultdict(list)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for camera_id in cameras:
            entry = camera(recorder, camera_id)
            seen[camera_id].append((entry.get("state"), entry.get("last_error")))
        time.sleep(0.5)
    return seen


def _faulted(seen: list[Any]) -> bool:
    return any(s != "recording" and err for s, err in seen)


def _check_after(
    recorder: Any, camera_id: str, began_us: int, fault_end_us: int
) -> None:
    """Files and rows agree; segments are sane; there is a gap; recording came back."""
    assert_rows_match_files(recorder, camera_id)
    listing = listing_since(recorder, camera_id, began_us - 60_000_000, wall_now_us())
    segments = listing["segments"]
    assert_sane_segments(segments, SEGMENT_S)
    closed_gaps = [g for g in listing["gaps"] if g["end"] is not None]
    assert closed_gaps or camera_id == "drop", (camera_id, listing)
    assert any(
        parse_rfc3339_us(s["start"]) >= fault_end_us - 40_000_000 for s in segments
    )
    assert any(parse_rfc3339_us(s["end"]) > fault_end_us for s in segments), camera_id


@pytest.mark.timeout(400)
def test_serve_stream_faults_end_run_record_gap_and_recover(
    rtsp_camera_factory: Any, recorder_factory: Any
) -> None:
    restarted = rtsp_camera_factory(codec="h264", audio="aac", bframes=True)
    behind = {
        name: rtsp_camera_factory(codec="h264") for name in ("pause", "drop", "garbage")
    }
    proxies = {name: FaultyProxy(cam.port) for name, cam in behind.items()}
    for proxy in proxies.values():
        proxy.start()
    try:
        recorder = recorder_factory(
            [("restart", restarted.url)] + [(n, p.url) for n, p in proxies.items()],
            segment_seconds=SEGMENT_S,
        )
        recorder.env["TZ"] = DST_ZONE
        began_us = wall_now_us()
        recorder.start()
        names = ["restart", *proxies]
        recorder.wait_for(
            lambda: all(state(recorder, n) == "recording" for n in names),
            60,
            "every camera recording",
        )
        time.sleep(SEGMENT_S + 4)

        # the faults, all at once: server restart (timestamps start over), garbage
        # bytes, dropped and delayed packets, a 30 s pause
        restarted.restart()
        proxies["garbage"].mode = ProxyMode.GARBAGE
        proxies["drop"].delay_s = 0.05
        proxies["drop"].drop_rate = 0.2
        proxies["pause"].mode = ProxyMode.PAUSE
        seen = _observe(recorder, names, 12)
        proxies["garbage"].mode = ProxyMode.FORWARD
        proxies["drop"].drop_rate = 0.0
        proxies["drop"].delay_s = 0.0
        seen_more = _observe(recorder, names, 18)
        proxies["pause"].mode = ProxyMode.FORWARD
        fault_end_us = wall_now_us()
        for name in names:
            seen[name] += seen_more[name]
            if name != "drop":  # a lossy link may be survived within the run
                assert _faulted(seen[name]), (name, seen[name])

        recorder.wait_for(
            lambda: all(state(recorder, n) == "recording" for n in names),
            60,
            "every camera recording again",
        )
        time.sleep(SEGMENT_S * 2 + 2)
        assert recorder.process is not None and recorder.process.poll() is None
        recorder.stop()
        recorder.start()
        for name in names:
            _check_after(recorder, name, began_us, fault_end_us)
        print(
            {name: sorted({str(e) for _, e in seen[name] if e})[:3] for name in names}
        )
    finally:
        for proxy in proxies.values():
            proxy.stop()


@pytest.mark.timeout(300)
def test_serve_connect_faults_show_state_and_recover(
    rtsp_camera_factory: Any, recorder_factory: Any
) -> None:
    silent_camera = rtsp_camera_factory(codec="h264")
    locked = rtsp_camera_factory(codec="h264", user="admin", password="right-one")
    wrong_url = locked.url.replace("right-one", "wrong-one")
    with FaultyProxy(silent_camera.port) as proxy:
        proxy.mode = ProxyMode.BLACKHOLE  # accepts TCP, never answers
        recorder = recorder_factory(
            [("silent", proxy.url), ("auth", wrong_url)], connect_timeout_seconds=3
        )
        recorder.env["TZ"] = DST_ZONE
        began_us = wall_now_us()
        recorder.start()
        recorder.wait_for(
            lambda: (
                "no RTSP answer within 3 s"
                == camera(recorder, "silent").get("last_error")
            ),
            40,
            "the silent camera's error to show",
        )
        recorder.wait_for(
            lambda: "401" in str(camera(recorder, "auth").get("last_error")),
            40,
            "the 401 to show",
        )
        assert state(recorder, "silent") != "recording"
        assert state(recorder, "auth") != "recording"
        assert "wrong-one" not in str(recorder.get_json("/api/v1/cameras"))

        # the faults end: the server answers; the camera's password becomes nvr's
        proxy.mode = ProxyMode.FORWARD
        proxy.cut()
        locked.stop()
        locked.password = "wrong-one"
        locked.start()
        locked.wait_ready()
        recorder.wait_for(
            lambda: state(recorder, "silent") == state(recorder, "auth") == "recording",
            60,
            "both cameras to recover by themselves",
        )
        time.sleep(8)
        recorder.stop()
        recorder.start()
        for name in ("silent", "auth"):
            listing = listing_since(recorder, name, began_us, wall_now_us())
            assert listing["segments"], listing
            assert_rows_match_files(recorder, name)
        assert recorder.process is not None and recorder.process.poll() is None


def _resolution_change_clip(directory: Path) -> Path:
    """Five seconds at 640x360 then five at 320x180, in-band SPS/PPS (MPEG-TS parts)."""
    clip = directory / "resolution-change-640-320.mkv"
    if clip.exists():
        return clip
    parts = []
    for size in ("640x360", "320x180"):
        part = directory / f"resolution-part-{size}.ts"
        subprocess.run(
            [
                FFMPEG,
                "-hide_banner",
                "-loglevel",
                "error",
                "-y",
                "-f",
                "lavfi",
                "-i",
                f"testsrc2=size={size}:rate=25",
                "-t",
                "5",
                "-pix_fmt",
                "yuv420p",
                "-c:v",
                "libx264",
                "-preset",
                "veryfast",
                "-g",
                "25",
                "-x264-params",
                "keyint=25:min-keyint=25:scenecut=0:bframes=0",
                "-f",
                "mpegts",
                str(part),
            ],
            check=True,
        )
        parts.append(str(part))
    subprocess.run(
        [
            FFMPEG,
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-i",
            "concat:" + "|".join(parts),
            "-c",
            "copy",
            str(clip),
        ],
        check=True,
    )
    return clip


def _frame_sizes(path: Path) -> set[tuple[int, int]]:
    with av.open(str(path)) as container:
        return {(f.width, f.height) for f in container.decode(video=0)}


@pytest.mark.timeout(200)
def test_serve_resolution_change_mid_stream_ends_run_never_mixes_sizes(
    recorder_factory: Any, clips_dir: Path
) -> None:
    clip = _resolution_change_clip(clips_dir)
    with SimulatedCamera("resize", clip, free_port()) as cam:
        recorder = recorder_factory([("resize", cam.url)], segment_seconds=3)
        began_us = wall_now_us()
        recorder.start()
        recorder.wait_for(
            lambda: (
                "stream-changed" in str(camera(recorder, "resize").get("last_error"))
                or "stream-changed" in recorder.log_text()
            ),
            60,
            "the resolution change to end the run",
        )
        recorder.wait_for(
            lambda: state(recorder, "resize") == "recording", 30, "recording again"
        )
        time.sleep(4)
        recorder.stop()
        recorder.start()
        rows = assert_rows_match_files(recorder, "resize")
        assert len({row.run_id for row in rows}) >= 2
        for row in rows:  # one size per file, the one the index states
            assert _frame_sizes(recorder.storage / row.path) == {
                (row.width, row.height)
            }
        listing = listing_since(
            recorder, "resize", began_us - 60_000_000, wall_now_us()
        )
        assert any(g["reason"] == "stream-changed" for g in listing["gaps"]), listing[
            "gaps"
        ]
