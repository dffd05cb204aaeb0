"""RtspSession against small scripted RTSP servers on loopback."""

import asyncio
import base64
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest

from nvr.errors import CameraRefused
from nvr.rtsp.session import RtspSession, parse_target

Answer = Callable[[str, dict[str, str]], bytes]


class ScriptedServer:
    """Answers each RTSP request with what ``answer(method, headers)`` returns and
    keeps every request it got as (method, headers)."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.requests: list[tuple[str, dict[str, str]]] = []

    async def handle(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                lines = head.decode().split("\r\n")
                method = lines[0].split(" ")[0]
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        name, _, value = line.partition(":")
                        headers[name.strip().lower()] = value.strip()
                self.requests.append((method, headers))
                writer.write(self.answer(method, headers))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@asynccontextmanager
async def serving(answer: Answer) -> AsyncIterator[tuple[ScriptedServer, int]]:
    server = ScriptedServer(answer)
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    try:
        yield server, port
    finally:
        listener.close()
        await listener.wait_closed()


def _reply(headers: dict[str, str], status: str, *extra: str) -> bytes:
    lines = [f"RTSP/1.0 {status}", f"CSeq: {headers.get('cseq', '0')}", *extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _basic_then(
    on_authorized: Callable[[str, dict[str, str]], bytes],
) -> Answer:
    def answer(method: str, headers: dict[str, str]) -> bytes:
        if method == "OPTIONS":
            return _reply(headers, "200 OK", "Public: DESCRIBE, SETUP, PLAY")
        if "authorization" not in headers:
            return _reply(
                headers, "401 Unauthorized", 'WWW-Authenticate: Basic realm="c"'
            )
        return on_authorized(method, headers)

    return answer


def _credentials_seen(server: ScriptedServer) -> list[str]:
    return [h["authorization"] for _, h in server.requests if "authorization" in h]


async def test_session_redirect_to_other_server_sends_it_no_credentials() -> None:
    def other_answer(method: str, headers: dict[str, str]) -> bytes:
        if method == "OPTIONS":
            return _reply(headers, "200 OK")
        return _reply(headers, "401 Unauthorized", 'WWW-Authenticate: Basic realm="x"')

    async with serving(other_answer) as (other, other_port):

        def camera_answer(method: str, headers: dict[str, str]) -> bytes:
            location = f"Location: rtsp://127.0.0.1:{other_port}/evil"
            return _reply(headers, "302 Moved", location)

        async with serving(_basic_then(camera_answer)) as (camera, camera_port):
            url = f"rtsp://admin:S3cret@127.0.0.1:{camera_port}/stream"
            session = RtspSession(parse_target(url), 5.0)

            with pytest.raises(CameraRefused) as refused:
                await session.open(lambda media: False)

    assert _credentials_seen(other) == []
    assert "redirected to another server" in str(refused.value)
    assert "S3cret" not in str(refused.value)
    sent = base64.b64decode(_credentials_seen(camera)[0].split()[1]).decode()
    assert sent == "admin:S3cret"  # the camera itself did get them


async def test_session_redirect_to_same_server_other_path_keeps_credentials() -> None:
    def camera_answer(method: str, headers: dict[str, str]) -> bytes:
        return _reply(headers, "404 Not Found")

    async with serving(_basic_then(camera_answer)) as (camera, port):

        def redirect_once(method: str, headers: dict[str, str]) -> bytes:
            if method == "DESCRIBE" and len(camera.requests) < 4:
                return _reply(
                    headers, "302 Moved", f"Location: rtsp://127.0.0.1:{port}/b"
                )
            return camera_answer(method, headers)

        camera.answer = _basic_then(redirect_once)
        session = RtspSession(parse_target(f"rtsp://u:pw@127.0.0.1:{port}/a"), 5.0)

        with pytest.raises(CameraRefused) as refused:
            await session.open(lambda media: False)

    assert refused.value.status == 404  # reached the new path with credentials
    assert len(_credentials_seen(camera)) >= 2
