"""End to end: record a password-protected camera and play a clip back through ``nvr
serve``; neither the log nor any API answer contains the camera password."""

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from nvr.simulate.cameras import free_port
from nvr.timeutil import format_rfc3339, parse_rfc3339_us, wall_now_us

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "cam-Secret-7f3a9"
WRONG_PASSWORD = "wrong-Secret-42bb"


def _get(port: int, path: str, token: str) -> tuple[int, bytes]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _wait(predicate: Any, timeout_s: float, what: str, log: Path) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}\n{log.read_text()[-3000:]}")


def test_serve_recording_and_playback_logs_never_contain_camera_password(
    tmp_path: Path, rtsp_camera_factory: Any
) -> None:
    good = rtsp_camera_factory(codec="h264", user="admin", password=PASSWORD)
    denied = rtsp_camera_factory(codec="h264", user="admin", password=PASSWORD)
    secret_file = tmp_path / "door.secret"
    secret_file.write_text(PASSWORD + "\n")
    port = free_port()
    config = tmp_path / "nvr.toml"
    config.write_text(
        f'[storage]\nroot = "{tmp_path / "segments"}"\n'
        f'[index]\nurl = "sqlite:///{tmp_path / "index.db"}"\n'
        f'[http]\nlisten = "127.0.0.1:{port}"\n'
        "[recording]\nsegment_seconds = 3\nbackoff_initial_seconds = 0.5\n\n"
        f'[[cameras]]\nid = "door"\nurl = "rtsp://admin@127.0.0.1:{good.port}/stream"\n'
        f'password_file = "{secret_file}"\n\n'
        f'[[cameras]]\nid = "gate"\nurl = "rtsp://admin@127.0.0.1:{denied.port}/stream"\n'
        'password_env = "GATE_PASSWORD"\n'
    )
    assert good.url.endswith("/stream"), good.url
    env = dict(
        os.environ,
        PYTHONPATH=str(REPO),
        PYTHONUNBUFFERED="1",
        GATE_PASSWORD=WRONG_PASSWORD,
    )
    command = [sys.executable, "-m", "nvr"]
    created = subprocess.run(
        [
            *command,
            "token",
            "create",
            "--config",
            str(config),
            "--role",
            "admin",
            "--name",
            "e2e",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    token = created.stdout.strip()
    log = tmp_path / "nvr.log"
    began_us = wall_now_us()
    with log.open("ab") as sink:
        process = subprocess.Popen(
            [*command, "serve", "--config", str(config), "--log-level", "DEBUG"],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=tmp_path,
        )
    try:

        def recorded() -> list[Any]:
            assert process.poll() is None, log.read_text()[-3000:]
            query = (
                f"start={format_rfc3339(began_us)}&end={format_rfc3339(wall_now_us())}"
            )
            try:
                status, body = _get(
                    port, f"/api/v1/cameras/door/recordings?{query}", token
                )
            except (urllib.error.URLError, ConnectionError):
                return []
            return list(json.loads(body)["segments"]) if status == 200 else []

        segments = _wait(
            lambda: len(recorded()) >= 2 and recorded(),
            90,
            "two segments of the door camera",
            log,
        )
        start_us = parse_rfc3339_us(segments[0]["start"])
        clip = f"start={format_rfc3339(start_us)}&end={format_rfc3339(start_us + 4_000_000)}"
        clip_status, clip_body = _get(
            port, f"/api/v1/cameras/door/video.mp4?{clip}", token
        )
        _, cameras_body = _get(port, "/api/v1/cameras", token)
        _, unauthorized = _get(
            port, "/api/v1/cameras", "nvr_0123456789abcdef_" + "x" * 43
        )
    finally:
        process.terminate()
        process.wait(timeout=40)

    assert clip_status == 200 and clip_body[4:8] == b"ftyp"
    cameras = json.loads(cameras_body)["cameras"]
    gate = next(c for c in cameras if c["id"] == "gate")
    assert gate["state"] != "recording"  # the wrong password really was tried
    text = (
        log.read_text(errors="replace") + cameras_body.decode() + unauthorized.decode()
    )
    for secret in (PASSWORD, WRONG_PASSWORD, token.rsplit("_", 1)[-1]):
        assert secret not in text
        assert quote(secret, safe="") not in text
