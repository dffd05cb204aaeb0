"""The auth middleware's behaviour beyond the matrix: scope, deny by default, actor, 429."""

from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from nvr.api.actor import request_actor
from nvr.auth import permissions
from nvr.auth.limiter import FailureLimiter
from nvr.auth.middleware import AUTH
from nvr.auth.permissions import Permission
from nvr.config import Config
from nvr.index import Index

from .conftest import Tokens, bearer, build_app


async def _whoami(request: web.Request) -> web.Response:
    return web.json_response({"actor": request_actor(request)})


async def test_cameras_listing_scoped_viewer_sees_only_its_cameras(
    config: Config, index: Index, tokens: Tokens, aiohttp_client: Any
) -> None:
    client = await aiohttp_client(build_app(config, index))

    scoped = await client.get(
        "/api/v1/cameras", headers=bearer(tokens.by_kind["viewer-other-camera"])
    )
    full = await client.get("/api/v1/cameras", headers=bearer(tokens.by_kind["viewer"]))

    assert [c["id"] for c in (await scoped.json())["cameras"]] == ["cam-b"]
    assert [c["id"] for c in (await full.json())["cameras"]] == ["cam-a", "cam-b"]


async def test_group_scope_camera_in_group_allowed_other_refused(
    config: Config, index: Index, aiohttp_client: Any
) -> None:
    from nvr.auth.permissions import Role
    from nvr.auth.tokens import create_token

    token = create_token(index, "key-area-viewer", Role.VIEWER, groups=("key-area",))
    client = await aiohttp_client(build_app(config, index))
    query = "start=2026-01-01T00:00:00Z&end=2026-01-01T00:10:00Z"

    allowed = await client.get(
        f"/api/v1/cameras/cam-b/recordings?{query}", headers=bearer(token)
    )
    refused = await client.get(
        f"/api/v1/cameras/cam-a/recordings?{query}", headers=bearer(token)
    )

    assert allowed.status == 200
    assert refused.status == 403


async def test_route_without_declared_permission_refused_even_for_admin(
    config: Config, index: Index, tokens: Tokens, aiohttp_client: Any
) -> None:
    app = build_app(config, index)
    app.router.add_get("/api/v1/undeclared", _whoami)
    client = await aiohttp_client(app)

    response = await client.get(
        "/api/v1/undeclared", headers=bearer(tokens.by_kind["admin"])
    )

    assert response.status == 403
    assert "no declared permission" in (await response.json())["error"]["message"]


async def test_actor_is_the_token_name(
    config: Config,
    index: Index,
    tokens: Tokens,
    aiohttp_client: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(
        permissions.ROUTE_PERMISSIONS, ("GET", "/api/v1/whoami"), Permission.KEYS_READ
    )
    app = build_app(config, index)
    app.router.add_get("/api/v1/whoami", _whoami)
    client = await aiohttp_client(app)

    response = await client.get(
        "/api/v1/whoami", headers=bearer(tokens.by_kind["operator"])
    )

    assert (await response.json()) == {"actor": "operator"}


async def test_unknown_path_without_token_401_with_token_404(
    config: Config, index: Index, tokens: Tokens, aiohttp_client: Any
) -> None:
    client = await aiohttp_client(build_app(config, index))

    anonymous = await client.get("/api/v1/nothing-here")
    known = await client.get(
        "/api/v1/nothing-here", headers=bearer(tokens.by_kind["viewer"])
    )

    assert anonymous.status == 401
    assert known.status == 404


@pytest.mark.parametrize(
    "header", ["Basic dXNlcjpwdw==", "Bearer", "Bearer   ", "bearer nvr_short", "nvr_x"]
)
async def test_malformed_authorization_header_401(
    config: Config, index: Index, aiohttp_client: Any, header: str
) -> None:
    client = await aiohttp_client(build_app(config, index))

    response = await client.get("/api/v1/cameras", headers={"Authorization": header})

    assert response.status == 401


async def test_healthz_public_without_token(
    config: Config, index: Index, aiohttp_client: Any
) -> None:
    client = await aiohttp_client(build_app(config, index))

    response = await client.get("/healthz")

    assert response.status == 200


async def test_repeated_failures_from_one_address_get_429_valid_token_still_passes(
    config: Config, index: Index, tokens: Tokens, aiohttp_client: Any
) -> None:
    now_s = [1000.0]
    app = build_app(config, index)
    app[AUTH].limiter = FailureLimiter(
        max_failures=3, window_s=60, clock=lambda: now_s[0]
    )
    client = await aiohttp_client(app)
    wrong = bearer(tokens.by_kind["wrong"])
    good = bearer(tokens.by_kind["viewer"])

    statuses = [
        (await client.get("/api/v1/cameras", headers=wrong)).status for _ in range(4)
    ]
    blocked = await client.get("/api/v1/cameras", headers=wrong)
    valid_meanwhile = await client.get("/api/v1/cameras", headers=good)
    now_s[0] += 61
    later = await client.get("/api/v1/cameras", headers=wrong)

    assert statuses == [401, 401, 401, 429]
    assert blocked.status == 429
    assert 1 <= int(blocked.headers["Retry-After"]) <= 60
    # a shared address (NAT, proxy) with one stale client does not lock out the others
    assert valid_meanwhile.status == 200
    assert later.status == 401


@pytest.fixture
def storage_root(config: Config) -> Path:
    root = Path(config.storage.root)
    root.mkdir(parents=True)
    return root


@pytest.mark.parametrize("path", ["/metrics", "/api/v1/workers", "/api/v1/storage"])
async def test_whole_system_view_scoped_token_refused_unscoped_allowed(
    config: Config, index: Index, aiohttp_client: Any, path: str, storage_root: Path
) -> None:
    from nvr.auth.permissions import Role
    from nvr.auth.tokens import create_token

    scoped = create_token(index, "otto", Role.OPERATOR, cameras=("cam-b",))
    unscoped = create_token(index, "olive", Role.OPERATOR)
    client = await aiohttp_client(build_app(config, index))

    refused = await client.get(path, headers=bearer(scoped))
    allowed = await client.get(path, headers=bearer(unscoped))

    assert refused.status == 403
    assert "every camera" in (await refused.json())["error"]["message"]
    assert allowed.status == 200
