"""The aiohttp middleware: bearer token, then the route's permission, then camera scope.

Order for each request: a PUBLIC route passes untouched; an address over the failure
limit gets 429; a missing, malformed, unknown or revoked token gets 401; a route with no
entry in ``ROUTE_PERMISSIONS`` gets 403 (deny by default); a token lacking the route's
permission gets 403; a ``{camera_id}`` route outside the token's scope gets 403.
"""

import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from nvr.api.actor import ACTOR_KEY
from nvr.auth.limiter import FailureLimiter
from nvr.auth.permissions import WHOLE_SYSTEM_ROUTES, Permission, route_permission
from nvr.auth.tokens import TokenInfo, authenticate, split_token
from nvr.log import fields

log = logging.getLogger(__name__)

TOKEN_KEY = web.RequestKey("nvr.token", TokenInfo)
BEARER = "bearer"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Authenticator:
    """What the middleware needs: the index (tokens), camera groups, the limiter."""

    index: Any
    index_call: Callable[..., Awaitable[Any]]
    camera_groups: Mapping[str, str]
    """Camera id -> group name, for group-scoped tokens."""
    limiter: FailureLimiter = field(default_factory=FailureLimiter)


AUTH = web.AppKey("auth", Authenticator)


def request_token(request: web.Request) -> TokenInfo | None:
    """The token that authenticated ``request`` (None on public routes)."""
    return request.get(TOKEN_KEY)


def camera_visible(request: web.Request, camera_id: str, group: str | None) -> bool:
    """Whether the request's token may see this camera (for filtering listings)."""
    token = request_token(request)
    return token is not None and token.may_access_camera(camera_id, group)


def visible_cameras(
    request: web.Request, camera_groups: Mapping[str, str]
) -> frozenset[str] | None:
    """The cameras a scoped token may see (of those known), None for an unscoped one:
    for filtering views that span cameras (the audit log, the retention plan)."""
    token = request_token(request)
    if token is None:
        return frozenset()
    if not token.scoped:
        return None
    known = set(camera_groups) | set(token.cameras or ())
    return frozenset(
        camera_id
        for camera_id in known
        if token.may_access_camera(camera_id, camera_groups.get(camera_id))
    )


def _error(
    status: int, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    return web.json_response(
        {"error": {"status": status, "message": message}},
        status=status,
        headers=headers,
    )


def _unauthorized(message: str, presented: bool) -> web.Response:
    # RFC 6750 §3: a challenge, with error="invalid_token" when one was presented.
    challenge = 'Bearer realm="nvr"'
    if presented:
        challenge += ', error="invalid_token"'
    return _error(401, message, {"WWW-Authenticate": challenge})


def _bearer(request: web.Request) -> str | None:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != BEARER or not value.strip():
        return None
    return value.strip()


def _route_pattern(request: web.Request) -> str | None:
    """The matched route's canonical path, None when nothing matched (404/405)."""
    if request.match_info.http_exception is not None:
        return None
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else None


async def _authenticated(
    request: web.Request, auth: Authenticator
) -> TokenInfo | web.Response:
    remote = request.remote or "unknown"
    bearer = _bearer(request)
    if bearer is None:
        return _unauthorized("this endpoint needs Authorization: Bearer <token>", False)
    token: TokenInfo | None = await auth.index_call(authenticate, auth.index, bearer)
    if token is not None:
        # a valid token always passes: one stale client behind a shared address (NAT,
        # proxy) must not lock everyone else there out
        return token
    retry_after_s = auth.limiter.retry_after_s(remote)
    if retry_after_s is not None:
        return _error(
            429,
            "too many failed authentications; try again later",
            {"Retry-After": str(max(1, math.ceil(retry_after_s)))},
        )
    parts = split_token(bearer)
    log.info(
        "authentication failed %s",
        fields(remote=remote, token_id=parts[0] if parts else "malformed"),
    )
    if auth.limiter.record_failure(remote):
        log.warning("authentication failures over the limit %s", fields(remote=remote))
    return _unauthorized("invalid or revoked token", True)


def _forbidden_reason(
    request: web.Request, auth: Authenticator, token: TokenInfo, pattern: str | None
) -> str | None:
    if pattern is None:
        return None  # nothing matched: the router's 404 or 405 follows
    permission = route_permission(request.method, pattern)
    if permission is None:
        log.warning(
            "route has no declared permission %s",
            fields(method=request.method, route=pattern),
        )
        return "this endpoint has no declared permission"
    if permission not in token.permissions:
        return f"role {token.role.value!r} lacks permission {permission.value!r}"
    if token.scoped and pattern in WHOLE_SYSTEM_ROUTES:
        return "this view covers every camera; a token scoped to some cannot read it"
    camera_id = request.match_info.get("camera_id")
    if camera_id is not None and not token.may_access_camera(
        camera_id, auth.camera_groups.get(camera_id)
    ):
        return f"token is not scoped to camera {camera_id!r}"
    return None


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Authenticates and authorizes every request; see the module docstring."""
    pattern = _route_pattern(request)
    if (
        pattern is not None
        and route_permission(request.method, pattern) is Permission.PUBLIC
    ):
        return await handler(request)
    auth = request.app[AUTH]
    outcome = await _authenticated(request, auth)
    if isinstance(outcome, web.Response):
        return outcome
    request[TOKEN_KEY] = outcome
    request[ACTOR_KEY] = outcome.name
    reason = _forbidden_reason(request, auth, outcome, pattern)
    if reason is not None:
        log.info(
            "request forbidden %s",
            fields(actor=outcome.name, method=request.method, path=request.path),
        )
        return _error(403, reason)
    return await handler(request)
