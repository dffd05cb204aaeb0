"""A light RTSP/TCP source for benchmarks: many simulated cameras in one asyncio process.

Every mount path serves the same pre-encoded H.264 clip, looped forever and paced in real
time (one access unit per frame interval, as a camera sends). Packets are real RTP
(RFC 3550) carrying H.264 per RFC 6184 (single NAL units, FU-A above the MTU), sent
interleaved on the RTSP connection (RFC 2326 §10.12). SPS and PPS precede every keyframe.

Each session starts on a keyframe with the same sequence number and RTP time (fixed,
non-zero values), so every session sends identical bytes and the packetised loops are
built once and shared; a loop ``k`` adds ``k`` clip lengths to the RTP timestamps and
``k`` loop packet counts to the sequence numbers.

A camera has a finite send buffer: when a client falls more than ``--buffer-seconds`` of
video behind, new frames are dropped (counted). ``offered`` counts every frame that fell
due, so ``recorded / offered`` is how well a recorder kept up.

Control on stdin, one command a line; answers are one JSON line on stdout:
``pause PREFIX`` stops offering frames to sessions whose path starts with PREFIX;
``end PREFIX`` does the same and then closes their connections (end of stream);
``stats`` prints per-path counters; ``quit`` exits.
"""

import argparse
import asyncio
import base64
import json
import struct
import sys
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av

RTP_CLOCK = 90000
MTU_PAYLOAD = 1400
TICK_S = 0.02


@dataclass(frozen=True)
class Clip:
    """One clip cut into RTP payloads: per frame, (rtp offset ticks, payloads)."""

    frames: list[tuple[int, list[bytes]]]
    loop_ticks: int
    frame_s: float
    sps: bytes
    pps: bytes

    @property
    def packets_per_loop(self) -> int:
        return sum(len(payloads) for _ticks, payloads in self.frames)


def _split_avcc(data: bytes, length_size: int = 4) -> list[bytes]:
    """NAL units of one length-prefixed (ISO/IEC 14496-15) access unit."""
    units, pos = [], 0
    while pos + length_size <= len(data):
        size = int.from_bytes(data[pos : pos + length_size], "big")
        pos += length_size
        units.append(data[pos : pos + size])
        pos += size
    return units


def _parameter_sets(extradata: bytes) -> tuple[bytes, bytes]:
    """SPS and PPS from an avcC record (ISO/IEC 14496-15 §5.3.3.1)."""
    pos = 6
    sps_len = int.from_bytes(extradata[pos : pos + 2], "big")
    sps = extradata[pos + 2 : pos + 2 + sps_len]
    pos += 2 + sps_len + 1
    pps_len = int.from_bytes(extradata[pos : pos + 2], "big")
    return sps, extradata[pos + 2 : pos + 2 + pps_len]


def _payloads(nal: bytes) -> list[bytes]:
    """RTP payloads of one NAL unit: itself, or FU-A fragments (RFC 6184 §5.8)."""
    if len(nal) <= MTU_PAYLOAD:
        return [nal]
    indicator = (nal[0] & 0xE0) | 28
    kind = nal[0] & 0x1F
    body = nal[1:]
    chunks = [body[i : i + MTU_PAYLOAD] for i in range(0, len(body), MTU_PAYLOAD)]
    out = []
    for index, chunk in enumerate(chunks):
        header = (
            kind
            | (0x80 if index == 0 else 0)
            | (0x40 if index == len(chunks) - 1 else 0)
        )
        out.append(bytes((indicator, header)) + chunk)
    return out


def load_clip(path: Path) -> Clip:
    """Reads an H.264 clip (Matroska/MP4, no B-frames) and packetises every frame."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        sps, pps = _parameter_sets(bytes(stream.codec_context.extradata or b""))
        rate = stream.average_rate or Fraction(25)
        frame_s = float(1 / rate)
        base = stream.time_base or Fraction(1, 1000)
        frames = []
        first_pts: int | None = None
        for packet in container.demux(stream):
            if packet.size == 0 or packet.pts is None:
                continue
            first_pts = packet.pts if first_pts is None else first_pts
            ticks = round((packet.pts - first_pts) * base * RTP_CLOCK)
            nals = _split_avcc(bytes(packet))
            if packet.is_keyframe:
                nals = [sps, pps, *nals]
            frames.append((ticks, [p for nal in nals for p in _payloads(nal)]))
    loop_ticks = round(len(frames) * frame_s * RTP_CLOCK)
    return Clip(frames, loop_ticks, frame_s, sps, pps)


def make_clip(path: Path, seconds: int, bitrate_kbps: int) -> Path:
    """Encodes a 720p 25 fps H.264 test clip (GOP 1 s, no B-frames) unless present."""
    if path.exists():
        return path
    import subprocess

    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial.mkv")
    rate = f"{bitrate_kbps}k"
    subprocess.run(
        [
            "/usr/bin/ffmpeg",
            "-hide_banner",
            "-nostdin",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=1280x720:rate=25",
            "-t",
            str(seconds),
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-profile:v",
            "main",
            "-pix_fmt",
            "yuv420p",
            "-b:v",
            rate,
            "-maxrate",
            rate,
            "-bufsize",
            rate,
            "-x264-params",
            "keyint=25:min-keyint=25:scenecut=0:bframes=0",
            "-f",
            "matroska",
            str(partial),
        ],
        check=True,
    )
    partial.rename(path)
    return path


class LoopCache:
    """Interleaved RTP bytes per (loop, frame), built on first use and shared by sessions."""

    def __init__(self, clip: Clip) -> None:
        self._clip = clip
        self._loops: dict[int, list[tuple[bytes, int]]] = {}

    def frame(self, loop: int, index: int) -> tuple[bytes, int]:
        """The interleaved bytes of one frame and how many RTP packets they hold."""
        frames = self._loops.get(loop)
        if frames is None:
            frames = self._build(loop)
            self._loops[loop] = frames
        return frames[index]

    def forget_before(self, loop: int) -> None:
        for old in [k for k in self._loops if k < loop]:
            del self._loops[old]

    def _build(self, loop: int) -> list[tuple[bytes, int]]:
        clip = self._clip
        seq = SEQ_BASE + loop * clip.packets_per_loop
        base_ticks = RTP_TIME_BASE + loop * clip.loop_ticks
        out = []
        for ticks, payloads in clip.frames:
            timestamp = (base_ticks + ticks) & 0xFFFFFFFF
            parts = []
            for index, payload in enumerate(payloads):
                marker = 0x80 if index == len(payloads) - 1 else 0
                header = struct.pack(
                    "!BBHII", 0x80, marker | 96, seq & 0xFFFF, timestamp, SSRC
                )
                parts.append(
                    b"$\x00" + struct.pack("!H", 12 + len(payload)) + header + payload
                )
                seq += 1
            out.append((b"".join(parts), len(payloads)))
        return out


SSRC = 0x6E767221
# Note: not zero: FFmpeg's RTP demuxer takes a zero RTP time for "unset" and leaves the
# first packet without a timestamp; cameras start from a random value (RFC 3550 §5.1)
RTP_TIME_BASE = 0x1E240000
SEQ_BASE = 0x2A00


@dataclass
class Counters:
    """What one mount path was offered and sent, over all its sessions."""

    sessions: int = 0
    frames_offered: int = 0
    frames_sent: int = 0
    frames_dropped: int = 0
    frames_first_gop: int = 0  # offered before each session's second keyframe
    rtp_packets_sent: int = 0
    bytes_sent: int = 0


@dataclass
class Session:
    """One client playing one mount."""

    path: str
    transport: asyncio.WriteTransport
    counters: Counters
    started_s: float = 0.0
    next_frame: int = 0
    playing: bool = False
    paused: bool = False


@dataclass
class Source:
    """All sessions of this process and the shared packet cache."""

    clip: Clip
    cache: LoopCache
    buffer_bytes: int
    gop_frames: int
    sessions: list[Session] = field(default_factory=list)
    counters: dict[str, Counters] = field(default_factory=dict)
    paused_prefixes: list[str] = field(default_factory=list)

    def sdp(self) -> bytes:
        sps, pps = self.clip.sps, self.clip.pps
        sets = base64.b64encode(sps).decode() + "," + base64.b64encode(pps).decode()
        lines = [
            "v=0",
            "o=- 0 0 IN IP4 127.0.0.1",
            "s=nvr-perf",
            "c=IN IP4 0.0.0.0",
            "t=0 0",
            "a=control:*",
            "m=video 0 RTP/AVP 96",
            "a=rtpmap:96 H264/90000",
            f"a=fmtp:96 packetization-mode=1;profile-level-id={sps[1:4].hex()};"
            f"sprop-parameter-sets={sets}",
            "a=control:trackID=0",
        ]
        return ("\r\n".join(lines) + "\r\n").encode()

    def tick(self, now_s: float) -> None:
        """Sends every playing session the frames that fell due since its last send."""
        clip = self.clip
        count = len(clip.frames)
        lowest_loop = None
        for session in self.sessions:
            if not session.playing or session.paused:
                continue
            due = int((now_s - session.started_s) / clip.frame_s) + 1
            counters = session.counters
            while session.next_frame < due:
                loop, index = divmod(session.next_frame, count)
                session.next_frame += 1
                counters.frames_offered += 1
                if session.next_frame <= self.gop_frames:
                    counters.frames_first_gop += 1
                if session.transport.get_write_buffer_size() > self.buffer_bytes:
                    counters.frames_dropped += 1
                    continue
                data, packets = self.cache.frame(loop, index)
                session.transport.write(data)
                counters.frames_sent += 1
                counters.rtp_packets_sent += packets
                counters.bytes_sent += len(data)
            loop = session.next_frame // count
            lowest_loop = loop if lowest_loop is None else min(lowest_loop, loop)
        if lowest_loop is not None:
            self.cache.forget_before(lowest_loop)

    def pause(self, prefix: str, *, close: bool = False) -> None:
        """Stops offering frames under ``prefix``; ``close`` also ends the connections.

        A transport closes after sending what it holds, so nothing offered is cut off.
        """
        self.paused_prefixes.append(prefix)
        for session in self.sessions:
            if session.path.startswith(prefix):
                session.paused = True
                if close:
                    session.transport.close()


class RtspConnection(asyncio.Protocol):
    """One RTSP/TCP client connection (RFC 2326): requests in, interleaved RTP out."""

    def __init__(self, source: Source) -> None:
        self._source = source
        self._buffer = b""
        self._transport: asyncio.WriteTransport | None = None
        self._session: Session | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        if self._session is not None and self._session in self._source.sessions:
            self._source.sessions.remove(self._session)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while self._buffer:
            if self._buffer[:1] == b"$":
                # interleaved RTCP from the client (receiver reports): skipped
                if len(self._buffer) < 4:
                    return
                size = 4 + struct.unpack("!H", self._buffer[2:4])[0]
                if len(self._buffer) < size:
                    return
                self._buffer = self._buffer[size:]
                continue
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self._buffer[:end].decode("latin-1")
            headers = _headers(head)
            body_len = int(headers.get("content-length", "0"))
            if len(self._buffer) < end + 4 + body_len:
                return
            self._buffer = self._buffer[end + 4 + body_len :]
            self._answer(head.split("\r\n", 1)[0], headers)

    def _answer(self, request_line: str, headers: dict[str, str]) -> None:
        method, url, _version = [*request_line.split(" "), "", ""][:3]
        cseq = headers.get("cseq", "0")
        extra: list[str] = []
        body = b""
        path = "/" + url.split("://", 1)[-1].partition("/")[2]
        if method == "OPTIONS":
            extra.append(
                "Public: OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN, GET_PARAMETER"
            )
        elif method == "DESCRIBE":
            body = self._source.sdp()
            extra += [
                "Content-Type: application/sdp",
                f"Content-Base: {url.rstrip('/')}/",
            ]
        elif method == "SETUP":
            mount = path.rsplit("/trackID=", 1)[0]
            self._setup(mount)
            extra.append("Transport: RTP/AVP/TCP;unicast;interleaved=0-1")
        elif method == "PLAY":
            track = f"{url.rstrip('/')}/trackID=0"
            extra += [
                "Range: npt=0.000-",
                f"RTP-Info: url={track};seq={SEQ_BASE};rtptime={RTP_TIME_BASE}",
            ]
        elif method not in ("TEARDOWN", "GET_PARAMETER", "SET_PARAMETER"):
            self._reply(cseq, "405 Method Not Allowed", [], b"")
            return
        if method != "OPTIONS" and method != "DESCRIBE":
            extra.append("Session: 1;timeout=60")
        self._reply(cseq, "200 OK", extra, body)
        if method == "PLAY" and self._session is not None and not self._session.playing:
            self._session.started_s = time.monotonic()
            self._session.playing = True
        if method == "TEARDOWN" and self._transport is not None:
            self._transport.close()

    def _setup(self, mount: str) -> None:
        assert self._transport is not None
        counters = self._source.counters.setdefault(mount, Counters())
        counters.sessions += 1
        session = Session(mount, self._transport, counters)
        session.paused = any(mount.startswith(p) for p in self._source.paused_prefixes)
        self._session = session
        self._source.sessions.append(session)

    def _reply(self, cseq: str, status: str, extra: list[str], body: bytes) -> None:
        assert self._transport is not None
        lines = [f"RTSP/1.0 {status}", f"CSeq: {cseq}", "Server: nvr-perf", *extra]
        if body:
            lines.append(f"Content-Length: {len(body)}")
        self._transport.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)


def _headers(head: str) -> dict[str, str]:
    out = {}
    for line in head.split("\r\n")[1:]:
        name, _sep, value = line.partition(":")
        out[name.strip().lower()] = value.strip()
    return out


async def _ticker(source: Source) -> None:
    while True:
        source.tick(time.monotonic())
        await asyncio.sleep(TICK_S)


async def _control(source: Source) -> None:
    """Reads commands from stdin (see the module docstring)."""
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        command, _sep, argument = line.strip().partition(" ")
        if command in ("", "quit"):
            return
        if command in ("pause", "end"):
            source.pause(argument, close=command == "end")
            print(json.dumps({command: argument}), flush=True)
        elif command == "stats":
            stats = {path: vars(c) for path, c in source.counters.items()}
            print(json.dumps({"stats": stats}), flush=True)


async def serve(clip_path: Path, port: int, buffer_seconds: float) -> None:
    clip = load_clip(clip_path)
    bytes_per_s = sum(len(p) for _t, ps in clip.frames for p in ps) / (
        len(clip.frames) * clip.frame_s
    )
    keyframes = [
        i for i, (_t, payloads) in enumerate(clip.frames) if payloads[0] == clip.sps
    ]
    gop_frames = keyframes[1] if len(keyframes) > 1 else len(clip.frames)
    source = Source(
        clip, LoopCache(clip), int(bytes_per_s * buffer_seconds), gop_frames
    )
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: RtspConnection(source), "127.0.0.1", port, backlog=1024
    )
    print(json.dumps({"ready": port}), flush=True)
    ticker = asyncio.create_task(_ticker(source))
    try:
        await _control(source)
    finally:
        ticker.cancel()
        server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clip", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--buffer-seconds", type=float, default=2.0)
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(serve(args.clip, args.port, args.buffer_seconds))


if __name__ == "__main__":
    main()
