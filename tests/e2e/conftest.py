"""Runs ``nvr serve`` as a real process against simulated cameras."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def child_pids(pid: int) -> list[int]:
    """The direct children of ``pid`` (Linux /proc)."""
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return children


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "State:\tZ" not in status


class RecorderProcess:
    """One ``nvr serve`` process with its own storage, index and port."""

    def __init__(
        self, workdir: Path, cameras: list[tuple[str, str]], **recording: Any
    ) -> None:
        self.workdir = workdir
        self.port = _free_port()
        self.storage = workdir / "segments"
        self.index_url = f"sqlite:///{workdir / 'index.db'}"
        self.log_path = workdir / "nvr.log"
        settings = {
            "segment_seconds": 10,
            "stall_seconds": 4,
            "backoff_initial_seconds": 0.5,
        }
        settings.update(recording)
        lines = [
            f'[storage]\nroot = "{self.storage}"',
            f'[index]\nurl = "{self.index_url}"',
            f'[http]\nlisten = "127.0.0.1:{self.port}"',
            "[recording]\n" + "\n".join(f"{k} = {v}" for k, v in settings.items()),
        ]
        lines += [f'[[cameras]]\nid = "{cid}"\nurl = "{url}"' for cid, url in cameras]
        self.config_path = workdir / "nvr.toml"
        self.config_path.write_text("\n\n".join(lines) + "\n")
        self.process: subprocess.Popen[bytes] | None = None
        self.token: str | None = None
        self.env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")

    def create_token(self, role: str = "admin", name: str = "e2e") -> str:
        """Creates a token with the real CLI, as an admin would."""
        command = [sys.executable, "-m", "nvr", "token", "create"]
        command += ["--config", str(self.config_path), "--role", role, "--name", name]
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            env=self.env,
            cwd=self.workdir,
            check=True,
        )
        return done.stdout.strip().splitlines()[-1]

    def start(self) -> None:
        if self.token is None:
            self.token = self.create_token()
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "nvr", "serve", "--config", str(self.config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.env,
            cwd=self.workdir,
            start_new_session=True,  # its own process group, so kill() can take it all
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log_text()
            try:
                self.get_json("/healthz")
                return
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.2)
        raise AssertionError("nvr serve did not answer /healthz within 30 s")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is None:
            return
        self.process.send_signal(sig)
        try:
            self.process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def kill(self, *, group: bool) -> list[int]:
        """SIGKILLs ``nvr serve``, with its workers if ``group``; returns the worker pids."""
        assert self.process is not None
        pid = self.process.pid
        workers = child_pids(pid)
        if group:
            os.killpg(pid, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)
        self.process.wait()
        self.process = None
        return workers

    def log_text(self) -> str:
        return (
            self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        )

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def get(
        self, path: str, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        sent = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        sent.update(headers or {})
        request = urllib.request.Request(self.url(path), headers=sent)
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read()

    def get_json(self, path: str) -> Any:
        status, _, body = self.get(path)
        return json.loads(body) if status < 500 else {"status": status}

    def wait_for(self, predicate: Any, timeout_s: float, what: str) -> Any:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.5)
        raise AssertionError(f"timed out waiting for {what}\n{self.log_text()[-4000:]}")


@pytest.fixture
def recorder_factory(tmp_path: Path) -> Iterator[Any]:
    started: list[RecorderProcess] = []

    def make(cameras: list[tuple[str, str]], **recording: Any) -> RecorderProcess:
        recorder = RecorderProcess(tmp_path, cameras, **recording)
        started.append(recorder)
        return recorder

    yield make
    for recorder in started:
        recorder.stop()
