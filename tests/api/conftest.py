"""Fixtures for the API tests: a real archive (fMP4 files + SQLite index) and tokens."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from nvr.api.app import ApiContext
from nvr.auth.permissions import Role
from nvr.auth.tokens import create_token
from nvr.ingest.events import CameraState, CameraStatus
from tests.evidence.support import Archive, build_archive, cut_segments, index_call
from tests.index.conftest import postgres_url  # noqa: F401 (a fixture used below)

PACKET_T_US = 1_767_225_700_000_000


@pytest.fixture(scope="session")
def api_media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Path]]:
    base = tmp_path_factory.mktemp("api-media")
    return {
        "a": cut_segments(base / "a", seconds=8, segment_s=4, offset_s=0),
        "b": cut_segments(base / "b", seconds=4, segment_s=4, offset_s=20),
    }


@pytest.fixture
def archive(tmp_path: Path, api_media: dict[str, list[Path]]) -> Iterator[Archive]:
    built = build_archive(tmp_path, api_media)
    yield built
    built.index.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_archive(
    request: pytest.FixtureRequest, tmp_path: Path, api_media: dict[str, list[Path]]
) -> Iterator[Archive]:
    """The archive indexed in SQLite, then in a fresh PostgreSQL database."""
    url = None if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    built = build_archive(tmp_path, api_media, url)
    yield built
    built.index.close()


@pytest.fixture
def states() -> dict[str, CameraState]:
    return {
        "cam1": CameraState(
            "cam1",
            CameraStatus.RECORDING,
            last_packet_us=PACKET_T_US,
            bitrate_bps=512_000,
            packets=1234,
            bytes=987_654,
            reconnects=2,
        )
    }


@pytest.fixture
def context(archive: Archive, states: dict[str, CameraState]) -> ApiContext:
    return ApiContext(archive.config, states, archive.index, index_call)


def bearer(archive: Archive, name: str, role: Role) -> dict[str, str]:
    return {"Authorization": f"Bearer {create_token(archive.index, name, role)}"}
