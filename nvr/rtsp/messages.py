"""RTSP/1.0 messages (RFC 2326): building requests, parsing responses and their headers.

Pure functions over bytes and strings; the connection (nvr.rtsp.connection) feeds them.
Limits keep a hostile or broken camera from making the recorder buffer without bound.
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from nvr.errors import CameraProtocolError

MAX_HEADER_BYTES = 16384
MAX_BODY_BYTES = 1 << 20
USER_AGENT = "nvr"

_STATUS_LINE = re.compile(r"^RTSP/1\.\d (\d{3})(?: (.*))?$")


@dataclass(frozen=True)
class Response:
    """One RTSP response; header names are lower case, repeated headers kept in order."""

    status: int
    reason: str
    headers: Mapping[str, list[str]] = field(default_factory=dict)
    body: bytes = b""

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (any case), else None."""
        values = self.headers.get(name.lower())
        return values[0] if values else None

    @property
    def cseq(self) -> int | None:
        value = self.header("cseq")
        try:
            return int(value) if value is not None else None
        except ValueError:
            return None


def build_request(
    method: str, url: str, cseq: int, headers: Mapping[str, str] | None = None
) -> bytes:
    """The bytes of one request; ``url`` must not carry credentials."""
    lines = [f"{method} {url} RTSP/1.0", f"CSeq: {cseq}", f"User-Agent: {USER_AGENT}"]
    lines.extend(f"{name}: {value}" for name, value in (headers or {}).items())
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")


def header_end(buf: bytes | bytearray, start: int) -> int:
    """Offset just past the blank line ending the header block at ``start``, or -1.

    Accepts bare LF line ends too: some cameras send them. Whichever blank line comes
    first ends the head: a CR LF CR LF further on may lie in a body or an RTP frame.
    """
    crlf = buf.find(b"\r\n\r\n", start, start + MAX_HEADER_BYTES + 4)
    lf_stop = crlf if crlf != -1 else start + MAX_HEADER_BYTES + 2
    lf = buf.find(b"\n\n", start, lf_stop)
    if lf != -1:
        return lf + 2
    return crlf + 4 if crlf != -1 else -1


def parse_head(head: bytes) -> tuple[str, dict[str, list[str]]]:
    """The first line and headers of a message head (without its blank line)."""
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = head.decode("latin-1")
    lines = text.replace("\r\n", "\n").split("\n")
    headers: dict[str, list[str]] = {}
    last: str | None = None
    for line in lines[1:]:
        if not line:
            continue
        if line[0] in " \t" and last is not None:  # folded continuation line
            headers[last][-1] += " " + line.strip()
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise CameraProtocolError(f"malformed RTSP header line: {line[:80]!r}")
        last = name.strip().lower()
        headers.setdefault(last, []).append(value.strip())
    return lines[0].strip(), headers


def parse_status_line(line: str) -> tuple[int, str]:
    match = _STATUS_LINE.match(line)
    if match is None:
        raise CameraProtocolError(f"not an RTSP status line: {line[:80]!r}")
    return int(match[1]), match[2] or ""


def content_length(headers: Mapping[str, list[str]]) -> int:
    values = headers.get("content-length")
    if not values:
        return 0
    try:
        length = int(values[0])
    except ValueError as exc:
        raise CameraProtocolError(f"bad Content-Length: {values[0][:40]!r}") from exc
    if not 0 <= length <= MAX_BODY_BYTES:
        raise CameraProtocolError(f"Content-Length {length} out of bounds")
    return length


@dataclass(frozen=True)
class SessionHeader:
    id: str
    timeout_s: float  # RFC 2326 §12.37: 60 s unless the server says otherwise


def parse_session(value: str) -> SessionHeader:
    """``12345678;timeout=60`` into its id and timeout."""
    session_id, *params = (part.strip() for part in value.split(";"))
    timeout_s = 60.0
    for param in params:
        name, _, raw = param.partition("=")
        if name.strip().lower() == "timeout":
            try:
                timeout_s = max(1.0, float(raw))
            except ValueError:
                pass  # a malformed timeout keeps the default, as RFC 2326 implies
    if not session_id:
        raise CameraProtocolError("empty Session header")
    return SessionHeader(session_id, timeout_s)


def parse_interleaved(transport: str) -> tuple[int, int] | None:
    """The ``interleaved=a-b`` channels a SETUP answer granted, else None."""
    match = re.search(r"interleaved=(\d+)(?:-(\d+))?", transport)
    if match is None:
        return None
    first = int(match[1])
    return first, int(match[2]) if match[2] else first + 1


@dataclass(frozen=True)
class RtpInfo:
    """One entry of a PLAY answer's RTP-Info (RFC 2326 §12.33)."""

    url: str
    seq: int | None
    rtptime: int | None


def parse_rtp_info(value: str) -> list[RtpInfo]:
    entries = []
    for item in value.split(","):
        params: dict[str, str] = {}
        for part in item.split(";"):
            name, _, raw = part.strip().partition("=")
            params[name.lower()] = raw.strip()
        entries.append(
            RtpInfo(
                params.get("url", ""),
                _int_or_none(params.get("seq")),
                _int_or_none(params.get("rtptime")),
            )
        )
    return entries


def _int_or_none(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        return None
