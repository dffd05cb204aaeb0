"""One camera's recording loop: connect over RTSP with PyAV, record runs, reconnect.

``CameraRecorder.run()`` blocks its thread until ``stop`` is set. Each connection is a
run (new run id); a disconnect, a stall or broken timestamps end it: the open segment is
closed (it stays recorded), RunEnded is emitted, and the recorder backs off (capped
exponential, full jitter) before reconnecting. Reads use a 1 s PyAV read timeout so a
stop request or a stall is noticed within about a second even when no packet arrives.
"""

import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import av
import av.container
import av.error

from nvr.config import CameraConfig, RecordingConfig
from nvr.errors import (
    CameraError,
    CameraStalled,
    CameraUnreachable,
    NvrError,
    StorageError,
    StreamUnsupported,
)
from nvr.ingest.events import CameraStatus, Event, RunEnded
from nvr.ingest.lifecycle import CameraLifecycle
from nvr.ingest.run import RunSegmenter, RunTracks
from nvr.ingest.timing import TimestampBreak
from nvr.log import fields, redact_text
from nvr.segmenter.recovery import recover_partials
from nvr.segmenter.writer import audio_storable
from nvr.timeutil import US_PER_S, monotonic_us, wall_now_us

log = logging.getLogger(__name__)

POLL_S = 1.0
"""Longest a blocked read waits before the loop checks ``stop`` and the stall limit."""
STATE_INTERVAL_US = 5 * US_PER_S
"""A CameraState is sent at least this often while recording."""
VIDEO_CODECS = frozenset({"h264", "hevc"})


class _Opener:
    """Opens the RTSP input on its own thread so a stop request need not wait for it.

    ``av.open`` cannot be interrupted from outside except by its own timeout (up to
    connect_timeout_seconds); if stop wins, the thread closes the container when the
    open finally returns.
    """

    def __init__(
        self, url: str, options: dict[str, str], timeout: tuple[float, float]
    ) -> None:
        self._url = url
        self._options = options
        self._timeout = timeout
        self._done = threading.Event()
        self._abandoned = False
        self._lock = threading.Lock()
        self.container: av.container.InputContainer | None = None
        self.error: av.error.FFmpegError | OSError | None = None
        self._elapsed_s = 0.0

    def open(self, stop: threading.Event) -> av.container.InputContainer | None:
        """The open container; None if stop was set first. Raises CameraUnreachable."""
        threading.Thread(target=self._open, name="rtsp-open", daemon=True).start()
        while not self._done.wait(0.1):
            if stop.is_set():
                with self._lock:
                    self._abandoned = True
                    late = self.container
                if late is not None:
                    late.close()
                return None
        if self.error is not None:
            reason = open_error_reason(self.error, self._elapsed_s, self._timeout[0])
            raise CameraUnreachable(reason) from self.error
        return self.container

    def _open(self) -> None:
        began = monotonic_us()
        try:
            opened = av.open(self._url, options=self._options, timeout=self._timeout)
        except (av.error.FFmpegError, OSError) as exc:
            self._elapsed_s = (monotonic_us() - began) / US_PER_S
            self.error = exc
            self._done.set()
            return
        with self._lock:
            if self._abandoned:
                opened.close()
                return
            self.container = opened
        self._done.set()


def open_error_reason(
    error: av.error.FFmpegError | OSError, elapsed_s: float, timeout_s: float
) -> str:
    """Why a camera could not be opened, in words an operator can act on.

    Leaves out FFmpeg's error number (it reads like an errno but is a tag) and the URL,
    which holds the password. FFmpeg reports a silent server, an RTSP error status such
    as 503 and a non-RTSP service alike as "invalid data": the time taken tells the
    first apart.
    """
    if isinstance(error, av.error.InvalidDataError):
        if elapsed_s >= 0.9 * timeout_s:
            return f"no RTSP answer within {timeout_s:g} s"
        return (
            "the camera refused the stream or answered something that is not RTSP "
            "(e.g. 503 Service Unavailable, or another service on that port)"
        )
    text = error.strerror if error.strerror else str(error)
    return redact_text(text)


class CameraRecorder:
    """Records one camera until ``stop`` is set; events go to ``emit`` (thread-safe)."""

    def __init__(
        self,
        camera: CameraConfig,
        recording: RecordingConfig,
        storage_root: Path,
        emit: Callable[[Event], None],
        stop: threading.Event,
    ) -> None:
        self._camera = camera
        self._recording = recording
        self._root = storage_root
        self._emit = emit
        self._stop = stop
        self._life = CameraLifecycle(camera.id, recording, emit)
        self._bitrate_window: tuple[int, int] = (monotonic_us(), 0)  # (since, bytes)

    def run(self) -> None:
        """Records until ``stop`` is set. Blocking; run it on its own thread."""
        while not self._stop.is_set():
            healthy = self._attempt()
            if self._stop.is_set():
                break
            self._stop.wait(self._life.reconnecting(healthy))
        self._life.set(status=CameraStatus.STOPPED)
        log.info("recorder stopped %s", fields(camera=self._camera.id))

    def _attempt(self) -> bool:
        """One connect and run; True when the run was healthy (it closed a segment)."""
        self._recover_abandoned()
        try:
            opened = self._connect()
        except CameraError as exc:
            self._life.connect_failed(exc)
            return False
        if opened is None:
            return False
        container, tracks = opened
        try:
            return self._record(container, tracks)
        finally:
            container.close()

    def _recover_abandoned(self) -> None:
        """Finalizes and emits the partial files a storage failure left behind.

        A run that ends on a storage error (disk full, read-only) abandons its open
        segment; its complete fragments fit on disk and must reach the index now, not at
        the next restart. Only this thread writes this camera's partial directory.
        """
        try:
            recovered = recover_partials(self._root, self._camera.id)
        except (OSError, NvrError) as exc:
            log.warning(
                "abandoned segment not recovered yet %s",
                fields(camera=self._camera.id, error=exc),
            )
            return
        for event in recovered:
            self._emit(event)

    def _connect(self) -> tuple[av.container.InputContainer, RunTracks] | None:
        """Opens the camera's stream (None if stopped meanwhile). Blocking."""
        if self._life.state.status != CameraStatus.RECONNECTING:
            self._life.set(status=CameraStatus.CONNECTING)
        log.info("connecting %s", fields(camera=self._camera.id))
        stall_us = round(self._recording.stall_seconds * US_PER_S)
        options = {"rtsp_transport": "tcp", "timeout": str(stall_us)}
        read_timeout_s = min(POLL_S, self._recording.stall_seconds)
        timeout = (self._recording.connect_timeout_seconds, read_timeout_s)
        container = _Opener(self._camera.url, options, timeout).open(self._stop)
        if container is None:
            return None
        try:
            return container, self._tracks(container)
        except StreamUnsupported:
            container.close()
            raise

    def _tracks(self, container: av.container.InputContainer) -> RunTracks:
        """The video track to store and the audio track if MP4 can carry it."""
        if not container.streams.video:
            raise StreamUnsupported("the stream has no video track")
        video = container.streams.video[0]
        if video.codec_context.name not in VIDEO_CODECS:
            raise StreamUnsupported(
                f"video codec {video.codec_context.name} is not H.264/H.265"
            )
        audio = container.streams.audio[0] if container.streams.audio else None
        if audio is not None and not audio_storable(audio):
            log.warning(
                "audio dropped: MP4 cannot carry it %s",
                fields(camera=self._camera.id, codec=audio.codec_context.name),
            )
            audio = None
        return RunTracks(video, audio)

    def _record(
        self, container: av.container.InputContainer, tracks: RunTracks
    ) -> bool:
        """Records one run until it ends; emits RunEnded. True if it closed a segment."""
        run_id = uuid.uuid4().hex
        closed_count = 0

        def on_closed(event: Event) -> None:
            nonlocal closed_count
            closed_count += 1
            self._emit(event)

        segmenter = RunSegmenter(
            self._root,
            self._camera.id,
            run_id,
            self._recording.segment_seconds,
            tracks,
            on_closed,
        )
        log.info("run started %s", fields(camera=self._camera.id, run=run_id))
        self._life.set(status=CameraStatus.RECORDING, last_error=None)
        reason, error = self._demux(container, tracks, segmenter)
        try:
            segmenter.finish()
        except StorageError as exc:
            segmenter.abandon()
            reason, error = "storage-error", str(exc)
        end_us = (
            segmenter.last_end_us
            if segmenter.last_end_us is not None
            else wall_now_us()
        )
        self._emit(RunEnded(self._camera.id, run_id, end_us, reason))
        log.info(
            "run ended %s",
            fields(
                camera=self._camera.id,
                run=run_id,
                reason=reason,
                segments=closed_count,
                error=error or "-",
            ),
        )
        if error is not None:
            self._life.set(last_error=error)
        return closed_count > 0

    def _demux(
        self,
        container: av.container.InputContainer,
        tracks: RunTracks,
        segmenter: RunSegmenter,
    ) -> tuple[str, str | None]:
        """Feeds packets to the segmenter until the run ends; returns (reason, error)."""
        streams = (
            [tracks.video] if tracks.audio is None else [tracks.video, tracks.audio]
        )
        stall_us = round(self._recording.stall_seconds * US_PER_S)
        last_packet_mono_us = monotonic_us()
        while not self._stop.is_set():
            try:
                for packet in container.demux(streams):
                    if packet.size == 0:
                        continue  # the flush packets PyAV yields at end of stream
                    last_packet_mono_us = monotonic_us()
                    self._count(packet.size)
                    segmenter.feed(packet, wall_now_us())
                    if self._stop.is_set():
                        return "stopped", None
                return "disconnected", "end of stream"
            except av.error.ExitError:
                # our 1 s read timeout fired: check stop, then the stall limit
                if monotonic_us() - last_packet_mono_us >= stall_us:
                    stalled = CameraStalled(
                        f"no packet for {self._recording.stall_seconds} s"
                    )
                    return "stalled", str(stalled)
            except av.error.FFmpegError as exc:
                return "disconnected", redact_text(exc.strerror or str(exc))
            except TimestampBreak as exc:
                return exc.reason, str(exc)
            except StorageError as exc:
                segmenter.abandon()
                return "storage-error", str(exc)
        return "stopped", None

    def _count(self, size: int) -> None:
        """Updates packet counters; sends a CameraState every STATE_INTERVAL_US."""
        now_mono_us = monotonic_us()
        since_us, window_bytes = self._bitrate_window
        window_bytes += size
        state = self._life.state
        changes: dict[str, object] = {
            "packets": state.packets + 1,
            "bytes": state.bytes + size,
            "last_packet_us": wall_now_us(),
        }
        elapsed_us = now_mono_us - since_us
        if elapsed_us < STATE_INTERVAL_US:
            self._bitrate_window = (since_us, window_bytes)
            self._life.state = replace(state, **changes)  # type: ignore[arg-type]
            return
        changes["bitrate_bps"] = window_bytes * 8 * US_PER_S // elapsed_us
        self._bitrate_window = (now_mono_us, 0)
        self._life.state = replace(state, **changes)  # type: ignore[arg-type]
        self._emit(self._life.state)
