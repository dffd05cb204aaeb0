"""One TCP connection to a camera: RTSP requests and answers, and the RTP packets
interleaved with them (RFC 2326 §10.12: ``$``, channel, 16-bit length, packet).

An asyncio Protocol rather than streams: ``data_received`` walks every complete frame in
the bytes it is given and hands each to its channel's handler as ``(buf, start, end)``,
so the common case copies nothing but the RTP payloads. Bytes that are neither a frame
nor a message are skipped up to the next plausible frame and counted; a camera sending
nothing but such bytes is reported by the recorder, which watches ``junk_bytes``.
"""

import asyncio
import re
from collections.abc import Callable, Mapping
from typing import cast

from nvr.errors import CameraProtocolError, CameraUnreachable, NvrError
from nvr.rtsp.messages import (
    MAX_HEADER_BYTES,
    Response,
    build_request,
    content_length,
    header_end,
    parse_head,
    parse_status_line,
)

FrameHandler = Callable[[bytes | bytearray, int, int], None]

_DOLLAR = 0x24
_REQUEST_LINE = re.compile(rb"[A-Z_]{3,20} \S+ RTSP/1\.\d\r?\n")
# what a read cut short inside a request line may end with: "OPTIO", "OPTIONS * RTS"
_REQUEST_LINE_START = re.compile(rb"[A-Z_]{1,20}(?: [!-~]*(?: [!-~]*)?)?\r?")
_STRAY = frozenset(b"\r\n")


class RtspConnection(asyncio.Protocol):
    """The client side of one RTSP/TCP connection."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._pending = bytearray()  # received bytes not yet parsed
        self._cseq = 0
        self._waiters: dict[int, asyncio.Future[Response]] = {}
        self.channels: dict[int, FrameHandler] = {}
        # resolved with the reason the connection ended: a CameraError, or whatever
        # NvrError a frame handler raised (a timestamp break, a full disk)
        self.closed: asyncio.Future[NvrError] = self._loop.create_future()
        self.received_bytes = 0
        self.junk_bytes = 0  # skipped because they were neither frame nor message
        self.frames = 0
        self.unrouted = 0  # frames on a channel nobody set up
        self._synced = True  # False after junk: the next frame must look like RTP

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.received_bytes += len(data)
        try:
            if self._pending:
                self._pending += data
                consumed = self._parse(self._pending)
                del self._pending[:consumed]
            else:
                consumed = self._parse(data)
                if consumed < len(data):
                    self._pending = bytearray(data[consumed:])
        except NvrError as exc:
            # a handler refused the media (a timestamp break, a full disk) or the bytes
            # broke the protocol: either way this connection's run is over
            self.fail(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        reason = "the camera closed the connection"
        if exc is not None:
            reason = f"connection lost: {exc.__class__.__name__}: {exc}"
        self.fail(CameraUnreachable(reason))

    # requests

    async def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None = None,
        timeout_s: float = 10.0,
    ) -> Response:
        """Sends one request and waits for its answer; raises CameraError on failure."""
        if self.closed.done():
            raise self.closed.result()
        assert self._transport is not None
        self._cseq += 1
        cseq = self._cseq
        waiter: asyncio.Future[Response] = self._loop.create_future()
        self._waiters[cseq] = waiter
        self._transport.write(build_request(method, url, cseq, headers))
        try:
            async with asyncio.timeout(timeout_s):
                return await waiter
        except TimeoutError as exc:
            if self.received_bytes == 0:  # a port that accepts and then stays silent
                raise CameraUnreachable(
                    f"no RTSP answer within {timeout_s:g} s"
                ) from exc
            raise CameraUnreachable(
                f"no answer to {method} within {timeout_s:g} s"
            ) from exc
        finally:
            self._waiters.pop(cseq, None)

    def send_nowait(
        self, method: str, url: str, headers: Mapping[str, str] | None = None
    ) -> None:
        """Sends a request whose answer nobody waits for (a keepalive, TEARDOWN)."""
        if self._transport is None or self._transport.is_closing():
            return
        self._cseq += 1
        self._transport.write(build_request(method, url, self._cseq, headers))

    def fail(self, error: NvrError) -> None:
        """Ends the connection with ``error`` as its reason (the first reason wins)."""
        if not self.closed.done():
            self.closed.set_result(error)
        for waiter in self._waiters.values():
            if not waiter.done():
                waiter.set_exception(error)
        if self._transport is not None:
            self._transport.close()

    def close(self) -> None:
        self.fail(CameraUnreachable("closed by the recorder"))

    # parsing

    def _parse(self, buf: bytes | bytearray) -> int:
        """Handles every complete frame and message in ``buf``; returns bytes consumed."""
        pos, size, channels = 0, len(buf), self.channels
        while pos < size:
            if buf[pos] == _DOLLAR:
                if pos + 5 > size:
                    break
                if not self._synced and not self._plausible(buf, pos):
                    pos += self._skip_junk(buf, pos, size)
                    continue
                self._synced = True
                end = pos + 4 + ((buf[pos + 2] << 8) | buf[pos + 3])
                if end > size:
                    break
                handler = channels.get(buf[pos + 1])
                if handler is not None:
                    handler(buf, pos + 4, end)
                else:
                    self.unrouted += 1
                self.frames += 1
                pos = end
                continue
            used = self._message(buf, pos, size)
            if used == 0:
                break
            pos += used
        return pos

    def _message(self, buf: bytes | bytearray, pos: int, size: int) -> int:
        """Consumes one answer, server request, or run of junk at ``pos``; 0 if partial."""
        if buf.startswith(b"RTSP/", pos) or _REQUEST_LINE.match(buf, pos):
            return self._complete_message(buf, pos, size)
        if size - pos < 5 and (b"RTSP/".startswith(bytes(buf[pos:size]))):
            return 0  # perhaps the start of an answer
        if size - pos <= MAX_HEADER_BYTES and _REQUEST_LINE_START.fullmatch(
            buf, pos, size
        ):
            return 0  # perhaps the start of a request from the camera
        if buf[pos] in _STRAY:
            return 1
        return self._skip_junk(buf, pos, size)

    def _complete_message(self, buf: bytes | bytearray, pos: int, size: int) -> int:
        end = header_end(buf, pos)
        if end == -1:
            if size - pos > MAX_HEADER_BYTES:
                raise CameraProtocolError("RTSP header longer than 16 KiB")
            return 0
        first, headers = parse_head(bytes(buf[pos:end]).rstrip(b"\r\n"))
        length = content_length(headers)
        if end + length > size:
            return 0
        body = bytes(buf[end : end + length])
        if first.startswith("RTSP/"):
            status, reason = parse_status_line(first)
            self._answered(Response(status, reason, headers, body))
        else:
            self._server_request(first, headers)
        return end + length - pos

    def _answered(self, response: Response) -> None:
        waiter = self._waiters.get(response.cseq) if response.cseq is not None else None
        if waiter is None and len(self._waiters) == 1:
            waiter = next(iter(self._waiters.values()))  # a camera that botches CSeq
        if waiter is not None and not waiter.done():
            waiter.set_result(response)

    def _server_request(self, first: str, headers: Mapping[str, list[str]]) -> None:
        """Answers a request the camera sent us (RFC 2326 allows OPTIONS and others)."""
        method = first.split(" ", 1)[0]
        cseq = (headers.get("cseq") or ["0"])[0]
        status = (
            "200 OK"
            if method in ("OPTIONS", "GET_PARAMETER")
            else "501 Not Implemented"
        )
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(f"RTSP/1.0 {status}\r\nCSeq: {cseq}\r\n\r\n".encode())

    def _skip_junk(self, buf: bytes | bytearray, pos: int, size: int) -> int:
        """Skips to the next byte that can start a valid frame; a torn TCP stream
        (a proxy or network that lost bytes) resumes there."""
        if self._waiters and self.frames == 0:
            raise CameraProtocolError("the camera answered something that is not RTSP")
        self._synced = False
        scan = pos + 1
        while True:
            scan = buf.find(b"$", scan)
            if scan == -1 or scan + 5 > size:
                stop = size if scan == -1 else scan
                break
            if self._plausible(buf, scan):
                stop = scan
                break
            scan += 1
        self.junk_bytes += stop - pos
        return stop - pos

    def _plausible(self, buf: bytes | bytearray, pos: int) -> bool:
        """Whether ``buf[pos:]`` looks like a frame: a channel we set up, and RTP/RTCP
        version 2 in the first byte of the packet."""
        return buf[pos + 1] in self.channels and buf[pos + 4] >> 6 == 2
