"""A faulty TCP proxy put in front of a simulated camera to inject network faults.

RTSP over TCP interleaves RTP in the same connection as the RTSP dialogue, so faults
injected at the TCP level reach the media exactly as a bad network or a broken camera
would: a pause stops every byte, dropped chunks tear RTP packets apart, garbage replaces
the camera's bytes. The proxy runs its own asyncio loop on a daemon thread; the test
side changes ``mode`` (and the knobs) from any thread.
"""

import asyncio
import enum
import logging
import random
import threading
from types import TracebackType
from typing import Self

from nvr.errors import NvrError
from nvr.log import fields

log = logging.getLogger(__name__)

_CHUNK = 65536


class ProxyMode(enum.Enum):
    """What the proxy does with bytes from now on."""

    FORWARD = "forward"  # a healthy network
    PAUSE = "pause"  # nothing moves either way; connections stay open
    BLACKHOLE = "blackhole"  # new connections are accepted and never answered
    GARBAGE = "garbage"  # the camera's bytes are replaced by random bytes


class FaultyProxy:
    """Listens on 127.0.0.1:``port`` and relays to 127.0.0.1:``target_port``.

    Knobs, read for every chunk: ``mode``; ``drop_rate``, the share of camera-to-client
    chunks thrown away; ``delay_s``, added before each camera-to-client chunk.
    """

    def __init__(self, target_port: int, seed: int = 7) -> None:
        self.target_port = target_port
        self.port = 0
        self.mode = ProxyMode.FORWARD
        self.drop_rate = 0.0
        self.delay_s = 0.0
        self.connections = 0  # accepted so far
        self._random = random.Random(seed)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="proxy", daemon=True
        )
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        """The camera URL as seen through the proxy."""
        return f"rtsp://127.0.0.1:{self.port}/stream"

    def start(self) -> None:
        """Starts listening; returns once the port is bound."""
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._listen(), self._loop)
        self.port = future.result(timeout=10)

    def stop(self) -> None:
        """Closes the listener and every connection, then ends the loop thread."""
        if not self._thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(
            timeout=10
        )
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def cut(self) -> None:
        """Closes every open connection at once, as a network reset would."""
        asyncio.run_coroutine_threadsafe(self._close_all(), self._loop).result(
            timeout=10
        )

    async def _listen(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        sockets = self._server.sockets
        if not sockets:
            raise NvrError("proxy could not listen")
        port: int = sockets[0].getsockname()[1]
        return port

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        await self._close_all()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _close_all(self) -> None:
        for writer in list(self._writers):
            writer.close()
        self._writers.clear()

    async def _serve(
        self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter
    ) -> None:
        self.connections += 1
        self._writers.add(client_w)
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        try:
            if self.mode == ProxyMode.BLACKHOLE:
                await client_r.read()  # hold the connection, say nothing, until it goes
                return
            if self.mode == ProxyMode.GARBAGE:
                await self._spew(client_w)
                return
            try:
                camera_r, camera_w = await asyncio.open_connection(
                    "127.0.0.1", self.target_port
                )
            except OSError as exc:
                log.info(
                    "proxy: camera refused %s", fields(port=self.target_port, error=exc)
                )
                return
            self._writers.add(camera_w)
            await asyncio.gather(
                self._pipe(client_r, camera_w, upstream=True),
                self._pipe(camera_r, client_w, upstream=False),
                return_exceptions=True,
            )
        finally:
            for writer in (client_w,):
                writer.close()
                self._writers.discard(writer)

    async def _spew(self, writer: asyncio.StreamWriter) -> None:
        """Sends random bytes until the client hangs up."""
        while not writer.is_closing():
            writer.write(self._random.randbytes(1400))
            await writer.drain()
            await asyncio.sleep(0.01)

    async def _pipe(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        upstream: bool,
    ) -> None:
        try:
            while True:
                chunk = await reader.read(_CHUNK)
                if not chunk:
                    break
                # mode is set from the test's thread, where an asyncio.Event cannot be set
                while self.mode == ProxyMode.PAUSE:  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
                if not upstream:
                    chunk = await self._damage(chunk)
                if chunk:
                    writer.write(chunk)
                    await writer.drain()
        except (ConnectionError, OSError):
            pass  # either side went away: end this direction quietly
        finally:
            writer.close()
            self._writers.discard(writer)

    async def _damage(self, chunk: bytes) -> bytes:
        """Applies the camera-to-client faults to one chunk."""
        if self.delay_s > 0:
            await asyncio.sleep(self.delay_s)
        if self.mode == ProxyMode.GARBAGE:
            return self._random.randbytes(len(chunk))
        if self.drop_rate > 0 and self._random.random() < self.drop_rate:
            return b""
        return chunk

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
