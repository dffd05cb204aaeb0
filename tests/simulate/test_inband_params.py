"""A simulated camera without in-band parameter sets: SPS/PPS (VPS) only in the SDP."""

import socket
import time
from collections.abc import Callable

import av
import pytest

from nvr.ingest.paramsets import parameter_sets
from nvr.simulate.cameras import MOUNT, SimulatedCamera

CameraFactory = Callable[..., SimulatedCamera]

READ_S = 4.0  # four GOPs of one second
SDP_PARAMETERS = {
    "h264": ("sprop-parameter-sets=",),
    "hevc": ("sprop-vps=", "sprop-sps=", "sprop-pps="),
}


def describe_sdp(port: int) -> str:
    """The SDP body of one raw RTSP DESCRIBE (RFC 2326 §10.2)."""
    request = (
        f"DESCRIBE rtsp://127.0.0.1:{port}{MOUNT} RTSP/1.0\r\nCSeq: 1\r\n"
        "Accept: application/sdp\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(request)
        answer = b""
        while b"\r\n\r\n" not in answer:
            answer += sock.recv(4096)
        head, _, body = answer.partition(b"\r\n\r\n")
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        while len(body) < length:
            body += sock.recv(4096)
    return body.decode()


def in_band_parameter_sets(url: str, codec: str) -> tuple[int, int]:
    """(keyframes, packets carrying parameter sets) read over RTSP/TCP for READ_S."""
    keyframes = carrying = 0
    with av.open(url, options={"rtsp_transport": "tcp"}, timeout=(20, 10)) as container:
        video = container.streams.video[0]
        assert video.codec_context.extradata, "no parameter sets from the SDP"
        started = time.monotonic()
        for packet in container.demux(video):
            if time.monotonic() - started > READ_S:
                break
            keyframes += packet.is_keyframe
            carrying += bool(parameter_sets(bytes(packet), codec))
    return keyframes, carrying


@pytest.mark.parametrize("codec", ["h264", "hevc"])
def test_camera_without_inband_params_sends_them_only_in_sdp(
    rtsp_camera_factory: CameraFactory, codec: str
) -> None:
    cam = rtsp_camera_factory(codec=codec, inband_params=False)
    sdp = describe_sdp(cam.port)
    for attribute in SDP_PARAMETERS[codec]:
        assert attribute in sdp, sdp
    keyframes, carrying = in_band_parameter_sets(cam.url, codec)
    assert keyframes >= 3
    assert carrying == 0


def test_camera_default_sends_params_in_band_with_each_keyframe(
    rtsp_camera_factory: CameraFactory,
) -> None:
    cam = rtsp_camera_factory(codec="h264")
    keyframes, carrying = in_band_parameter_sets(cam.url, "h264")
    assert keyframes >= 3
    assert carrying >= keyframes - 1  # the first keyframe may be cut by the read start
