"""Shared data for the catalogue tests: fixed instants, config and segment events."""

from nvr.config import CameraConfig, GroupConfig
from nvr.ingest.events import SegmentClosed

# 2026-01-02T03:00:00Z, an arbitrary fixed instant
T0_US = 1_767_322_800_000_000
SECOND_US = 1_000_000
CLOCK_US = T0_US + 86_400 * SECOND_US

GROUPS = (
    GroupConfig(name="general", retention_days=30),
    GroupConfig(name="key-area", retention_days=90),
)
CAMERAS = (
    CameraConfig(id="cam1", url="rtsp://u:secret@127.0.0.1/a", group="general"),
    CameraConfig(id="cam2", url="rtsp://127.0.0.1/b", group="key-area"),
)


def segment_event(
    camera_id: str = "cam1",
    run_id: str = "run-a",
    seq: int = 0,
    start_s: float = 0,
    duration_s: float = 60,
    sha: str = "a",
) -> SegmentClosed:
    """A SegmentClosed for ``[T0 + start_s, T0 + start_s + duration_s)``."""
    start_us = T0_US + round(start_s * SECOND_US)
    end_us = start_us + round(duration_s * SECOND_US)
    return SegmentClosed(
        camera_id=camera_id,
        run_id=run_id,
        seq=seq,
        path=f"{camera_id}/2026/01/02/{camera_id}-{start_us}.mp4",
        start_us=start_us,
        end_us=end_us,
        media_start=seq * 90_000 * 60,
        media_duration=round(duration_s * 90_000),
        timescale=90_000,
        bytes=1_000_000 + seq,
        sha256=(sha * 64)[:64],
        video_codec="h264",
        audio_codec=None,
        width=1280,
        height=720,
        keyframes=((0, 1234), (90_000, 56_789), (180_000, 120_000)),
    )
