"""The media descriptions of an RTSP DESCRIBE answer (SDP, RFC 8866).

Only what recording needs is read: per ``m=`` section its kind, first payload type, the
``rtpmap`` encoding and clock rate, the ``fmtp`` parameters and the ``control`` URL that
SETUP must name (RFC 2326 §C.1.1, resolved against the Content-Base).
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

from nvr.errors import CameraProtocolError

# static payload types a camera may use without an rtpmap (RFC 3551 table 4)
_STATIC_PAYLOADS = {0: ("PCMU", 8000, 1), 8: ("PCMA", 8000, 1), 26: ("JPEG", 90000, 1)}


@dataclass(frozen=True)
class MediaDescription:
    """One ``m=`` section: a track the camera offers."""

    kind: str  # "video", "audio", or whatever else the camera announces
    payload_type: int
    encoding: str  # upper case, as in the rtpmap: "H264", "H265", "MPEG4-GENERIC"
    clock_rate: int  # RTP timestamp ticks per second
    channels: int
    control: str  # absolute URL to SETUP this track
    fmtp: Mapping[str, str] = field(default_factory=dict)  # keys lower case


@dataclass(frozen=True)
class SessionDescription:
    """What DESCRIBE answered: the aggregate control URL (PLAY names it) and the tracks."""

    control: str
    media: list[MediaDescription]


@dataclass
class _Section:
    kind: str
    payload_type: int
    attributes: list[tuple[str, str]] = field(default_factory=list)


def parse_sdp(text: str, base_url: str) -> SessionDescription:
    """The media sections of ``text``; raises ProtocolError if there is none.

    ``base_url`` is the Content-Base (or the request URL): relative controls resolve
    against it, and a missing control means the base itself.
    """
    session_control: str | None = None
    sections: list[_Section] = []
    for raw in text.splitlines():
        line = raw.strip()
        if len(line) < 2 or line[1] != "=":
            continue
        key, value = line[0], line[2:]
        if key == "m":
            sections.append(_media_line(value))
        elif key == "a" and sections:
            sections[-1].attributes.append(_attribute(value))
        elif key == "a":
            name, attr = _attribute(value)
            if name == "control":
                session_control = attr
    if not sections:
        raise CameraProtocolError("the camera's SDP describes no media")
    base = _resolve(base_url, session_control) if session_control else base_url
    return SessionDescription(base, [_describe(section, base) for section in sections])


def _media_line(value: str) -> _Section:
    parts = value.split()
    if len(parts) < 4:
        raise CameraProtocolError(f"malformed SDP media line: m={value[:80]}")
    try:
        payload_type = int(parts[3])
    except ValueError as exc:
        raise CameraProtocolError(
            f"malformed SDP payload type: m={value[:80]}"
        ) from exc
    return _Section(parts[0].lower(), payload_type)


def _attribute(value: str) -> tuple[str, str]:
    name, _, attr = value.partition(":")
    return name.strip().lower(), attr.strip()


def _describe(section: _Section, base: str) -> MediaDescription:
    encoding, clock_rate, channels = _STATIC_PAYLOADS.get(
        section.payload_type, ("", 0, 1)
    )
    fmtp: dict[str, str] = {}
    control = base
    for name, value in section.attributes:
        if name == "rtpmap" and _for_payload(value, section.payload_type):
            encoding, clock_rate, channels = _rtpmap(value)
        elif name == "fmtp" and _for_payload(value, section.payload_type):
            fmtp = _fmtp(value)
        elif name == "control":
            control = _resolve(base, value)
    return MediaDescription(
        section.kind,
        section.payload_type,
        encoding,
        clock_rate,
        channels,
        control,
        fmtp,
    )


def _for_payload(value: str, payload_type: int) -> bool:
    head = value.split(None, 1)[0] if value else ""
    return head == str(payload_type)


# RTP clock rates in use run from 8 kHz audio to 90 kHz video (RFC 3551); anything far
# outside is a broken SDP.
MIN_CLOCK_RATE = 1000
MAX_CLOCK_RATE = 1_000_000
MAX_CHANNELS = 64


def _rtpmap(value: str) -> tuple[str, int, int]:
    """``96 H264/90000`` or ``97 MPEG4-GENERIC/48000/2``."""
    try:
        spec = value.split(None, 1)[1]
        parts = spec.split("/")
        channels = int(parts[2]) if len(parts) > 2 and parts[2] else 1
        encoding, clock_rate = parts[0].strip().upper(), int(parts[1])
    except (IndexError, ValueError) as exc:
        raise CameraProtocolError(f"malformed SDP rtpmap: {value[:80]}") from exc
    # the clock rate becomes an MP4 timescale and divides every tick conversion
    if not MIN_CLOCK_RATE <= clock_rate <= MAX_CLOCK_RATE:
        raise CameraProtocolError(f"SDP rtpmap clock rate out of range: {value[:80]}")
    if not 1 <= channels <= MAX_CHANNELS:
        raise CameraProtocolError(
            f"SDP rtpmap channel count out of range: {value[:80]}"
        )
    return encoding, clock_rate, channels


def _fmtp(value: str) -> dict[str, str]:
    """``96 packetization-mode=1;sprop-parameter-sets=Z0..,aM..`` into a dict."""
    params = value.split(None, 1)[1] if " " in value else ""
    result: dict[str, str] = {}
    for item in params.split(";"):
        key, sep, val = item.partition("=")
        if sep:
            result[key.strip().lower()] = val.strip()
    return result


def _resolve(base: str, control: str) -> str:
    """A control attribute as an absolute URL (``*`` means the base itself)."""
    if control in ("", "*"):
        return base
    if "://" in control:
        return control
    if urlsplit(base).query and not control.startswith("/"):
        # a base with a query (Dahua: ".../realmonitor?channel=1&subtype=0/") takes the
        # control after it, as ffmpeg joins them; urljoin would drop the query and the
        # path's last part, and SETUP would name a stream the camera does not serve
        return (base if base.endswith("/") else base + "/") + control
    # RFC 2326 §C.1.1: relative to the base; urljoin drops the base's last path part
    # unless it ends with a slash, which is what cameras that send "trackID=1" mean
    return urljoin(base if base.endswith("/") else base + "/", control)
