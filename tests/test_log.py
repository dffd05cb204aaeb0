import asyncio
import logging
from collections.abc import Iterator

import pytest
from aiohttp import web

from nvr.log import fields, redact_text, redact_url, setup_logging


@pytest.fixture(autouse=True)
def _restore_root_logging() -> Iterator[None]:
    """setup_logging points the root logger at this test's captured stderr; later tests
    must not log into it once it is closed."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_redact_url_removes_user_and_password() -> None:
    assert redact_url("rtsp://admin:s3cret@192.0.2.10:554/stream1") == (
        "rtsp://***@192.0.2.10:554/stream1"
    )
    assert redact_url("rtsp://192.0.2.10/stream1") == "rtsp://192.0.2.10/stream1"


def test_redact_text_masks_url_inside_an_error_message() -> None:
    text = "rtsp://admin:s3cret@10.0.0.1/x: Server returned 401 Unauthorized"
    assert "s3cret" not in redact_text(text)
    assert "401 Unauthorized" in redact_text(text)


def test_fields_quotes_values_with_spaces() -> None:
    assert fields(camera="gate", error="connection refused") == (
        'camera=gate error="connection refused"'
    )


def test_setup_logging_never_prints_a_password(
    capsys: pytest.CaptureFixture[str],
) -> None:
    setup_logging("INFO")
    logging.getLogger("nvr.test").warning("open failed %s", "rtsp://u:hunter2@h/s")
    assert "hunter2" not in capsys.readouterr().err


async def test_setup_logging_oversized_request_header_one_warning_no_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    setup_logging("INFO")
    app = web.Application()
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nRange: bytes=" + b"0-1," * 3000 + b"\r\n\r\n")
        answer = await reader.read(100)
        writer.close()
    finally:
        await runner.cleanup()

    err = capsys.readouterr().err
    assert answer.startswith(b"HTTP/1.0 400")
    assert "WARNING aiohttp.server malformed HTTP request refused" in err
    assert "Traceback" not in err and " ERROR " not in err
