"""Camera passwords from the environment or a file; never in API output or log lines."""

import logging
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from nvr.auth.permissions import Role
from nvr.auth.tokens import create_token
from nvr.config import Config, parse_config
from nvr.errors import ConfigError
from nvr.index import open_index

from .conftest import bearer, build_app

PASSWORD = "Tr0ub4dor&3:s3cret/x"


def _camera_config(tmp_path: Path, secret_line: str) -> str:
    return (
        f'[index]\nurl = "sqlite:///{tmp_path / "index.db"}"\n\n'
        '[[cameras]]\nid = "door"\nurl = "rtsp://admin@127.0.0.1:8554/stream"\n'
        f"{secret_line}\n"
    )


def _assert_no_password(text: str) -> None:
    assert PASSWORD not in text
    assert quote(PASSWORD, safe="") not in text


def test_password_env_put_into_url_for_the_named_user(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOOR_PASSWORD", PASSWORD)

    config = parse_config(_camera_config(tmp_path, 'password_env = "DOOR_PASSWORD"'))

    url = config.cameras[0].url
    assert url.startswith(f"rtsp://admin:{quote(PASSWORD, safe='')}@127.0.0.1:8554/")
    _assert_no_password(repr(config))


def test_password_file_trailing_newline_dropped(tmp_path: Path) -> None:
    secret = tmp_path / "door.secret"
    secret.write_text(PASSWORD + "\n")

    config = parse_config(_camera_config(tmp_path, f'password_file = "{secret}"'))

    assert f":{quote(PASSWORD, safe='')}@" in config.cameras[0].url


def test_password_env_unset_error_names_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'NOT_SET_ANYWHERE' is not set"):
        parse_config(_camera_config(tmp_path, 'password_env = "NOT_SET_ANYWHERE"'))


def test_password_env_and_file_together_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOOR_PASSWORD", PASSWORD)
    lines = f'password_env = "DOOR_PASSWORD"\npassword_file = "{tmp_path / "f"}"'

    with pytest.raises(ConfigError, match="exclusive") as caught:
        parse_config(_camera_config(tmp_path, lines))

    _assert_no_password(str(caught.value))


def test_password_with_url_already_holding_one_refused_without_echo(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DOOR_PASSWORD", PASSWORD)
    text = (
        '[[cameras]]\nid = "door"\nurl = "rtsp://admin:inline-pw@127.0.0.1/s"\n'
        'password_env = "DOOR_PASSWORD"\n'
    )

    with pytest.raises(ConfigError, match="already holds a password") as caught:
        parse_config(text)

    _assert_no_password(str(caught.value))
    assert "inline-pw" not in str(caught.value)


async def test_cameras_api_and_logs_never_show_password(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    aiohttp_client: Any,
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("DOOR_PASSWORD", PASSWORD)
    loaded = parse_config(_camera_config(tmp_path, 'password_env = "DOOR_PASSWORD"'))
    config = Config.model_validate(
        {**loaded.model_dump(), "storage": {"root": str(tmp_path / "segments")}}
    )
    index = open_index(config.index.url)
    index.sync_groups_and_cameras(config.groups, config.cameras)
    admin = create_token(index, "admin", Role.ADMIN)
    client = await aiohttp_client(build_app(config, index))
    query = "start=2026-01-01T00:00:00Z&end=2026-01-01T00:10:00Z"

    try:
        listing = await client.get("/api/v1/cameras", headers=bearer(admin))
        body = await listing.text()
        for path in (
            "/api/v1/cameras/door/recordings",
            "/api/v1/cameras/door/video.mp4",
            "/api/v1/cameras/nope/recordings",
        ):
            response = await client.get(f"{path}?{query}", headers=bearer(admin))
            body += await response.text()
    finally:
        index.close()

    assert listing.status == 200
    assert "rtsp://***@127.0.0.1:8554/stream" in body
    _assert_no_password(body)
    _assert_no_password("\n".join(r.getMessage() for r in caplog.records))
