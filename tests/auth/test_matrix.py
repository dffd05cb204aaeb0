"""Every registered route × every kind of client: 401, 403 or through, as designed."""

import re
from typing import Any

import pytest
from aiohttp import web

from nvr.auth.permissions import Permission, route_permission
from nvr.config import Config
from nvr.index import Index

from .conftest import Tokens, bearer, build_app

# The design, written out independently of nvr.auth.permissions: which client kinds
# get through to a route needing each permission. Unauthenticated kinds never do.
EVERYONE = {
    "viewer",
    "viewer-other-camera",
    "operator",
    "admin",
    "auditor",
    "auditor-playback",
}
VIEWERS = {"viewer", "viewer-other-camera", "operator", "admin"}
AUDITORS = {"auditor", "auditor-playback", "admin"}
DESIGN: dict[Permission, set[str]] = {
    Permission.CAMERAS_READ: EVERYONE,
    Permission.RECORDINGS_READ: EVERYONE,
    Permission.PLAYBACK: VIEWERS | {"auditor-playback"},
    Permission.KEYS_READ: EVERYONE,
    Permission.EXPORTS_READ: {"operator", "admin", "auditor", "auditor-playback"},
    Permission.EXPORTS_WRITE: {"operator", "admin"},
    Permission.HOLDS_READ: {"operator", "admin", "auditor", "auditor-playback"},
    Permission.HOLDS_WRITE: {"operator", "admin"},
    Permission.VERIFY: AUDITORS,
    Permission.AUDIT_READ: AUDITORS,
    Permission.ARCHIVE_AUDIT: AUDITORS,
    Permission.STORAGE_READ: {"operator", "admin", "auditor", "auditor-playback"},
    Permission.METRICS: {"operator", "admin", "auditor", "auditor-playback"},
    Permission.ADMIN: {"admin"},
}
UNAUTHENTICATED = {"none", "wrong", "revoked"}
KINDS = sorted(UNAUTHENTICATED | EVERYONE)
QUERY = "start=2026-01-01T00:00:00Z&end=2026-01-01T00:10:00Z"


def _concrete(pattern: str) -> str:
    """A request path for a route pattern: cam-a for camera ids, 'x' elsewhere."""
    path = pattern.replace("{camera_id}", "cam-a")
    return re.sub(r"\{[^}]+\}", "x", path) + "?" + QUERY


def _expected(kind: str, permission: Permission, pattern: str) -> str:
    if permission is Permission.PUBLIC:
        return "through"
    if kind in UNAUTHENTICATED:
        return "401"
    if kind not in DESIGN[permission]:
        return "403"
    if kind == "viewer-other-camera" and "{camera_id}" in pattern:
        return "403"
    return "through"


def _routes(app: web.Application) -> list[tuple[str, str]]:
    found = set()
    for route in app.router.routes():
        resource = route.resource
        assert resource is not None
        found.add((route.method, resource.canonical))
    return sorted(found)


def test_permissions_every_registered_route_has_a_declared_permission(
    config: Config, index: Index
) -> None:
    undeclared = [
        (method, pattern)
        for method, pattern in _routes(build_app(config, index))
        if route_permission(method, pattern) is None
    ]
    assert undeclared == [], "add these to nvr.auth.permissions.ROUTE_PERMISSIONS"


def test_permissions_design_covers_every_permission() -> None:
    assert set(DESIGN) == set(Permission) - {Permission.PUBLIC}


async def test_matrix_every_route_and_client_kind_answers_as_designed(
    config: Config, index: Index, tokens: Tokens, aiohttp_client: Any
) -> None:
    app = build_app(config, index)
    client = await aiohttp_client(app)
    mismatches = []
    for method, pattern in _routes(app):
        permission = route_permission(method, pattern)
        if permission is None:
            continue  # reported by the test above
        for kind in KINDS:
            response = await client.request(
                method, _concrete(pattern), headers=bearer(tokens.by_kind[kind])
            )
            await response.read()
            expected = _expected(kind, permission, pattern)
            got = (
                str(response.status)
                if response.status in (401, 403, 429)
                else "through"
            )
            if got != expected:
                mismatches.append((method, pattern, kind, expected, response.status))
    assert mismatches == []


@pytest.mark.parametrize("kind", ["viewer", "operator", "admin", "auditor-playback"])
async def test_matrix_playback_with_permission_reaches_handler_404_no_recording(
    config: Config, index: Index, tokens: Tokens, aiohttp_client: Any, kind: str
) -> None:
    client = await aiohttp_client(build_app(config, index))

    response = await client.get(
        f"/api/v1/cameras/cam-a/video.mp4?{QUERY}", headers=bearer(tokens.by_kind[kind])
    )

    assert response.status == 404
    assert "no recording" in (await response.json())["error"]["message"]


async def test_matrix_unauthenticated_answers_carry_bearer_challenge(
    config: Config, index: Index, tokens: Tokens, aiohttp_client: Any
) -> None:
    client = await aiohttp_client(build_app(config, index))

    missing = await client.get("/api/v1/cameras")
    revoked = await client.get(
        "/api/v1/cameras", headers=bearer(tokens.by_kind["revoked"])
    )

    assert missing.status == 401
    assert missing.headers["WWW-Authenticate"] == 'Bearer realm="nvr"'
    assert revoked.status == 401
    assert 'error="invalid_token"' in revoked.headers["WWW-Authenticate"]
