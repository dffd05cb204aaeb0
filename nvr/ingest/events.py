"""Messages a camera recorder sends to the supervisor; plain data, picklable across processes."""

from dataclasses import dataclass, field
from enum import StrEnum


class CameraStatus(StrEnum):
    CONNECTING = "connecting"
    RECORDING = "recording"
    RECONNECTING = "reconnecting"
    FAILED = "failed"
    STOPPED = "stopped"


@dataclass(frozen=True)
class SegmentClosed:
    """A segment file is durable at its final path; the supervisor now indexes it.

    Times: ``start_us``/``end_us`` are wall instants (UTC microseconds). ``media_*`` values
    are ticks of the video track's ``timescale`` (ticks per second) as stored in the file.
    """

    camera_id: str
    run_id: str
    seq: int
    path: str  # relative to the storage root, '/' separated
    start_us: int
    end_us: int
    media_start: (
        int  # video ticks from the start of the run to this segment's first packet
    )
    media_duration: int  # video ticks covered by this segment
    timescale: int
    bytes: int
    sha256: str
    video_codec: str
    audio_codec: str | None
    width: int
    height: int
    # (video ticks from the segment's start, byte offset of the fragment starting there)
    keyframes: tuple[tuple[int, int], ...] = field(default=())


@dataclass(frozen=True)
class RunEnded:
    """A connection's run is over: the camera dropped, stalled, or its timestamps broke."""

    camera_id: str
    run_id: str
    end_us: int
    reason: str


@dataclass(frozen=True)
class CameraState:
    """The recorder's view of one camera, sent on every change and every few seconds."""

    camera_id: str
    status: CameraStatus
    last_packet_us: int | None = None
    bitrate_bps: int = 0
    packets: int = 0
    bytes: int = 0
    reconnects: int = 0
    last_error: str | None = None  # already free of credentials


Event = SegmentClosed | RunEnded | CameraState
