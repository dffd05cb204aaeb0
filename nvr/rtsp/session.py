"""Opening an RTSP session for recording: OPTIONS, DESCRIBE, SETUP per track, PLAY.

RTP travels interleaved on the RTSP connection (RFC 2326 §10.12), as the recorder always
asks for TCP: lossless, one port, and what cameras behind NAT or firewalls allow. The
session answers 401 challenges (Basic or Digest), follows one redirect, and keeps itself
alive with GET_PARAMETER (or OPTIONS) at half the session timeout.

Credentials are taken out of the URL before anything is sent: requests carry the bare
URL and an Authorization header, and errors never include the password.
"""

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit, urlunsplit

from nvr.errors import CameraRefused, CameraUnreachable, StreamUnsupported
from nvr.rtsp.auth import Authenticator, Credentials, parse_challenges
from nvr.rtsp.connection import RtspConnection
from nvr.rtsp.messages import (
    Response,
    RtpInfo,
    parse_interleaved,
    parse_rtp_info,
    parse_session,
)
from nvr.rtsp.sdp import MediaDescription, parse_sdp

log = logging.getLogger(__name__)

DEFAULT_PORT = 554
VIDEO_ENCODINGS = frozenset({"H264", "H265"})
_REDIRECTS = frozenset({301, 302, 303, 305, 307})
_STATUS_HINTS = {
    401: "the camera refused the credentials",
    403: "the camera forbids this stream",
    404: "the camera has no stream at this path",
    454: "the camera lost the session",
    503: "the camera refused the stream for now",
}


@dataclass(frozen=True)
class Track:
    """A track set up for recording, and its interleaved RTP channel."""

    media: MediaDescription
    channel: int


@dataclass(frozen=True)
class Target:
    """Where to connect, from a camera URL: credentials apart, never sent in the URL."""

    url: str  # without user and password
    host: str
    port: int
    credentials: Credentials | None


def parse_target(url: str) -> Target:
    parts = urlsplit(url)
    if parts.scheme.lower() != "rtsp" or not parts.hostname:
        raise CameraUnreachable("the camera URL is not rtsp://host[:port]/path")
    host = parts.hostname
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError as exc:
        raise CameraUnreachable("the camera URL has an invalid port") from exc
    netloc = f"[{host}]" if ":" in host else host
    if parts.port:
        netloc += f":{parts.port}"
    bare = urlunsplit(("rtsp", netloc, parts.path or "/", parts.query, ""))
    credentials = None
    if parts.username is not None:
        credentials = Credentials(
            unquote(parts.username), unquote(parts.password or "")
        )
    return Target(bare, host, port, credentials)


class RtspSession:
    """One camera connection from DESCRIBE to TEARDOWN."""

    def __init__(self, target: Target, timeout_s: float) -> None:
        self.target = target
        self.timeout_s = timeout_s
        self.connection: RtspConnection | None = None
        self.video: Track | None = None
        self.audio: Track | None = None
        self.offered: list[MediaDescription] = []
        self.rtp_info: dict[str, RtpInfo] = {}
        self._auth: Authenticator | None = None
        self._session_id: str | None = None
        self._session_timeout_s = 60.0
        self._public: frozenset[str] = frozenset()
        self._keepalive: asyncio.TimerHandle | None = None
        self._redirected_to: str | None = None  # another server a redirect named

    async def open(self, want_audio: Callable[[MediaDescription], bool]) -> None:
        """Connects, describes, sets up the video track (and the audio track, if
        ``want_audio`` takes it) and plays.

        Raises CameraUnreachable, CameraRefused, CameraProtocolError or
        StreamUnsupported; on error the connection is closed.
        """
        try:
            await self._open(want_audio)
        except BaseException:
            self.close()
            raise

    async def _open(self, want_audio: Callable[[MediaDescription], bool]) -> None:
        await self._connect(self.target)
        options = await self._call("OPTIONS", self.target.url, {}, allow_error=True)
        public = options.header("public") or ""
        self._public = frozenset(m.strip().upper() for m in public.split(","))
        url = self.target.url
        answer = await self._call("DESCRIBE", url, {"Accept": "application/sdp"})
        if answer.status in _REDIRECTS and answer.header("location"):
            url = await self._redirect(answer.header("location") or "")
            answer = await self._call("DESCRIBE", url, {"Accept": "application/sdp"})
        base = answer.header("content-base") or answer.header("content-location") or url
        description = parse_sdp(answer.body.decode("utf-8", "replace"), base)
        self.offered = description.media
        video = next(
            (
                m
                for m in self.offered
                if m.kind == "video" and m.encoding in VIDEO_ENCODINGS
            ),
            None,
        )
        if video is None:
            kinds = ", ".join(
                f"{m.kind} {m.encoding or m.payload_type}" for m in self.offered
            )
            raise StreamUnsupported(
                f"no H.264/H.265 video track (the camera offers {kinds})"
            )
        self.video = await self._setup(video, 0)
        audio = next((m for m in self.offered if m.kind == "audio"), None)
        if audio is not None and want_audio(audio):
            self.audio = await self._setup(audio, 2)
        play = await self._call("PLAY", description.control, {"Range": "npt=0.000-"})
        for info in parse_rtp_info(play.header("rtp-info") or ""):
            self.rtp_info[info.url] = info
        self._schedule_keepalive()

    async def _connect(self, target: Target) -> None:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.timeout_s):
                _, self.connection = await loop.create_connection(
                    RtspConnection, target.host, target.port
                )
        except TimeoutError as exc:
            raise CameraUnreachable(
                f"no TCP connection to {target.host}:{target.port} within "
                f"{self.timeout_s:g} s"
            ) from exc
        except OSError as exc:
            reason = exc.strerror or exc.__class__.__name__
            raise CameraUnreachable(
                f"cannot connect to {target.host}:{target.port}: {reason}"
            ) from exc

    async def _redirect(self, location: str) -> str:
        """Follows one redirect to another server or path (RFC 2326 §11.3).

        The camera's credentials follow a redirect only to the same host and port: a
        camera (or whoever answers in its name) must not be able to send nvr, password
        in hand, to a server of its choosing. Another host gets no credentials, unless
        the Location carries its own.
        """
        redirected = parse_target(location)
        same_server = (redirected.host.lower(), redirected.port) == (
            self.target.host.lower(),
            self.target.port,
        )
        if redirected.credentials is None and same_server:
            redirected = Target(
                redirected.url,
                redirected.host,
                redirected.port,
                self.target.credentials,
            )
        if not same_server:
            self._redirected_to = f"{redirected.host}:{redirected.port}"
        self.close()
        self._auth = None  # a challenge answered for one server is not another's
        self._session_id = None
        self.target = redirected
        await self._connect(redirected)
        return redirected.url

    async def _setup(self, media: MediaDescription, channel: int) -> Track:
        headers = {
            "Transport": f"RTP/AVP/TCP;unicast;interleaved={channel}-{channel + 1}"
        }
        answer = await self._call("SETUP", media.control, headers)
        session = answer.header("session")
        if session is None:
            raise CameraRefused(
                "SETUP answered without a Session header", answer.status
            )
        parsed = parse_session(session)
        self._session_id, self._session_timeout_s = parsed.id, parsed.timeout_s
        granted = parse_interleaved(answer.header("transport") or "")
        return Track(media, granted[0] if granted else channel)

    async def _call(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        allow_error: bool = False,
    ) -> Response:
        """One request, answered after at most one authentication round."""
        answer = await self._send(method, url, headers)
        if answer.status == 401 and self.target.credentials is not None:
            challenges = parse_challenges(answer.headers.get("www-authenticate", []))
            if challenges:
                self._auth = Authenticator(self.target.credentials, challenges[0])
                answer = await self._send(method, url, headers)
        if answer.status < 300 or allow_error or answer.status in _REDIRECTS:
            return answer
        hint = _STATUS_HINTS.get(answer.status, f"{method} failed")
        if answer.status == 401 and self._redirected_to is not None:
            hint = (
                f"the camera redirected to another server ({self._redirected_to}), "
                "which asks for credentials; nvr sends them only to the camera itself"
            )
        elif answer.status == 401 and self.target.credentials is None:
            hint = "the camera requires credentials and the URL has none"
        raise CameraRefused(f"{hint} ({answer.status} {answer.reason})", answer.status)

    async def _send(
        self, method: str, url: str, headers: Mapping[str, str]
    ) -> Response:
        assert self.connection is not None
        full = dict(headers)
        if self._session_id is not None:
            full["Session"] = self._session_id
        if self._auth is not None:
            full["Authorization"] = self._auth.header(method, url)
        return await self.connection.request(method, url, full, self.timeout_s)

    def _schedule_keepalive(self) -> None:
        interval_s = max(5.0, self._session_timeout_s / 2)
        loop = asyncio.get_running_loop()
        self._keepalive = loop.call_later(interval_s, self._send_keepalive)

    def _send_keepalive(self) -> None:
        if self.connection is None or self.connection.closed.done():
            return
        method = "GET_PARAMETER" if "GET_PARAMETER" in self._public else "OPTIONS"
        headers = {"Session": self._session_id or ""}
        if self._auth is not None:
            headers["Authorization"] = self._auth.header(method, self.target.url)
        self.connection.send_nowait(method, self.target.url, headers)
        self._schedule_keepalive()

    def close(self) -> None:
        """Sends TEARDOWN (unanswered) and closes the connection."""
        if self._keepalive is not None:
            self._keepalive.cancel()
            self._keepalive = None
        connection, self.connection = self.connection, None
        if connection is None:
            return
        if self._session_id is not None and not connection.closed.done():
            headers = {"Session": self._session_id}
            if self._auth is not None:
                headers["Authorization"] = self._auth.header(
                    "TEARDOWN", self.target.url
                )
            connection.send_nowait("TEARDOWN", self.target.url, headers)
        connection.close()
