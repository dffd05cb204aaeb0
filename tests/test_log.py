import logging

import pytest

from nvr.log import fields, redact_text, redact_url, setup_logging


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
