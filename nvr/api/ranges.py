"""HTTP byte ranges (RFC 9110, 14) of a body of known size: one range, or the whole."""

import asyncio
from collections.abc import Callable

from aiohttp import web


def byte_range(request: web.Request, size: int) -> tuple[int, int] | None:
    """The requested byte range as [first, last + 1), None for the whole body.

    A Range header nvr does not support (another unit, several ranges, bad syntax) is
    ignored and the whole body is sent, as RFC 9110 (14.2) allows; a well-formed range
    outside the body is 416 with the body's size.
    """
    header = request.headers.get("Range", "")
    if not header.startswith("bytes=") or "," in header:
        return None
    try:
        wanted = request.http_range
    except ValueError:
        return None
    first, stop = wanted.start, wanted.stop
    if first is None:
        return None
    if first < 0:  # a suffix range: the last -first bytes
        first, stop = max(size + first, 0), size
    elif header.strip() == "bytes=-0":
        first, stop = size, size  # the last zero bytes: nothing to send
    stop = size if stop is None else min(stop, size)
    if first >= size or stop <= first:
        raise web.HTTPRequestRangeNotSatisfiable(
            headers={"Content-Range": f"bytes */{size}"}
        )
    return first, stop


async def send_span(
    response: web.StreamResponse,
    read: Callable[[int, int], bytes],
    span: tuple[int, int],
    chunk_bytes: int,
) -> bool:
    """Writes bytes [first, stop) of a body as ``read(offset, length)`` gives them, each
    read in a thread (it blocks on disk or S3), then ends the response.

    Returns False when the client hung up first: players close a download whenever the
    user seeks or stops, so this is routine, not an error. A read that comes back short
    (a file shrank under us) ends the body early; the client sees a short body.
    """
    offset, stop = span
    try:
        while offset < stop:
            chunk = await asyncio.to_thread(
                read, offset, min(chunk_bytes, stop - offset)
            )
            if not chunk:
                break
            await response.write(chunk)
            offset += len(chunk)
        await response.write_eof()
    except ConnectionResetError:  # aiohttp's ClientConnectionResetError is one
        return False
    return True
