"""Simulated cameras, checked with real clients: raw RTSP, ffprobe and PyAV."""

import itertools
import json
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction

import av
import pytest

from nvr.simulate.cameras import SimulatedCamera, describe_status

CameraFactory = Callable[..., SimulatedCamera]

CLIP_S = 3  # short, so a few seconds of reading crosses the loop point
FRAME_TICKS = 3600  # one frame at 25 fps in the 90 kHz RTP clock


@dataclass
class VideoPacket:
    arrival_s: float
    dts: int | None
    pts: int | None
    keyframe: bool


def probe_codecs(url: str) -> list[tuple[str, str]]:
    """(codec_type, codec_name) of each track, as ffprobe sees them over RTSP/TCP."""
    out = subprocess.run(
        [
            "/usr/bin/ffprobe",
            "-v",
            "error",
            "-rtsp_transport",
            "tcp",
            "-show_entries",
            "stream=codec_type,codec_name",
            "-of",
            "json",
            url,
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout
    return [(s["codec_type"], s["codec_name"]) for s in json.loads(out)["streams"]]


def read_video(url: str, wall_s: float) -> tuple[list[VideoPacket], Fraction]:
    """Video packets read with PyAV for ``wall_s`` seconds, and the video time base."""
    packets: list[VideoPacket] = []
    with av.open(url, options={"rtsp_transport": "tcp"}, timeout=(20, 10)) as container:
        video = container.streams.video[0]
        started = time.monotonic()
        for packet in container.demux(video):
            now = time.monotonic() - started
            if packet.size:
                packets.append(
                    VideoPacket(now, packet.dts, packet.pts, packet.is_keyframe)
                )
            if now > wall_s:
                break
        assert video.time_base is not None
        return packets, video.time_base


def stream_ends_within(packets: Iterator[object], limit_s: float) -> bool:
    """Whether the demuxer stops (end of stream or an error) within ``limit_s``."""
    deadline = time.monotonic() + limit_s
    try:
        for _ in packets:
            if time.monotonic() > deadline:
                return False
    except av.FFmpegError:
        return True
    return True


def test_camera_h264_aac_bframes_describe_and_probe_report_codecs(
    rtsp_camera_factory: CameraFactory,
) -> None:
    camera = rtsp_camera_factory("h264", audio="aac", bframes=True)

    assert describe_status(camera.port, user=None, password=None, timeout_s=10) == 200
    assert sorted(probe_codecs(camera.url)) == [("audio", "aac"), ("video", "h264")]


def test_camera_h265_describe_and_probe_report_video_only(
    rtsp_camera_factory: CameraFactory,
) -> None:
    camera = rtsp_camera_factory("hevc")

    assert describe_status(camera.port, user=None, password=None, timeout_s=10) == 200
    assert probe_codecs(camera.url) == [("video", "hevc")]


def test_camera_pcm_alaw_probe_reports_g711(rtsp_camera_factory: CameraFactory) -> None:
    camera = rtsp_camera_factory("h264", audio="pcm_alaw")

    assert sorted(probe_codecs(camera.url)) == [
        ("audio", "pcm_alaw"),
        ("video", "h264"),
    ]


def test_camera_read_across_loops_paced_real_time_with_increasing_dts(
    rtsp_camera_factory: CameraFactory,
) -> None:
    camera = rtsp_camera_factory("h264", audio="aac", bframes=True, seconds=CLIP_S)

    packets, time_base = read_video(camera.url, wall_s=8.5)

    timed = [(p.arrival_s, p.dts) for p in packets if p.dts is not None]
    dts = [media for _, media in timed]
    steps = [b - a for a, b in itertools.pairwise(dts)]
    assert min(steps) > 0, "dts went backwards"
    assert max(steps) <= 2 * FRAME_TICKS, "a hole in the timestamps (at a loop point?)"
    assert (dts[-1] - dts[0]) * time_base > 2 * CLIP_S, (
        "the read did not cross two loops"
    )
    assert sum(p.keyframe for p in packets) >= 2 * CLIP_S

    # skip the burst sent at connect, then 5 s of media must take about 5 s to arrive
    after_burst = [(arrival, media) for arrival, media in timed if arrival >= 1.5]
    first_s, first_dts = after_burst[0]
    last_s = next(
        arrival
        for arrival, media in after_burst
        if (media - first_dts) * time_base >= 5
    )
    assert 3.5 <= last_s - first_s <= 6.5


def test_camera_two_clients_at_once_both_receive(
    rtsp_camera_factory: CameraFactory,
) -> None:
    camera = rtsp_camera_factory("h264", seconds=CLIP_S)
    results: list[int] = []

    def count_packets() -> None:
        results.append(len(read_video(camera.url, wall_s=3)[0]))

    readers = [threading.Thread(target=count_packets) for _ in range(2)]
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join(timeout=40)

    assert len(results) == 2
    assert min(results) >= 50  # 3 s at 25 fps is 75 frames; allow for a slow start


def test_camera_stop_then_start_serves_again(
    rtsp_camera_factory: CameraFactory,
) -> None:
    camera = rtsp_camera_factory("hevc", seconds=CLIP_S)
    assert any(p.keyframe for p in read_video(camera.url, wall_s=1.5)[0])

    stopped_at = time.monotonic()
    camera.stop()
    assert time.monotonic() - stopped_at < 3, "SIGTERM should end the server promptly"
    with pytest.raises(OSError):
        describe_status(camera.port, user=None, password=None, timeout_s=2)

    camera.start()
    camera.wait_ready()
    assert any(p.keyframe for p in read_video(camera.url, wall_s=1.5)[0])


def test_camera_restart_while_client_reads_client_sees_end(
    rtsp_camera_factory: CameraFactory,
) -> None:
    camera = rtsp_camera_factory("h264", seconds=CLIP_S)
    with av.open(
        camera.url, options={"rtsp_transport": "tcp"}, timeout=(20, 5)
    ) as container:
        packets = container.demux(video=0)
        next(packets)
        camera.restart()
        assert stream_ends_within(packets, limit_s=10)

    camera.wait_ready()
    assert read_video(camera.url, wall_s=1.5)[0]


def test_camera_with_credentials_refuses_anonymous_and_accepts_user(
    rtsp_camera_factory: CameraFactory,
) -> None:
    camera = rtsp_camera_factory(
        "h264", seconds=CLIP_S, user="admin", password="s3cret"
    )
    anonymous = f"rtsp://127.0.0.1:{camera.port}/stream"

    assert describe_status(camera.port, user=None, password=None, timeout_s=10) == 401
    with pytest.raises(av.HTTPUnauthorizedError):
        av.open(anonymous, options={"rtsp_transport": "tcp"}, timeout=(20, 10))
    with pytest.raises(av.HTTPUnauthorizedError):
        av.open(
            camera.url.replace("s3cret", "wrong"),
            options={"rtsp_transport": "tcp"},
            timeout=(20, 10),
        )
    assert read_video(camera.url, wall_s=1.5)[0]
