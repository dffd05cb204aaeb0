"""Simulated cameras: one gst-rtsp-server process per camera, driven from the venv side.

Each camera runs ``rtsp_server.py`` under the system python (the only one with
gst-rtsp-server bindings), serving one looped clip at ``rtsp://127.0.0.1:PORT/stream``.
"""

import base64
import functools
import logging
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from nvr.errors import NvrError
from nvr.log import fields
from nvr.simulate.media import clip_name, make_clip

logger = logging.getLogger(__name__)

SYSTEM_PYTHON = "/usr/bin/python3"
SERVER_SCRIPT = Path(__file__).with_name("rtsp_server.py")
MOUNT = "/stream"
DEBIAN_PACKAGES = (
    "python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-rtsp gstreamer1.0-plugins-base "
    "gstreamer1.0-plugins-good gstreamer1.0-plugins-bad ffmpeg"
)
_STOP_GRACE_S = 5.0
_PROBE_GI = (
    "import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0');"
    " from gi.repository import Gst, GstRtspServer; Gst.init(None);"
    " missing = [n for n in ('matroskademux', 'h264parse', 'h265parse', 'aacparse',"
    " 'rtph264pay', 'rtph265pay', 'rtpmp4gpay', 'rtppcmapay', 'fdsrc')"
    " if Gst.ElementFactory.find(n) is None]; print(' '.join(missing))"
)


@functools.cache
def check_system() -> None:
    """Raises NvrError naming the Debian packages to install if the simulator cannot run."""
    hint = f"simulated cameras need: apt-get install {DEBIAN_PACKAGES}"
    for tool in (SYSTEM_PYTHON, "/usr/bin/ffmpeg", "/usr/bin/ffprobe"):
        if shutil.which(tool) is None:
            raise NvrError(f"{tool} not found; {hint}")
    probe = subprocess.run(
        [SYSTEM_PYTHON, "-c", _PROBE_GI], capture_output=True, text=True, check=False
    )
    if probe.returncode != 0:
        raise NvrError(f"gst-rtsp-server is not usable from {SYSTEM_PYTHON}; {hint}")
    if probe.stdout.strip():
        raise NvrError(f"GStreamer elements missing: {probe.stdout.strip()}; {hint}")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (another process may take it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def describe_status(
    port: int, *, user: str | None, password: str | None, timeout_s: float
) -> int:
    """Sends one raw RTSP DESCRIBE (RFC 2326 §10.2) and returns the answer's status code.

    Uses basic auth (RFC 2617 §2) when credentials are given. Raises OSError when the
    server does not listen or answer in time.
    """
    lines = [
        f"DESCRIBE rtsp://127.0.0.1:{port}{MOUNT} RTSP/1.0",
        "CSeq: 1",
        "Accept: application/sdp",
        "User-Agent: nvr-simulate",
    ]
    if user is not None and password is not None:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        lines.append(f"Authorization: Basic {token}")
    request = ("\r\n".join(lines) + "\r\n\r\n").encode()

    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
        sock.sendall(request)
        answer = b""
        while b"\r\n" not in answer:
            chunk = sock.recv(4096)
            if not chunk:
                raise ConnectionError(
                    "RTSP server closed the connection before answering"
                )
            answer += chunk
    status_line = answer.split(b"\r\n", 1)[0].decode(errors="replace").split()
    if len(status_line) < 2 or not status_line[1].isdigit():
        raise ConnectionError(f"not an RTSP answer: {status_line!r}")
    return int(status_line[1])


class SimulatedCamera:
    """One simulated camera: a gst-rtsp-server process serving ``clip`` looped on ``port``."""

    def __init__(
        self,
        name: str,
        clip: Path,
        port: int,
        *,
        user: str | None = None,
        password: str | None = None,
        inband_params: bool = True,
    ) -> None:
        if (user is None) != (password is None):
            raise ValueError("user and password go together")
        self.name = name
        self.clip = clip
        self.port = port
        self.user = user
        self.password = password
        # False: SPS/PPS (and VPS) only in the SDP, never inside the RTP stream
        self.inband_params = inband_params
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None

    @property
    def url(self) -> str:
        """The RTSP URL, with credentials when the camera has them."""
        auth = f"{self.user}:{self.password}@" if self.user is not None else ""
        return f"rtsp://{auth}127.0.0.1:{self.port}{MOUNT}"

    @property
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Starts the server process; returns at once (see wait_ready)."""
        if self.running:
            return
        check_system()
        if not self.clip.is_file():
            raise NvrError(f"simulated camera {self.name}: no clip at {self.clip}")
        command = [
            SYSTEM_PYTHON,
            str(SERVER_SCRIPT),
            "--port",
            str(self.port),
            "--mount",
            MOUNT,
            "--clip",
            str(self.clip),
        ]
        if self.user is not None and self.password is not None:
            command += ["--user", self.user, "--password", self.password]
        if not self.inband_params:
            command.append("--no-inband-params")
        # stderr to a file, not a pipe nobody reads, so a chatty server never blocks
        self._stderr = tempfile.TemporaryFile()
        self._proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
        )
        logger.info(
            "simulated camera started %s",
            fields(camera=self.name, port=self.port, pid=self._proc.pid),
        )

    def wait_ready(self, timeout_s: float = 20) -> float:
        """Blocks until a DESCRIBE is answered 200; returns the seconds it took.

        Raises NvrError if the process dies or the timeout passes first.
        """
        started = time.monotonic()
        deadline = started + timeout_s
        last_problem = "no answer yet"
        while time.monotonic() < deadline:
            if not self.running:
                raise NvrError(
                    f"simulated camera {self.name} exited: {self._stderr_tail()}"
                )
            remaining = max(0.1, deadline - time.monotonic())
            try:
                status = describe_status(
                    self.port,
                    user=self.user,
                    password=self.password,
                    timeout_s=remaining,
                )
            except OSError as exc:
                last_problem = str(exc)
                time.sleep(0.1)
                continue
            if status == 200:
                return time.monotonic() - started
            last_problem = f"DESCRIBE answered {status}"
            time.sleep(0.2)
        raise NvrError(
            f"simulated camera {self.name} not ready after {timeout_s} s: {last_problem}"
        )

    def stop(self) -> None:
        """Ends the server: SIGTERM, then SIGKILL if it is still alive after a grace period."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=_STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                logger.warning(
                    "simulated camera ignored SIGTERM %s", fields(camera=self.name)
                )
                proc.kill()
                proc.wait()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def restart(self) -> None:
        """Stops and starts the server on the same port (clients see a disconnect)."""
        self.stop()
        self.start()

    def _stderr_tail(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        return self._stderr.read()[-2000:].decode(errors="replace").strip()

    def __enter__(self) -> Self:
        self.start()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def start_demo_cameras(workdir: Path) -> list[SimulatedCamera]:
    """Starts the demo mode's cameras and waits until both serve.

    "demo-h264" is H.264 with B-frames and AAC audio, "demo-h265" is H.265 without audio;
    each has its own server process. Clips are generated under ``workdir/clips`` once.
    """
    clips = workdir / "clips"
    h264 = make_clip(
        clips / clip_name("h264", audio="aac", bframes=True),
        "h264",
        audio="aac",
        bframes=True,
    )
    h265 = make_clip(clips / clip_name("hevc"), "hevc")
    cameras = [
        SimulatedCamera("demo-h264", h264, free_port()),
        SimulatedCamera("demo-h265", h265, free_port()),
    ]
    try:
        for camera in cameras:
            camera.start()
        for camera in cameras:
            camera.wait_ready()
    except BaseException:
        for camera in cameras:
            camera.stop()
        raise
    return cameras
