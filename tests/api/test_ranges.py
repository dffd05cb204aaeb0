"""Streaming a body to a client that may hang up (nvr.api.ranges.send_span)."""

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from aiohttp import ClientSession, web

from nvr.api.ranges import send_span

BODY_BYTES = 256 * 1024 * 1024  # far more than the socket buffers hold


@asynccontextmanager
async def serving(outcomes: list[bool]) -> AsyncIterator[str]:
    """A real server on loopback whose /clip streams BODY_BYTES through send_span."""

    async def clip(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.content_length = BODY_BYTES
        await response.prepare(request)
        span = (0, BODY_BYTES)
        outcomes.append(await send_span(response, _zeros, span, 1 << 20))
        return response

    app = web.Application()
    app.router.add_get("/clip", clip)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/clip"
    finally:
        await runner.cleanup()


def _zeros(offset: int, length: int) -> bytes:
    return bytes(length)


async def _settled(outcomes: list[bool]) -> list[bool]:
    for _ in range(100):
        if outcomes:
            break
        await asyncio.sleep(0.05)
    return outcomes


async def test_send_span_client_hangs_up_midway_returns_false_logs_no_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    outcomes: list[bool] = []
    caplog.set_level(logging.DEBUG)

    async with serving(outcomes) as url, ClientSession() as session:
        response = await session.get(url)
        await response.content.readexactly(1 << 20)
        response.close()  # a player seeking elsewhere drops the connection

        assert await _settled(outcomes) == [False]

    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_send_span_whole_body_read_returns_true() -> None:
    outcomes: list[bool] = []

    async with serving(outcomes) as url, ClientSession() as session:
        response = await session.get(url)
        size = 0
        async for chunk in response.content.iter_chunked(1 << 20):
            size += len(chunk)

        assert size == BODY_BYTES
        assert await _settled(outcomes) == [True]
