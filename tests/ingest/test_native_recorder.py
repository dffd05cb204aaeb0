"""NativeCameraRecorder against real simulated cameras (gst-rtsp-server), on uvloop with
a real I/O thread, writing real files."""

import asyncio
import hashlib
import itertools
import json
import logging
import socket
import subprocess
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import av
import pytest
import uvloop

from nvr.config import CameraConfig, RecordingConfig
from nvr.ingest.events import CameraState, CameraStatus, Event, RunEnded, SegmentClosed
from nvr.ingest.native_io import IoThread
from nvr.ingest.native_recorder import NativeCameraRecorder
from nvr.simulate.cameras import SimulatedCamera
from nvr.simulate.media import FFMPEG
from nvr.simulate.proxy import FaultyProxy, ProxyMode

pytestmark = pytest.mark.e2e

CameraFactory = Callable[..., SimulatedCamera]
GOP_US = 1_000_000  # the simulated clips have one keyframe per second
FPS = 25
FRAME_US = 1_000_000 // FPS
WIDTH, HEIGHT = 640, 360


class Recording:
    """A NativeCameraRecorder task on the test's loop, collecting its events."""

    def __init__(self, url: str, root: Path, io: IoThread, **recording: float) -> None:
        settings = {
            "segment_seconds": 5,
            "stall_seconds": 3,
            "connect_timeout_seconds": 3,
            "backoff_initial_seconds": 0.2,
            "backoff_max_seconds": 1,
            **recording,
        }
        self.root = root
        self.io = io
        self.stop_event = asyncio.Event()
        self._events: list[Event] = []
        self._lock = threading.Lock()  # emit runs on the loop and on the I/O thread
        recorder = NativeCameraRecorder(
            CameraConfig(id="cam1", url=url),
            RecordingConfig(**settings),
            root,
            self._emit,
            io,
            self.stop_event,
        )
        self.task = asyncio.create_task(recorder.run(), name="camera-cam1")

    def _emit(self, event: Event) -> None:
        with self._lock:
            self._events.append(event)

    @property
    def events(self) -> list[Event]:
        with self._lock:
            return list(self._events)

    def segments(self) -> list[SegmentClosed]:
        return [e for e in self.events if isinstance(e, SegmentClosed)]

    def ended(self) -> list[RunEnded]:
        return [e for e in self.events if isinstance(e, RunEnded)]

    def states(self) -> list[CameraState]:
        return [e for e in self.events if isinstance(e, CameraState)]

    def errors(self) -> list[str]:
        return [s.last_error for s in self.states() if s.last_error]

    async def wait_for(
        self, done: Callable[[list[Event]], bool], timeout_s: float
    ) -> float:
        """Waits until ``done(events)``; returns the seconds it took."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        while loop.time() - started < timeout_s:
            if done(self.events):
                return loop.time() - started
            if self.task.done():
                self.task.result()  # a crashed recorder fails the test at once
                raise AssertionError(f"recorder returned early; events: {self.events}")
            await asyncio.sleep(0.05)
        raise AssertionError(
            f"condition not met in {timeout_s} s; events: {self.events}"
        )

    async def stop(self) -> float:
        """Sets stop and waits for the task; returns how long it took to return.

        Then waits for the I/O thread, which sends SegmentClosed and RunEnded after the
        task has returned (the worker does the same before it exits).
        """
        loop = asyncio.get_running_loop()
        started = loop.time()
        self.stop_event.set()
        done, _ = await asyncio.wait({self.task}, timeout=15)
        assert done, "recorder ignored stop"
        took_s = loop.time() - started
        self.task.result()
        await self.io.submit(lambda: None)
        return took_s


@pytest.fixture
async def recordings(tmp_path: Path) -> AsyncIterator[Callable[..., Recording]]:
    # the worker's loop; tests/ingest/conftest.py asks pytest-asyncio for it
    assert isinstance(asyncio.get_running_loop(), uvloop.Loop)
    io = IoThread()
    started: list[Recording] = []

    def start(url: str, **recording: float) -> Recording:
        session = Recording(url, tmp_path / "segments", io, **recording)
        started.append(session)
        return session

    yield start
    for session in started:
        if not session.task.done():
            await session.stop()
    await asyncio.to_thread(io.shutdown)


def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens (it was free a moment ago)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


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


def assert_decodes_cleanly(path: Path) -> None:
    """FFmpeg decodes every packet of every track without a single error.

    Decoded frames keep the file's timestamps (``-fps_mode passthrough``, time base
    ``-1``): rounding them to 1/25 s would merge the simulator's first two frames of a
    session, stamped 21 ms early, into one slot and fail a file that is fine.
    """
    command = [FFMPEG, "-v", "error", "-xerror", "-i", str(path)]
    keep_times = ["-fps_mode", "passthrough", "-enc_time_base", "-1"]
    run = subprocess.run(
        [*command, *keep_times, "-f", "null", "-"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0 and run.stderr == "", f"{path}: {run.stderr}"


def decoded_seconds(path: Path) -> dict[str, float]:
    """Seconds of decoded media per track kind (PyAV); asserts the video opens on a
    keyframe and no two pictures share a presentation time."""
    seconds = {"video": 0.0, "audio": 0.0}
    video_pts: list[int | None] = []
    with av.open(str(path)) as container:
        for frame in container.decode(*container.streams):
            if isinstance(frame, av.VideoFrame):
                if not video_pts:
                    assert frame.key_frame, f"{path} does not start on a keyframe"
                assert (frame.width, frame.height) == (WIDTH, HEIGHT)
                video_pts.append(frame.pts)
                seconds["video"] += 1 / FPS
            elif isinstance(frame, av.AudioFrame):
                seconds["audio"] += frame.samples / frame.sample_rate
    assert None not in video_pts and len(set(video_pts)) == len(video_pts)
    return seconds


def audio_starts_s(path: Path) -> list[float]:
    """When each audio frame of the file starts, in seconds (PyAV, no decoding)."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        return [
            float(packet.pts * stream.time_base)
            for packet in container.demux(stream)
            if packet.pts is not None
        ]


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
    streams = ffprobe_streams(path)
    video = [s for s in streams if s["codec_type"] == "video"]
    assert [(s["codec_name"], s["width"], s["height"]) for s in video] == [
        (segment.video_codec, WIDTH, HEIGHT)
    ]
    assert (segment.width, segment.height) == (WIDTH, HEIGHT)
    assert_decodes_cleanly(path)
    return streams


def check_run_tiles(segments: list[SegmentClosed]) -> None:
    for earlier, later in itertools.pairwise(segments):
        if earlier.run_id == later.run_id:
            assert later.seq == earlier.seq + 1
            assert later.start_us == earlier.end_us
            assert later.media_start == earlier.media_start + earlier.media_duration


def has_state(status: CameraStatus) -> Callable[[list[Event]], bool]:
    return lambda events: any(
        isinstance(e, CameraState) and e.status is status for e in events
    )


def has_error(events: list[Event]) -> bool:
    return any(isinstance(e, CameraState) and e.last_error for e in events)


@pytest.mark.parametrize(
    ("codec", "audio", "bframes", "tag"),
    [("h264", "aac", True, "avc1"), ("hevc", None, False, "hvc1")],
)
async def test_native_recorder_25s_stream_closes_verified_tiling_5s_segments(
    rtsp_camera_factory: CameraFactory,
    recordings: Callable[..., Recording],
    codec: str,
    audio: str | None,
    bframes: bool,
    tag: str,
) -> None:
    camera = rtsp_camera_factory(codec, audio=audio, bframes=bframes, seconds=10)
    session = recordings(camera.url)

    await session.wait_for(
        lambda events: sum(isinstance(e, SegmentClosed) for e in events) >= 4, 40
    )
    await asyncio.sleep(2)  # into the fifth segment, which stop must close
    stop_s = await session.stop()

    segments = session.segments()
    assert len(segments) >= 5
    assert len({s.run_id for s in segments}) == 1, "the run broke while recording"
    assert segments[0].seq == 0
    check_run_tiles(segments)
    for segment in segments[:-1]:  # the last one was cut by stop
        duration_us = segment.media_duration * 1_000_000 // segment.timescale
        # cut at the first keyframe from 5 s on (the clip has one a second); a run's
        # first frames come 21 ms early from the simulator
        assert 4_990_000 <= duration_us < 5_000_000 + FRAME_US
        assert [t * 1_000_000 // segment.timescale for t, _ in segment.keyframes] == [
            pytest.approx(n * GOP_US, abs=FRAME_US) for n in range(5)
        ]
        assert abs((segment.end_us - segment.start_us) - duration_us) <= 5_000
    for segment in segments:
        streams = check_segment_file(session.root, segment)
        video = [s for s in streams if s["codec_type"] == "video"]
        assert [s["codec_tag_string"] for s in video] == [tag]
        assert segment.video_codec == codec
        audio_codecs = [s["codec_name"] for s in streams if s["codec_type"] == "audio"]
        assert audio_codecs == ([audio] if audio else [])
        assert segment.audio_codec == audio

        seconds = decoded_seconds(session.root / segment.path)
        duration_s = segment.media_duration / segment.timescale
        assert seconds["video"] == pytest.approx(duration_s, abs=1 / FPS)
        if audio:  # audio spans the segment, to within a few AAC frames
            starts_s = audio_starts_s(session.root / segment.path)
            assert starts_s[0] < 0.1
            assert starts_s[-1] == pytest.approx(duration_s, abs=0.1)
    assert not list((session.root / "cam1" / "partial").glob("*.mp4"))
    ended = session.ended()
    assert [e.reason for e in ended] == ["stopped"]
    assert ended[0].run_id == segments[0].run_id
    assert ended[0].end_us == segments[-1].end_us
    states = session.states()
    assert states[-1].status is CameraStatus.STOPPED
    assert states[-1].reconnects == 0
    assert states[-1].last_error is None
    # the periodic state shows the stream flowing
    flowing = [s for s in states if s.status is CameraStatus.RECORDING][1:]
    assert flowing, "no periodic state while recording"
    assert all(s.packets > 0 and s.bytes > 0 for s in flowing)
    assert all(100_000 < s.bitrate_bps < 10_000_000 for s in flowing), flowing
    for state in flowing:
        assert state.last_packet_us is not None
        assert segments[0].start_us < state.last_packet_us < segments[-1].end_us
    assert stop_s < 2


async def test_native_recorder_aac_camera_keeps_every_audio_frame(
    rtsp_camera_factory: CameraFactory, recordings: Callable[..., Recording]
) -> None:
    camera = rtsp_camera_factory("h264", audio="aac", bframes=True, seconds=10)
    session = recordings(camera.url, segment_seconds=2)
    await session.wait_for(
        lambda events: sum(isinstance(e, SegmentClosed) for e in events) >= 3, 20
    )
    await session.stop()

    # the camera stamps AAC frames (1024 samples, 21.3 ms) from a ms clock: 21 or 22 ms
    for segment in session.segments():
        starts_s = audio_starts_s(session.root / segment.path)
        lost = [(a, b) for a, b in itertools.pairwise(starts_s) if b - a > 0.032]
        assert not lost, f"{segment.path}: audio frames missing between {lost}"


async def test_native_recorder_server_killed_closes_segment_and_reconnects_new_run(
    rtsp_camera_factory: CameraFactory, recordings: Callable[..., Recording]
) -> None:
    camera = rtsp_camera_factory("h264", audio="aac", bframes=True, seconds=10)
    session = recordings(camera.url, segment_seconds=2)
    await session.wait_for(
        lambda events: any(isinstance(e, SegmentClosed) for e in events), 20
    )
    await asyncio.sleep(1)  # into the second segment

    await asyncio.to_thread(camera.stop)
    await session.wait_for(
        lambda events: any(isinstance(e, RunEnded) for e in events), 5
    )
    await session.wait_for(has_state(CameraStatus.RECONNECTING), 5)
    first_run = session.segments()
    ended = session.ended()[0]
    assert ended.reason == "disconnected"
    assert ended.run_id == first_run[0].run_id
    assert len(first_run) >= 2  # the segment open at the kill was closed, not lost
    assert ended.end_us == first_run[-1].end_us
    assert session.errors()[0] == "end of stream"  # later: refused reconnects
    check_run_tiles(first_run)
    for segment in first_run:
        check_segment_file(session.root, segment)

    await asyncio.to_thread(camera.start)
    await asyncio.to_thread(camera.wait_ready)
    await session.wait_for(
        lambda events: any(
            isinstance(e, SegmentClosed) and e.run_id != ended.run_id for e in events
        ),
        20,
    )
    second_run = [s for s in session.segments() if s.run_id != ended.run_id]
    assert second_run[0].seq == 0
    assert second_run[0].start_us >= ended.end_us
    check_segment_file(session.root, second_run[0])
    states = session.states()
    assert states[-1].status is CameraStatus.RECORDING
    assert states[-1].last_error is None
    assert states[-1].reconnects >= 1
    await session.stop()
    assert [e.reason for e in session.ended()] == ["disconnected", "stopped"]


async def test_native_recorder_pcm_alaw_camera_records_video_only_with_one_warning(
    rtsp_camera_factory: CameraFactory,
    recordings: Callable[..., Recording],
    caplog: pytest.LogCaptureFixture,
) -> None:
    camera = rtsp_camera_factory("h264", audio="pcm_alaw", seconds=10)
    with FaultyProxy(camera.port) as proxy, caplog.at_level(logging.WARNING, "nvr"):
        session = recordings(proxy.url, segment_seconds=2)
        await session.wait_for(
            lambda events: any(isinstance(e, SegmentClosed) for e in events), 20
        )
        proxy.cut()  # a reconnect sees the same audio track again
        await session.wait_for(
            lambda events: (
                len({e.run_id for e in events if isinstance(e, SegmentClosed)}) == 2
            ),
            20,
        )
        await session.stop()

    segments = session.segments()
    assert [e.reason for e in session.ended()] == ["disconnected", "stopped"]
    for segment in segments:
        streams = check_segment_file(session.root, segment)
        assert [s["codec_type"] for s in streams] == ["video"]
        assert segment.audio_codec is None
    warnings = [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.WARNING and r.threadName != "proxy"  # the test's proxy
    ]
    assert len(warnings) == 1, warnings
    assert "audio dropped" in warnings[0]
    assert "PCMA" in warnings[0]  # the RTP name of G.711 A-law (RFC 3551)


async def test_native_recorder_paused_network_ends_run_as_stalled_and_recovers(
    rtsp_camera_factory: CameraFactory, recordings: Callable[..., Recording]
) -> None:
    camera = rtsp_camera_factory("h264", seconds=10)
    with FaultyProxy(camera.port) as proxy:
        session = recordings(proxy.url, segment_seconds=2, stall_seconds=1)
        await session.wait_for(
            lambda events: any(isinstance(e, SegmentClosed) for e in events), 20
        )
        await asyncio.sleep(1)  # into the second segment

        proxy.mode = ProxyMode.PAUSE  # the connection stays open; no byte moves
        ended_after_s = await session.wait_for(
            lambda events: any(isinstance(e, RunEnded) for e in events), 5
        )
        await session.wait_for(has_error, 2)
        ended = session.ended()[0]
        first_run = session.segments()
        assert ended.reason == "stalled"
        assert ended_after_s < 1 + 1 + 0.5  # stall_seconds, one watch period, slack
        assert session.errors()[0] == "no packet for 1 s"
        assert len(first_run) >= 2  # the segment open at the stall was closed
        assert ended.end_us == first_run[-1].end_us
        check_run_tiles(first_run)
        for segment in first_run:
            check_segment_file(session.root, segment)

        proxy.mode = ProxyMode.FORWARD
        await session.wait_for(
            lambda events: any(
                isinstance(e, SegmentClosed) and e.run_id != ended.run_id
                for e in events
            ),
            20,
        )
        await session.stop()
    assert proxy.connections >= 2


async def test_native_recorder_silent_camera_reports_no_answer_within_timeout(
    recordings: Callable[..., Recording],
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, never answers
        port = silent.getsockname()[1]
        session = recordings(
            f"rtsp://127.0.0.1:{port}/stream", connect_timeout_seconds=1
        )
        reported_s = await session.wait_for(has_error, 5)
        await session.stop()

    assert 1 <= reported_s < 1.5
    assert session.errors()[0] == "no RTSP answer within 1 s"
    assert all(s.status is not CameraStatus.RECORDING for s in session.states())
    assert not session.segments() and not session.ended()


async def test_native_recorder_stop_during_silent_connect_returns_within_2s(
    recordings: Callable[..., Recording],
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, never answers
        port = silent.getsockname()[1]
        session = recordings(
            f"rtsp://user:secret@127.0.0.1:{port}/stream", connect_timeout_seconds=30
        )
        await asyncio.sleep(1.5)
        stop_s = await session.stop()

        # the recorder hung up: its connection holds one request, then end of file
        silent.settimeout(1)
        connection, _ = silent.accept()
        with connection:
            connection.settimeout(1)
            sent = b""
            while chunk := connection.recv(4096):
                sent += chunk

    assert stop_s < 2
    assert sent.startswith(b"OPTIONS rtsp://127.0.0.1:")
    assert b"secret" not in sent and b"user:" not in sent
    states = session.states()
    assert states[-1].status is CameraStatus.STOPPED
    assert not session.segments() and not session.ended()


async def test_native_recorder_unreachable_camera_reports_error_without_password(
    recordings: Callable[..., Recording], caplog: pytest.LogCaptureFixture
) -> None:
    port = closed_port()
    with caplog.at_level(logging.DEBUG, logger="nvr"):
        session = recordings(f"rtsp://user:secret@127.0.0.1:{port}/stream")
        await session.wait_for(has_error, 5)
        await session.stop()

    errors = session.errors()
    assert errors[0] == f"cannot connect to 127.0.0.1:{port}: Connection refused"
    assert all("secret" not in error for error in errors)
    assert all("secret" not in record.getMessage() for record in caplog.records)


@pytest.mark.parametrize(
    ("credentials", "expected"),
    [
        ("admin:wrong-pass@", "the camera refused the credentials (401 Unauthorized)"),
        ("", "the camera requires credentials and the URL has none (401 Unauthorized)"),
    ],
)
async def test_native_recorder_bad_credentials_report_401_without_password(
    rtsp_camera_factory: CameraFactory,
    recordings: Callable[..., Recording],
    caplog: pytest.LogCaptureFixture,
    credentials: str,
    expected: str,
) -> None:
    camera = rtsp_camera_factory("h264", user="admin", password="right-pass")
    with caplog.at_level(logging.DEBUG, logger="nvr"):
        session = recordings(f"rtsp://{credentials}127.0.0.1:{camera.port}/stream")
        await session.wait_for(has_error, 10)
        await session.stop()

    errors = session.errors()
    assert errors[0] == expected
    assert all(s.status is not CameraStatus.RECORDING for s in session.states())
    assert not session.segments()
    for text in errors + [record.getMessage() for record in caplog.records]:
        assert "wrong-pass" not in text and "right-pass" not in text


async def test_native_recorder_right_credentials_records_segments(
    rtsp_camera_factory: CameraFactory, recordings: Callable[..., Recording]
) -> None:
    camera = rtsp_camera_factory("h264", user="admin", password="right-pass")
    session = recordings(camera.url, segment_seconds=1)
    await session.wait_for(
        lambda events: any(isinstance(e, SegmentClosed) for e in events), 15
    )
    await session.stop()

    for segment in session.segments():
        check_segment_file(session.root, segment)
    assert not session.errors()
