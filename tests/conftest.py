"""Shared fixtures: generated clips and simulated RTSP cameras (real gst-rtsp-server)."""

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from nvr.simulate.cameras import SimulatedCamera, free_port
from nvr.simulate.media import AudioCodec, VideoCodec, clip_name, make_clip

CameraFactory = Callable[..., SimulatedCamera]


@pytest.fixture(scope="session")
def clips_dir(request: pytest.FixtureRequest) -> Path:
    """Where generated clips live; kept in pytest's cache so later runs reuse them."""
    return Path(request.config.cache.mkdir("nvr-clips"))


@pytest.fixture
def rtsp_camera_factory(clips_dir: Path) -> Iterator[CameraFactory]:
    """Starts simulated cameras that serve once the call returns; stops them at teardown.

    Call as ``rtsp_camera_factory(codec="h264", audio="aac", bframes=True, seconds=10,
    user=None, password=None, name=None, inband_params=True)``; the camera's ``url`` is
    ready to record. ``inband_params=False`` sends SPS/PPS only in the SDP.
    """
    started: list[SimulatedCamera] = []

    def start(
        codec: VideoCodec = "h264",
        *,
        audio: AudioCodec | None = None,
        bframes: bool = False,
        seconds: float = 10,
        user: str | None = None,
        password: str | None = None,
        name: str | None = None,
        inband_params: bool = True,
    ) -> SimulatedCamera:
        name_ = clip_name(codec, audio=audio, bframes=bframes, seconds=seconds)
        clip = make_clip(
            clips_dir / name_, codec, audio=audio, bframes=bframes, seconds=seconds
        )
        camera = SimulatedCamera(
            name or f"sim-{len(started)}",
            clip,
            free_port(),
            user=user,
            password=password,
            inband_params=inband_params,
        )
        started.append(camera)
        camera.start()
        camera.wait_ready()
        return camera

    yield start
    for camera in started:
        camera.stop()
