"""Fixtures for the auth tests: the real app on a real SQLite index, a token per role."""

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from nvr.api.app import ApiContext, make_app
from nvr.auth.limiter import FailureLimiter
from nvr.auth.middleware import AUTH
from nvr.auth.permissions import Permission, Role
from nvr.auth.tokens import create_token, revoke_token
from nvr.config import CameraConfig, Config
from nvr.index import Index, open_index

CAMERAS = (
    CameraConfig(id="cam-a", url="rtsp://admin:pw-a@127.0.0.1:1/a", group="general"),
    CameraConfig(id="cam-b", url="rtsp://127.0.0.1:1/b", group="key-area"),
)


@dataclass(frozen=True)
class Tokens:
    """Bearer strings by client kind; None means no Authorization header."""

    by_kind: dict[str, str | None]


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return Config.model_validate(
        {
            "storage": {"root": str(tmp_path / "segments")},
            "index": {"url": f"sqlite:///{tmp_path / 'index.db'}"},
            "cameras": [c.model_dump() for c in CAMERAS],
        }
    )


@pytest.fixture
def index(config: Config) -> Iterator[Index]:
    opened = open_index(config.index.url)
    opened.sync_groups_and_cameras(config.groups, config.cameras)
    yield opened
    opened.close()


async def _index_call(function: Callable[..., Any], *args: Any) -> Any:
    return await asyncio.to_thread(function, *args)


def build_app(
    config: Config, index: Index, max_failures: int = 10**6
) -> web.Application:
    app = make_app(ApiContext(config, {}, index, _index_call))
    app[AUTH].limiter = FailureLimiter(max_failures=max_failures)
    return app


@pytest.fixture
def tokens(index: Index) -> Tokens:
    revoked = create_token(index, "gone", Role.ADMIN)
    revoke_token(index, "gone")
    return Tokens(
        {
            "none": None,
            "wrong": "nvr_0123456789abcdef_" + "x" * 43,
            "revoked": revoked,
            "viewer": create_token(index, "viewer", Role.VIEWER),
            "viewer-other-camera": create_token(
                index, "viewer-b", Role.VIEWER, cameras=("cam-b",)
            ),
            "operator": create_token(index, "operator", Role.OPERATOR),
            "admin": create_token(index, "admin", Role.ADMIN),
            "auditor": create_token(index, "auditor", Role.AUDITOR),
            "auditor-playback": create_token(
                index,
                "auditor-p",
                Role.AUDITOR,
                grants=frozenset({Permission.PLAYBACK}),
            ),
        }
    )


def bearer(token: str | None) -> dict[str, str]:
    return {} if token is None else {"Authorization": f"Bearer {token}"}
