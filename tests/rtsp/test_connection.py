"""RtspConnection's parsing of a camera's byte stream (RFC 2326 §10.12): interleaved
frames and RTSP messages cut at arbitrary read boundaries, and junk, driven through
``data_received`` with a fake transport."""

import asyncio
import itertools
from collections.abc import Iterable
from typing import cast

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nvr.errors import CameraProtocolError, CameraUnreachable, StorageError
from nvr.rtsp.connection import FrameHandler, RtspConnection
from nvr.rtsp.messages import MAX_HEADER_BYTES, Response
from tests.rtsp.support import interleaved, noise, rtp_packet

URL = "rtsp://192.0.2.10/stream"


class FakeTransport:
    """What RtspConnection uses of an asyncio transport; keeps what was written."""

    def __init__(self) -> None:
        self.written = bytearray()
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written += data

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


class Camera:
    """A connection wired to a fake transport, recording the frames of each channel."""

    def __init__(self, channels: Iterable[int] = (0, 2)) -> None:
        self.connection = RtspConnection()
        self.transport = FakeTransport()
        self.connection.connection_made(cast(asyncio.Transport, self.transport))
        self.frames: list[tuple[int, bytes]] = []
        for channel in channels:
            self.connection.channels[channel] = self._handler(channel)

    def _handler(self, channel: int) -> FrameHandler:
        def handle(buf: bytes | bytearray, start: int, end: int) -> None:
            self.frames.append((channel, bytes(buf[start:end])))

        return handle

    def send(self, *chunks: bytes) -> None:
        for chunk in chunks:
            self.connection.data_received(chunk)


def frame(channel: int, seq: int, size: int = 40) -> bytes:
    return interleaved(channel, rtp_packet(seq, seq * 3000, noise(size)))


def payload(raw_frame: bytes) -> tuple[int, bytes]:
    """The (channel, packet) a frame should be delivered as."""
    return raw_frame[1], raw_frame[4:]


def answer(cseq: int, body: bytes = b"", extra: str = "") -> bytes:
    head = f"RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\n{extra}"
    if body:
        head += f"Content-Length: {len(body)}\r\n"
    return (head + "\r\n").encode() + body


def cut(data: bytes, *offsets: int) -> list[bytes]:
    bounds = [0, *offsets, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


async def pending(camera: Camera, method: str = "OPTIONS") -> "asyncio.Task[Response]":
    """A request sent and waiting for its answer."""
    task = asyncio.create_task(camera.connection.request(method, URL, timeout_s=5))
    await asyncio.sleep(0)
    return task


# frames


async def test_connection_frames_cut_at_every_offset_delivered_whole() -> None:
    frames = [frame(0, 1), frame(2, 2, size=1), frame(0, 3, size=300)]
    data = b"".join(frames)

    for offset in range(1, len(data)):
        camera = Camera()
        camera.send(*cut(data, offset))

        assert camera.frames == [payload(f) for f in frames], offset
        assert camera.connection.junk_bytes == 0


async def test_connection_frames_fed_byte_by_byte_delivered_whole() -> None:
    frames = [frame(0, seq) for seq in range(5)]
    data = b"".join(frames)
    camera = Camera()

    camera.send(*(data[i : i + 1] for i in range(len(data))))

    assert camera.frames == [payload(f) for f in frames]
    assert camera.connection.frames == 5
    assert camera.connection.received_bytes == len(data)


async def test_connection_frame_on_unset_channel_consumed_silently() -> None:
    camera = Camera(channels=(0,))
    rtcp = interleaved(1, b"\x80\xc8\x00\x06" + noise(24))
    video = frame(0, 1)

    camera.send(rtcp + video)

    assert camera.frames == [payload(video)]
    assert (camera.connection.frames, camera.connection.junk_bytes) == (2, 0)


async def test_connection_line_ends_between_frames_not_junk() -> None:
    camera = Camera()
    first, second = frame(0, 1), frame(0, 2)

    camera.send(first + b"\r\n", b"\n" + second)

    assert camera.frames == [payload(first), payload(second)]
    assert camera.connection.junk_bytes == 0


# answers


async def test_connection_answer_between_frames_resolves_request() -> None:
    camera = Camera()
    task = await pending(camera, "DESCRIBE")
    body = b"v=0\r\nm=video 0 RTP/AVP 96\r\n"
    before, after = frame(0, 1), frame(2, 2)
    data = before + answer(1, body, "Content-Base: rtsp://cam/s/\r\n") + after

    camera.send(*(data[i : i + 7] for i in range(0, len(data), 7)))

    response = await task
    assert camera.transport.written.startswith(
        b"DESCRIBE " + URL.encode() + b" RTSP/1.0"
    )
    assert (response.status, response.reason, response.cseq) == (200, "OK", 1)
    assert response.body == body
    assert response.header("content-base") == "rtsp://cam/s/"
    assert camera.frames == [payload(before), payload(after)]
    assert camera.connection.junk_bytes == 0


async def test_connection_answer_body_cut_waits_for_whole_body() -> None:
    camera = Camera()
    task = await pending(camera)
    data = answer(1, b"x" * 100)

    camera.send(data[:-1])
    await asyncio.sleep(0)
    assert not task.done()

    camera.send(data[-1:])
    assert (await task).body == b"x" * 100


async def test_connection_answers_matched_by_cseq() -> None:
    camera = Camera()
    first = await pending(camera, "SETUP")
    second = await pending(camera, "PLAY")

    camera.send(
        answer(2, extra="Range: npt=0-\r\n"), answer(1, extra="Session: s1\r\n")
    )

    assert (await first).header("session") == "s1"
    assert (await second).header("range") == "npt=0-"


async def test_connection_wrong_cseq_with_one_request_still_answers_it() -> None:
    camera = Camera()
    task = await pending(camera)

    camera.send(answer(99))

    assert (await task).status == 200


async def test_connection_bare_lf_answer_followed_by_frames_parsed() -> None:
    camera = Camera()
    task = await pending(camera, "PLAY")
    # the frame's payload holds CR LF CR LF: the answer's head must end before it
    follow = interleaved(0, rtp_packet(1, 0, b"\r\n\r\n" + noise(20)))

    camera.send(b"RTSP/1.0 200 OK\nCSeq: 1\nSession: 77\n\n" + follow)

    response = await task
    assert response.header("session") == "77"
    assert camera.frames == [payload(follow)]


async def test_connection_request_timeout_raises_unreachable() -> None:
    camera = Camera()

    with pytest.raises(CameraUnreachable, match="no RTSP answer within"):
        await camera.connection.request("OPTIONS", URL, timeout_s=0.01)


# requests from the camera


@pytest.mark.parametrize(
    ("request_line", "status"),
    [
        (b"OPTIONS * RTSP/1.0", b"200 OK"),
        (b"GET_PARAMETER rtsp://192.0.2.1/ RTSP/1.0", b"200 OK"),
        (b"SET_PARAMETER rtsp://192.0.2.1/ RTSP/1.0", b"501 Not Implemented"),
    ],
)
async def test_connection_camera_request_answered(
    request_line: bytes, status: bytes
) -> None:
    camera = Camera()
    before, after = frame(0, 1), frame(0, 2)

    camera.send(before + request_line + b"\r\nCSeq: 7\r\n\r\n" + after)

    assert (
        bytes(camera.transport.written)
        == b"RTSP/1.0 " + status + b"\r\nCSeq: 7\r\n\r\n"
    )
    assert camera.frames == [payload(before), payload(after)]
    assert camera.connection.junk_bytes == 0


@pytest.mark.parametrize("offset", [1, 4, 8, 10, 14, 18])
async def test_connection_camera_request_cut_in_first_line_answered(
    offset: int,
) -> None:
    # a read can end inside the request line: "OPTIO" + "NS * RTSP/1.0 ..."
    camera = Camera()
    before, after = frame(0, 1), frame(0, 2)
    request = b"OPTIONS * RTSP/1.0\r\nCSeq: 7\r\n\r\n"
    assert request[offset - 1 : offset + 1] != b"\r\n"

    camera.send(before + request[:offset], request[offset:] + after)

    assert bytes(camera.transport.written) == b"RTSP/1.0 200 OK\r\nCSeq: 7\r\n\r\n"
    assert camera.frames == [payload(before), payload(after)]
    assert camera.connection.junk_bytes == 0
    assert not camera.connection.closed.done()


# junk


async def test_connection_junk_between_frames_skipped_and_counted() -> None:
    camera = Camera()
    before, after = frame(0, 1), frame(2, 2)
    junk = b"\x17\x99garbage from a proxy\x00\x01"

    camera.send(before + junk + after)

    assert camera.frames == [payload(before), payload(after)]
    assert camera.connection.junk_bytes == len(junk)


async def test_connection_junk_with_false_dollars_resyncs_on_plausible_frame() -> None:
    camera = Camera()
    before, after = frame(0, 1), frame(2, 2)
    junk = (
        b"zz"
        + b"$\x07\x00\x08\x80\x60\x00\x01"  # channel 7 was never set up
        + b"$\x00\x00\x08\x10\x60\x00\x01"  # channel 0, but not RTP version 2
        + b"q$"
    )

    camera.send(before + junk + after)

    assert camera.frames == [payload(before), payload(after)]
    assert camera.connection.junk_bytes == len(junk)


@pytest.mark.parametrize("offset", range(1, 12))
async def test_connection_junk_cut_anywhere_counted_once(offset: int) -> None:
    camera = Camera()
    before, after = frame(0, 1), frame(0, 2)
    junk = b"xx$\x09yy$"
    data = before + junk + after

    camera.send(*cut(data, len(before) + offset))

    assert camera.frames == [payload(before), payload(after)]
    assert camera.connection.junk_bytes == len(junk)


async def test_connection_junk_before_answer_fails_pending_request() -> None:
    camera = Camera()
    task = await pending(camera)

    camera.send(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")

    with pytest.raises(CameraProtocolError, match="not RTSP"):
        await task
    assert isinstance(camera.connection.closed.result(), CameraProtocolError)
    assert camera.transport.closed


# limits and endings


async def test_connection_endless_header_fails_connection() -> None:
    camera = Camera()
    task = await pending(camera)

    camera.send(b"RTSP/1.0 200 OK\r\nX-Pad: ", b"a" * (MAX_HEADER_BYTES + 10))

    with pytest.raises(CameraProtocolError, match="longer than 16 KiB"):
        await task
    assert camera.transport.closed


async def test_connection_body_over_limit_fails_connection() -> None:
    camera = Camera()
    task = await pending(camera)

    camera.send(b"RTSP/1.0 200 OK\r\nCSeq: 1\r\nContent-Length: 99999999\r\n\r\n")

    with pytest.raises(CameraProtocolError, match="out of bounds"):
        await task


async def test_connection_lost_fails_pending_request() -> None:
    camera = Camera()
    task = await pending(camera)

    camera.connection.connection_lost(ConnectionResetError("reset by peer"))

    with pytest.raises(CameraUnreachable, match="ConnectionResetError"):
        await task
    assert isinstance(camera.connection.closed.result(), CameraUnreachable)


async def test_connection_handler_error_ends_run_with_that_error() -> None:
    camera = Camera(channels=())
    refusal = StorageError("disk full")

    def refuse(buf: bytes | bytearray, start: int, end: int) -> None:
        raise refusal

    camera.connection.channels[0] = refuse
    camera.send(frame(0, 1))

    assert camera.connection.closed.result() is refusal
    assert camera.transport.closed


async def test_connection_first_reason_wins() -> None:
    camera = Camera()

    camera.connection.close()
    camera.connection.connection_lost(None)

    reason = camera.connection.closed.result()
    assert isinstance(reason, CameraUnreachable)
    assert "closed by the recorder" in str(reason)


# any input


def run(chunks: list[bytes]) -> Camera:
    async def feed() -> Camera:
        camera = Camera()
        camera.send(*chunks)
        return camera

    return asyncio.run(feed())


# junk that cannot start a frame, a message or a line end
JUNK_BYTES = bytes(
    b for b in range(256) if b not in b"$\r\n_ABCDEFGHIJKLMNOPQRSTUVWXYZ"
)
junk = st.binary(min_size=1, max_size=30).map(
    lambda raw: bytes(JUNK_BYTES[b % len(JUNK_BYTES)] for b in raw)
)
frame_bytes = st.builds(
    lambda channel, seq, body: interleaved(channel, rtp_packet(seq, 0, body)),
    st.sampled_from([0, 2]),
    st.integers(0, 0xFFFF),
    st.binary(max_size=60),
)
answers = st.integers(1, 99).map(answer)


@settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
@given(data=st.data())
def test_connection_any_cuts_same_frames_and_junk(data: st.DataObject) -> None:
    items = data.draw(
        st.lists(
            st.one_of(
                frame_bytes.map(lambda f: (b"", f)),
                st.tuples(junk, frame_bytes),  # junk, then the frame that ends it
                answers.map(lambda a: (a, b"")),
            ),
            max_size=12,
        )
    )
    stream = b"".join(a + b for a, b in items)
    offsets = sorted(
        data.draw(st.sets(st.integers(1, max(1, len(stream) - 1)), max_size=8))
    )

    camera = run(cut(stream, *[o for o in offsets if o < len(stream)]))

    expected_frames = [payload(f) for a, f in items if f]
    expected_junk = sum(len(a) for a, f in items if f and a)
    assert camera.frames == expected_frames
    assert camera.connection.junk_bytes == expected_junk
    assert camera.connection.received_bytes == len(stream)


@settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
@given(chunks=st.lists(st.binary(max_size=100) | frame_bytes | answers, max_size=20))
def test_connection_random_bytes_never_raise(chunks: list[bytes]) -> None:
    camera = run(chunks)

    assert camera.connection.received_bytes == sum(len(c) for c in chunks)
    if camera.connection.closed.done():
        assert isinstance(camera.connection.closed.result(), CameraProtocolError)
