"""HTTP byte ranges (RFC 9110, 14) of a body of known size: one range, or the whole."""

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
