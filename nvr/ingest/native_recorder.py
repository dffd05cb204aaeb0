"""One camera on the native path: an asyncio task that connects, records runs, reconnects.

Each connection is a run (new run id). A disconnect, a stall (no video frame for
``stall_seconds``), broken timestamps, a storage error or garbage from the camera end
it: the open segment is closed (it stays recorded), RunEnded is sent, and the task backs
off (capped exponential, full jitter) before reconnecting. Packets are handled inside
the connection's ``data_received``; this task only opens sessions, watches them once a
second and reports the camera's state.
"""

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from nvr.config import CameraConfig, RecordingConfig
from nvr.errors import (
    CameraError,
    CameraProtocolError,
    CameraUnreachable,
    NvrError,
    StorageError,
)
from nvr.ingest.events import CameraStatus, Event, RunEnded
from nvr.ingest.lifecycle import CameraLifecycle
from nvr.ingest.native_io import IoThread, SegmentSink
from nvr.ingest.native_run import AudioSync, NativeRun
from nvr.ingest.native_tracks import (
    AudioSetup,
    VideoSetup,
    audio_setup,
    codec_of,
    inband_parameter_sets,
    sdp_parameter_sets,
    video_setup,
)
from nvr.ingest.timing import TimestampBreak
from nvr.log import fields
from nvr.rtsp.connection import FrameHandler, RtspConnection
from nvr.rtsp.rtp import AacDepacketizer, AccessUnit, H264Depacketizer, H265Depacketizer
from nvr.rtsp.sdp import MediaDescription
from nvr.rtsp.session import RtspSession, Track, parse_target
from nvr.segmenter.recovery import recover_partials
from nvr.timeutil import US_PER_S, monotonic_us, wall_now_us

log = logging.getLogger(__name__)

WATCH_S = 1.0
"""How often a run is checked for a stall, a stop request or a storage failure."""
WATCH_US = round(WATCH_S * US_PER_S)
STATE_INTERVAL_US = 5 * US_PER_S
"""A CameraState is sent at least this often while recording."""


class NativeCameraRecorder:
    """Records one camera until ``stop`` is set; events go to ``emit`` (thread-safe)."""

    def __init__(
        self,
        camera: CameraConfig,
        recording: RecordingConfig,
        storage_root: Path,
        emit: Callable[[Event], None],
        io: IoThread,
        stop: asyncio.Event,
    ) -> None:
        self._camera = camera
        self._recording = recording
        self._root = storage_root
        self._emit = emit
        self._io = io
        self._stop = stop
        self._life = CameraLifecycle(camera.id, recording, emit)
        self._warned_audio = False
        self._counted = (0, 0)  # (frames, bytes) of earlier runs
        self._window = (monotonic_us(), 0)  # (since, bytes) for the bitrate

    async def run(self) -> None:
        """Records until ``stop`` is set."""
        while not self._stop.is_set():
            try:
                healthy = await self._attempt()
            except Exception:
                # a bug must cost this camera a reconnect, never its recording for good
                log.exception(
                    "recorder failed; reconnecting %s", fields(camera=self._camera.id)
                )
                healthy = False
            if self._stop.is_set():
                break
            try:
                async with asyncio.timeout(self._life.reconnecting(healthy)):
                    await self._stop.wait()
            except TimeoutError:
                pass
        self._life.set(status=CameraStatus.STOPPED)
        log.info("recorder stopped %s", fields(camera=self._camera.id))

    async def _attempt(self) -> bool:
        """One connect and run; True when the run was healthy (it closed a segment)."""
        await self._recover_abandoned()
        if self._life.state.status != CameraStatus.RECONNECTING:
            self._life.set(status=CameraStatus.CONNECTING)
        log.info("connecting %s", fields(camera=self._camera.id))
        session = RtspSession(
            parse_target(self._camera.url), self._recording.connect_timeout_seconds
        )
        try:
            opening = asyncio.ensure_future(session.open(self._want_audio))
            stopping = asyncio.ensure_future(self._stop.wait())
            await asyncio.wait({opening, stopping}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if not opening.done():
                opening.cancel()
                session.close()
                return False
            opening.result()
        except CameraError as exc:
            self._life.connect_failed(exc)
            return False
        try:
            return await self._record(session)
        finally:
            session.close()

    def _want_audio(self, media: MediaDescription) -> bool:
        """Sets up an audio track only if MP4 can carry it (AAC); warns once if not."""
        try:
            storable = audio_setup(media) is not None
        except CameraProtocolError:
            storable = False
        if not storable and not self._warned_audio:
            self._warned_audio = True
            log.warning(
                "audio dropped: MP4 cannot carry it %s",
                fields(
                    camera=self._camera.id, codec=media.encoding or media.payload_type
                ),
            )
        return storable

    async def _recover_abandoned(self) -> None:
        """Finalizes the partial files a storage failure left, and sends them on.

        A run that ends on a storage error (disk full, read-only) abandons its open
        segment; its complete fragments fit on disk and must reach the index now, not at
        the next restart. Runs on the I/O thread, which alone writes this camera's files.
        """
        recovered: list[Event] = []

        def recover() -> None:
            try:
                recovered.extend(recover_partials(self._root, self._camera.id))
            except (OSError, NvrError) as exc:
                log.warning(
                    "abandoned segment not recovered yet %s",
                    fields(camera=self._camera.id, error=exc),
                )
            for event in recovered:
                self._emit(event)

        await self._io.submit(recover)

    async def _record(self, session: RtspSession) -> bool:
        """Records one run until it ends; sends RunEnded. True if it closed a segment."""
        assert session.video is not None and session.connection is not None
        run_id = uuid.uuid4().hex
        connection = session.connection
        storage_failed: list[StorageError] = []

        def on_storage_error(error: StorageError) -> None:
            storage_failed.append(error)
            connection.fail(error)

        sink = SegmentSink(self._io, self._emit, on_storage_error)
        run = self._make_run(session, run_id, sink)
        probe = _Probe()
        self._wire(session, run, probe)
        log.info("run started %s", fields(camera=self._camera.id, run=run_id))

        reason, error = await self._watch(session, run, probe)
        try:
            if not storage_failed:
                run.finish()
        except (TimestampBreak, StorageError) as exc:
            reason, error = (
                ("storage-error" if isinstance(exc, StorageError) else exc.reason),
                str(exc),
            )
        if storage_failed:
            reason, error = "storage-error", str(storage_failed[0])
        end_us = run.last_end_us if run.last_end_us is not None else wall_now_us()
        sink.emit(RunEnded(self._camera.id, run_id, end_us, reason))
        self._counted = (
            self._counted[0] + probe.frames,
            self._counted[1] + probe.bytes,
        )
        log.info(
            "run ended %s",
            fields(
                camera=self._camera.id,
                run=run_id,
                reason=reason,
                segments=run.segments_closed,
                error=error or "-",
            ),
        )
        if error is not None:
            self._life.set(last_error=error)
        return run.segments_closed > 0

    def _make_run(
        self, session: RtspSession, run_id: str, sink: SegmentSink
    ) -> NativeRun:
        assert session.video is not None
        video_media = session.video.media
        audio: AudioSetup | None = None
        sync: AudioSync | None = None
        if session.audio is not None:
            audio = audio_setup(session.audio.media)
        if audio is not None and session.audio is not None:
            sync = AudioSync(
                _rtp_info_pair(session, session.video, session.audio),
                video_media.clock_rate or 90000,
                audio.clock_rate,
            )
        codec = codec_of(video_media)

        def make_video(keyframe: AccessUnit) -> VideoSetup:
            inband = inband_parameter_sets(keyframe.data[1::2], codec)
            return video_setup(video_media, inband or sdp_parameter_sets(video_media))

        return NativeRun(
            self._root,
            (self._camera.id, run_id),
            self._recording.segment_seconds,
            codec,
            make_video,
            audio,
            sync,
            sink,
        )

    def _wire(self, session: RtspSession, run: NativeRun, probe: "_Probe") -> None:
        """Connects the depacketizers to the connection's channels and to the run."""
        assert session.video is not None and session.connection is not None
        connection = session.connection

        def on_video(unit: AccessUnit) -> None:
            probe.frames += 1
            probe.bytes += unit.size
            pictures = run.pictures
            run.video_unit(unit, wall_now_us())
            if run.pictures != pictures:  # SEI or parameter sets alone are not video
                probe.last_video_us = monotonic_us()
                probe.mark(connection)

        video_class = (
            H264Depacketizer
            if codec_of(session.video.media) == "h264"
            else H265Depacketizer
        )
        video = video_class(on_video)
        probe.depacketizers.append(video)
        session.connection.channels[session.video.channel] = video.packet
        if session.audio is not None:
            setup = audio_setup(session.audio.media)
            if setup is None:
                return

            def on_audio(unit: AccessUnit) -> None:
                probe.frames += 1
                probe.bytes += unit.size
                run.audio_unit(unit, wall_now_us())

            audio = AacDepacketizer(on_audio, setup.size_bits, setup.index_bits)
            probe.depacketizers.append(audio)
            channels = session.connection.channels
            if session.audio.channel == session.video.channel:
                # a camera that granted both tracks one channel: tell them apart by
                # their RTP payload types, as the SDP numbers them
                channels[session.video.channel] = _by_payload_type(
                    {
                        session.video.media.payload_type: video.packet,
                        session.audio.media.payload_type: audio.packet,
                    }
                )
            else:
                channels[session.audio.channel] = audio.packet

    async def _watch(
        self, session: RtspSession, run: NativeRun, probe: "_Probe"
    ) -> tuple[str, str | None]:
        """Waits for the run to end; returns (reason, error).

        The camera counts as recording from the run's first keyframe on, not from PLAY:
        a stream that never delivers a picture nvr can store is not shown as recording.
        """
        connection = session.connection
        assert connection is not None
        stall_us = round(self._recording.stall_seconds * US_PER_S)
        probe.last_video_us = monotonic_us()
        probe.mark(connection)
        while True:
            try:
                async with asyncio.timeout(WATCH_S):
                    ended = await asyncio.shield(connection.closed)
                return _reason(ended)
            except TimeoutError:
                pass
            if self._stop.is_set():
                return "stopped", None
            if run.pictures and self._life.state.status != CameraStatus.RECORDING:
                self._life.set(status=CameraStatus.RECORDING, last_error=None)
            if probe.quiet is None and monotonic_us() - probe.last_video_us >= WATCH_US:
                probe.quiet = (connection.unrouted, probe.video_packets())
            self._report(probe)
            if monotonic_us() - probe.last_video_us >= stall_us:
                return "stalled", self._stall_error(connection, run, probe)

    def _stall_error(
        self, connection: RtspConnection, run: NativeRun, probe: "_Probe"
    ) -> str:
        """Why no picture came for the stall limit, as precisely as the counters tell.

        What arrived is counted from a quiet baseline, taken a whole watch period after
        the last picture, so the tail of the last frame and the audio that trails it are
        not taken for a stream that flows without pictures.
        """
        limit = f"{self._recording.stall_seconds:g} s"
        junk = connection.junk_bytes - probe.marked[1]
        malformed = sum(d.stats.malformed for d in probe.depacketizers)
        if junk or malformed:
            return (
                f"no valid video for {limit}: the camera sends data that is not RTP "
                f"({junk} bytes skipped, {malformed} malformed packets)"
            )
        if run.pictures == 0 and run.skipped_before_keyframe:
            return (
                f"no keyframe for {limit} ({run.skipped_before_keyframe} pictures "
                "before any keyframe skipped)"
            )
        if probe.quiet is not None:
            unrouted = connection.unrouted - probe.quiet[0]
            video = probe.video_packets() - probe.quiet[1]
            if video:
                return (
                    f"no video picture for {limit} ({video} video packets arrived, "
                    "none completing a picture)"
                )
            if unrouted:
                return (
                    f"no video for {limit}: the camera sends RTP on channels it was "
                    f"not asked for ({unrouted} packets)"
                )
        return f"no packet for {limit}"

    def _report(self, probe: "_Probe") -> None:
        """Updates counters; sends a CameraState every STATE_INTERVAL_US."""
        now_us = monotonic_us()
        since_us, window_bytes = self._window
        frames, total = self._counted[0] + probe.frames, self._counted[1] + probe.bytes
        last_packet_us = self._life.state.last_packet_us
        if probe.frames:
            last_packet_us = wall_now_us() - (now_us - probe.last_video_us)
        changes: dict[str, object] = {
            "packets": frames,
            "bytes": total,
            "last_packet_us": last_packet_us,
        }
        if now_us - since_us < STATE_INTERVAL_US:
            self._life.state = replace(self._life.state, **changes)  # type: ignore[arg-type]
            return
        changes["bitrate_bps"] = (
            (total - window_bytes) * 8 * US_PER_S // (now_us - since_us)
        )
        self._window = (now_us, total)
        self._life.state = replace(self._life.state, **changes)  # type: ignore[arg-type]
        self._emit(self._life.state)


class _Probe:
    """What the watch loop reads about a run: counters the packet path updates."""

    def __init__(self) -> None:
        self.frames = 0
        self.bytes = 0
        self.last_video_us = 0
        # the connection's (frames, junk bytes, unrouted frames) at the last picture
        self.marked = (0, 0, 0)
        # (unrouted frames, video packets) a watch period after the last picture
        self.quiet: tuple[int, int] | None = None
        self.depacketizers: list[
            H264Depacketizer | H265Depacketizer | AacDepacketizer
        ] = []

    def mark(self, connection: RtspConnection) -> None:
        """A picture arrived: counters restart from here."""
        self.marked = (connection.frames, connection.junk_bytes, connection.unrouted)
        self.quiet = None

    def video_packets(self) -> int:
        return self.depacketizers[0].stats.packets if self.depacketizers else 0


def _by_payload_type(routes: dict[int, FrameHandler]) -> FrameHandler:
    """One channel's RTP packets sent to the handler of their payload type."""

    def route(buf: bytes | bytearray, start: int, end: int) -> None:
        if end - start >= 2:
            handler = routes.get(buf[start + 1] & 0x7F)
            if handler is not None:
                handler(buf, start, end)

    return route


def _reason(ended: NvrError) -> tuple[str, str | None]:
    if isinstance(ended, TimestampBreak):
        return ended.reason, str(ended)
    if isinstance(ended, StorageError):
        return "storage-error", str(ended)
    if isinstance(ended, CameraUnreachable) and "closed the connection" in str(ended):
        return "disconnected", "end of stream"
    return "disconnected", str(ended)


def _rtp_info_pair(
    session: RtspSession, video: Track, audio: Track
) -> tuple[int, int] | None:
    """The (video, audio) rtptime pair of the PLAY answer's RTP-Info, if it has both."""
    by_url = session.rtp_info
    video_info, audio_info = (
        by_url.get(video.media.control),
        by_url.get(audio.media.control),
    )
    if video_info is None or audio_info is None:
        return None
    if video_info.rtptime is None or audio_info.rtptime is None:
        return None
    return video_info.rtptime, audio_info.rtptime
