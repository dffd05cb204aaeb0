"""Retention routes: groups, camera membership, and the sweep plan.

``GET/POST /api/v1/groups``, ``PATCH /api/v1/groups/{name}``,
``PUT /api/v1/cameras/{camera_id}/group`` and ``GET /api/v1/retention/plan?at=``.
A change that would delete recordings answers 409 with ``would_delete`` and applies
nothing until repeated with ``"confirm": true``. Permissions: nvr.auth.permissions.
"""

import json
from typing import TYPE_CHECKING, Any

from aiohttp import web
from pydantic import ValidationError

from nvr.api.actor import request_actor
from nvr.api.body import json_object
from nvr.auth.middleware import visible_cameras
from nvr.config import GroupConfig
from nvr.errors import RequestError
from nvr.retention import groups as groups_db
from nvr.retention.groups import DangerousChange, Impact
from nvr.retention.plan import plan_sweep
from nvr.timeutil import parse_rfc3339_us

if TYPE_CHECKING:
    from nvr.api.app import ApiContext

GROUP_FIELDS = ("retention_days", "local_days", "priority")
PLAN_LIMIT = 10_000


def _context(request: web.Request) -> "ApiContext":
    from nvr.api.app import CONTEXT

    return request.app[CONTEXT]


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(
        data, status=status, dumps=lambda v: json.dumps(v, indent=1)
    )


def _confirm(body: dict[str, Any]) -> bool:
    confirm = body.pop("confirm", False)
    if not isinstance(confirm, bool):
        raise RequestError("'confirm' must be true or false")
    return confirm


def _validated(values: dict[str, Any]) -> GroupConfig:
    try:
        return GroupConfig.model_validate(values, strict=True)  # true is not 1 day
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}"
            for e in exc.errors()
        )
        raise RequestError(problems) from exc


def _refused(exc: DangerousChange) -> web.Response:
    return _json(
        {
            "error": {"status": 409, "message": str(exc)},
            "applied": False,
            "would_delete": _impact(exc.impact),
        },
        409,
    )


def _impact(impact: Impact) -> dict[str, int]:
    return {"segments": impact.segments, "bytes": impact.bytes}


async def list_groups(request: web.Request) -> web.Response:
    """Every group; a scoped token sees only its own cameras in their member lists."""
    context = _context(request)
    rows = await context.index_call(groups_db.list_groups, context.index)
    visible = visible_cameras(request, context.camera_groups)
    groups = []
    for row in rows:
        group = row.as_json()
        if visible is not None:
            group["cameras"] = [c for c in group["cameras"] if c in visible]
        groups.append(group)
    return _json({"groups": groups})


async def create_group(request: web.Request) -> web.Response:
    context = _context(request)
    config = _validated(await json_object(request, ("name", *GROUP_FIELDS)))
    row = await context.index_call(
        groups_db.create_group,
        context.index,
        config.name,
        config.retention_days,
        config.local_days,
        config.priority,
        request_actor(request),
    )
    return _json(row.as_json(), 201)


async def patch_group(request: web.Request) -> web.Response:
    context = _context(request)
    name = request.match_info["name"]
    body = await json_object(request, (*GROUP_FIELDS, "confirm"))
    confirm = _confirm(body)
    current = await context.index_call(groups_db.get_group, context.index, name)
    merged = {"name": name, **{k: getattr(current, k) for k in GROUP_FIELDS}, **body}
    _validated(merged)
    try:
        row, impact = await context.index_call(
            groups_db.update_group,
            context.index,
            name,
            body,
            request_actor(request),
            confirm,
        )
    except DangerousChange as exc:
        return _refused(exc)
    return _json({**row.as_json(), "applied": True, "will_delete": _impact(impact)})


async def put_camera_group(request: web.Request) -> web.Response:
    context = _context(request)
    camera_id = request.match_info["camera_id"]
    body = await json_object(request, ("group", "confirm"))
    confirm = _confirm(body)
    group = body.get("group")
    if not isinstance(group, str) or not group:
        raise RequestError("'group' is required (a group name)")
    try:
        impact = await context.index_call(
            groups_db.set_camera_group,
            context.index,
            camera_id,
            group,
            request_actor(request),
            confirm,
        )
    except DangerousChange as exc:
        return _refused(exc)
    context.camera_groups[camera_id] = group
    return _json(
        {
            "camera": camera_id,
            "group": group,
            "applied": True,
            "will_delete": _impact(impact),
        }
    )


async def get_plan(request: web.Request) -> web.Response:
    """What a sweep at ``at`` (default now) would delete and which held segments stay;
    a scoped token sees only its cameras' segments."""
    context = _context(request)
    at_text = request.query.get("at")
    at_us = context.index.clock() if not at_text else parse_rfc3339_us(at_text)
    visible = visible_cameras(request, context.camera_groups)

    def collect() -> list[dict[str, object]]:
        items = []
        for item in plan_sweep(context.index, at_us):
            if visible is not None and item.segment.camera_id not in visible:
                continue
            items.append(item.as_json())
            if len(items) >= PLAN_LIMIT:
                break
        return items

    items = await context.index_call(collect)
    return _json(
        {"at_us": at_us, "items": items, "truncated": len(items) >= PLAN_LIMIT}
    )


def register_retention(app: web.Application) -> None:
    """Adds the retention routes; their permissions are in nvr.auth.permissions."""
    app.router.add_get("/api/v1/groups", list_groups)
    app.router.add_post("/api/v1/groups", create_group)
    app.router.add_patch("/api/v1/groups/{name}", patch_group)
    app.router.add_put("/api/v1/cameras/{camera_id}/group", put_camera_group)
    app.router.add_get("/api/v1/retention/plan", get_plan)
