"""CameraRecorder against real simulated cameras (gst-rtsp-server), writing real files."""

import hashlib
import itertools
import json
import logging
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from nvr.config import CameraConfig, RecordingConfig
from nvr.ingest.events import CameraState, CameraStatus, Event, RunEnded, SegmentClosed
from nvr.ingest.recorder import CameraRecorder
from nvr.simulate.cameras import SimulatedCamera

pytestmark = pytest.mark.e2e

CameraFactory = Callable[..., SimulatedCamera]
GOP_US = 1_000_000  # the simulated clips have one keyframe per second


class Recording:
    """A CameraRecorder running on a thread, collecting its events."""

    def __init__(self, url: str, root: Path, **recording: float) -> None:
        settings = {
            "segment_seconds": 5,
            "stall_seconds": 3,
            "backoff_initial_seconds": 0.2,
            "backoff_max_seconds": 1,
            **recording,
        }
        self.root = root
        self.stop_event = threading.Event()
        self._events: list[Event] = []
        self._lock = threading.Lock()
        self.recorder = CameraRecorder(
            CameraConfig(id="cam1", url=url),
            RecordingConfig(**settings),
            root,
            self._emit,
            self.stop_event,
        )
        self.thread = threading.Thread(target=self.recorder.run, name="recorder")
        self.thread.start()

    def _emit(self, event: Event) -> None:
        with self._lock:
            self._events.append(event)

    @property
    def events(self) -> list[Event]:
        with self._lock:
            return list(self._events)

    def segments(self) -> list[SegmentClosed]:
        return [e for e in self.events if isinstance(e, SegmentClosed)]

    def wait_for(self, done: Callable[[list[Event]], bool], timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if done(self.events):
                return
            time.sleep(0.1)
        raise AssertionError(
            f"condition not met in {timeout_s} s; events: {self.events}"
        )

    def stop(self) -> float:
        """Sets stop and joins; returns how long the recorder took to return."""
        started = time.monotonic()
        self.stop_event.set()
        self.thread.join(timeout=15)
        assert not self.thread.is_alive(), "recorder ignored stop"
        return time.monotonic() - started


@pytest.fixture
def recordings(tmp_path: Path) -> Iterator[Callable[..., Recording]]:
    started: list[Recording] = []

    def start(url: str, **recording: float) -> Recording:
        session = Recording(url, tmp_path / "segments", **recording)
        started.append(session)
        return session

    yield start
    for session in started:
        session.stop()


def ffprobe_streams(path: Path) -> list[dict[str, str]]:
    """ffprobe's stream list; asserts ffprobe printed no error at all."""
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-show_streams", "-of", "json", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert probe.stderr == "", f"{path}: {probe.stderr}"
    streams: list[dict[str, str]] = json.loads(probe.stdout)["streams"]
    return streams


def box_type_at(path: Path, offset: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(offset + 4)
        return f.read(4)


def check_segment_file(root: Path, segment: SegmentClosed) -> list[dict[str, str]]:
    """Everything a user checks on one closed file; returns its ffprobe streams."""
    path = root / segment.path
    data = path.read_bytes()
    assert hashlib.sha256(data).hexdigest() == segment.sha256
    assert len(data) == segment.bytes
    assert segment.keyframes and segment.keyframes[0][0] == 0
    for _ticks, offset in segment.keyframes:
        assert box_type_at(path, offset) == b"moof"
    return ffprobe_streams(path)


def check_run_tiles(segments: list[SegmentClosed]) -> None:
    for earlier, later in itertools.pairwise(segments):
        if earlier.run_id == later.run_id:
            assert later.seq == earlier.seq + 1
            assert later.start_us == earlier.end_us
            assert later.media_start == earlier.media_start + earlier.media_duration


@pytest.mark.parametrize(
    ("codec", "audio", "bframes", "tag"),
    [("h264", "aac", True, "avc1"), ("hevc", None, False, "hvc1")],
)
def test_recorder_25s_stream_closes_verified_tiling_5s_segments(
    rtsp_camera_factory: CameraFactory,
    recordings: Callable[..., Recording],
    codec: str,
    audio: str | None,
    bframes: bool,
    tag: str,
) -> None:
    camera = rtsp_camera_factory(codec, audio=audio, bframes=bframes, seconds=10)
    session = recordings(camera.url)

    session.wait_for(
        lambda events: sum(isinstance(e, SegmentClosed) for e in events) >= 4, 40
    )
    stop_s = session.stop()

    segments = session.segments()
    assert len(segments) >= 4
    assert len({s.run_id for s in segments}) == 1, "the run broke while recording"
    check_run_tiles(segments)
    for segment in segments[:-1]:  # the last one was cut by stop
        duration_us = segment.media_duration * 1_000_000 // segment.timescale
        assert 4_990_000 <= duration_us < 5_000_000 + GOP_US
        assert abs((segment.end_us - segment.start_us) - duration_us) <= 5_000
    for segment in segments:
        streams = check_segment_file(session.root, segment)
        video = [s for s in streams if s["codec_type"] == "video"]
        assert [s["codec_tag_string"] for s in video] == [tag]
        assert segment.video_codec == codec
        audio_codecs = [s["codec_name"] for s in streams if s["codec_type"] == "audio"]
        assert audio_codecs == ([audio] if audio else [])
        assert segment.audio_codec == audio
    assert not list((session.root / "cam1" / "partial").glob("*.mp4"))
    ended = [e for e in session.events if isinstance(e, RunEnded)]
    assert [e.reason for e in ended] == ["stopped"]
    assert ended[0].end_us == segments[-1].end_us
    assert stop_s < 2


def test_recorder_server_killed_closes_segment_and_reconnects_with_new_run(
    rtsp_camera_factory: CameraFactory, recordings: Callable[..., Recording]
) -> None:
    camera = rtsp_camera_factory("h264", audio="aac", bframes=True, seconds=10)
    session = recordings(camera.url)
    session.wait_for(
        lambda events: any(isinstance(e, SegmentClosed) for e in events), 30
    )
    time.sleep(2)  # into the second segment

    camera.stop()
    session.wait_for(lambda events: any(isinstance(e, RunEnded) for e in events), 15)
    session.wait_for(
        lambda events: any(
            isinstance(e, CameraState) and e.status is CameraStatus.RECONNECTING
            for e in events
        ),
        10,
    )
    first_run = session.segments()
    ended = next(e for e in session.events if isinstance(e, RunEnded))
    assert ended.reason in ("disconnected", "stalled")
    assert ended.run_id == first_run[0].run_id
    assert len(first_run) >= 2  # the segment open at the kill was closed, not lost
    assert ended.end_us == first_run[-1].end_us
    check_run_tiles(first_run)
    for segment in first_run:
        check_segment_file(session.root, segment)

    camera.start()
    camera.wait_ready()
    session.wait_for(
        lambda events: any(
            isinstance(e, SegmentClosed) and e.run_id != ended.run_id for e in events
        ),
        40,
    )
    second_run = [s for s in session.segments() if s.run_id != ended.run_id]
    assert second_run[0].seq == 0
    assert second_run[0].start_us >= ended.end_us
    check_segment_file(session.root, second_run[0])
    states = [e for e in session.events if isinstance(e, CameraState)]
    assert states[-1].reconnects >= 1


def test_recorder_pcm_alaw_camera_records_video_only_with_one_warning(
    rtsp_camera_factory: CameraFactory,
    recordings: Callable[..., Recording],
    caplog: pytest.LogCaptureFixture,
) -> None:
    camera = rtsp_camera_factory("h264", audio="pcm_alaw", seconds=10)
    with caplog.at_level(logging.WARNING, logger="nvr"):
        session = recordings(camera.url, segment_seconds=2)
        session.wait_for(
            lambda events: sum(isinstance(e, SegmentClosed) for e in events) >= 2, 30
        )
        session.stop()

    for segment in session.segments():
        streams = check_segment_file(session.root, segment)
        assert [s["codec_type"] for s in streams] == ["video"]
        assert segment.audio_codec is None
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "pcm_alaw" in warnings[0]


def test_recorder_stalled_camera_ends_run_as_stalled(
    rtsp_camera_factory: CameraFactory, recordings: Callable[..., Recording]
) -> None:
    camera = rtsp_camera_factory("h264", seconds=10)
    session = recordings(camera.url, stall_seconds=2)
    session.wait_for(
        lambda events: any(isinstance(e, SegmentClosed) for e in events), 30
    )

    server = camera._proc  # the server process: freezing it stalls the stream mid-run
    assert server is not None
    os.kill(server.pid, signal.SIGSTOP)
    try:
        session.wait_for(
            lambda events: any(isinstance(e, RunEnded) for e in events), 10
        )
        stop_s = session.stop()
    finally:
        os.kill(server.pid, signal.SIGCONT)

    ended = next(e for e in session.events if isinstance(e, RunEnded))
    assert ended.reason == "stalled"
    for segment in session.segments():
        check_segment_file(session.root, segment)
    assert stop_s < 3


def test_recorder_stop_during_silent_connect_returns_within_2s(
    recordings: Callable[..., Recording],
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, never answers
        port = silent.getsockname()[1]
        session = recordings(
            f"rtsp://user:secret@127.0.0.1:{port}/stream", connect_timeout_seconds=30
        )
        time.sleep(1.5)
        stop_s = session.stop()

    assert stop_s < 2
    states = [e for e in session.events if isinstance(e, CameraState)]
    assert states[-1].status is CameraStatus.STOPPED
    assert not session.segments()


def test_recorder_unreachable_camera_reports_error_without_password(
    recordings: Callable[..., Recording],
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens here once closed
    session = recordings(f"rtsp://user:secret@127.0.0.1:{port}/stream")

    session.wait_for(
        lambda events: any(isinstance(e, CameraState) and e.last_error for e in events),
        15,
    )
    session.stop()

    errors = [
        e.last_error
        for e in session.events
        if isinstance(e, CameraState) and e.last_error
    ]
    assert errors
    assert all("secret" not in error for error in errors)
    assert errors[0] == "Connection refused"  # no FFmpeg error number, no URL


def test_recorder_silent_camera_reports_no_answer_within_timeout(
    recordings: Callable[..., Recording],
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, never answers
        port = silent.getsockname()[1]
        session = recordings(
            f"rtsp://127.0.0.1:{port}/stream", connect_timeout_seconds=2
        )
        session.wait_for(
            lambda events: any(
                isinstance(e, CameraState) and e.last_error for e in events
            ),
            15,
        )
        session.stop()

    errors = [
        e.last_error
        for e in session.events
        if isinstance(e, CameraState) and e.last_error
    ]
    assert errors[0] == "no RTSP answer within 2 s"
