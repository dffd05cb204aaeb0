"""The OpenAPI document: served, covering exactly the app's routes, matching real answers."""

from typing import Any

import jsonschema
import pytest
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from nvr.api.app import ApiContext, make_app
from nvr.api.openapi import OPENAPI_PATH, build_openapi
from nvr.auth.permissions import Role
from nvr.timeutil import format_rfc3339
from tests.evidence.support import Archive, S

from .conftest import bearer

DOCUMENT_URI = "urn:nvr:openapi"
METHODS = {"get", "post", "put", "patch", "delete"}


def _registered(app: Any) -> set[tuple[str, str]]:
    routes = set()
    for route in app.router.routes():
        if route.method == "HEAD":
            continue  # aiohttp adds HEAD beside every GET; it answers as the GET does
        routes.add((route.method.lower(), route.resource.canonical))
    return routes


def _documented(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method, path)
        for path, item in document["paths"].items()
        for method in item
        if method in METHODS
    }


def _validate(
    document: dict[str, Any], path: str, method: str, status: int, body: Any
) -> None:
    """Checks ``body`` against the documented JSON schema of that answer."""
    responses = document["paths"][path][method]["responses"]
    answer = responses.get(str(status)) or responses["default"]
    if "$ref" in answer:
        answer = document["components"]["responses"][answer["$ref"].rsplit("/", 1)[1]]
    schema = answer["content"]["application/json"]["schema"]
    registry: Registry[Any] = Registry().with_resource(
        DOCUMENT_URI, DRAFT202012.create_resource(document)
    )
    jsonschema.Draft202012Validator(_rooted(schema), registry=registry).validate(body)


def _rooted(schema: Any) -> Any:
    """The schema with local ``#/components`` references pointed at the whole document."""
    if isinstance(schema, dict):
        return {
            key: (DOCUMENT_URI + value if key == "$ref" else _rooted(value))
            for key, value in schema.items()
        }
    if isinstance(schema, list):
        return [_rooted(item) for item in schema]
    return schema


async def test_openapi_paths_match_registered_routes(context: ApiContext) -> None:
    app = make_app(context)

    documented = _documented(build_openapi())

    assert _registered(app) - documented == set(), "routes missing from nvr.api.openapi"
    assert documented - _registered(app) == set(), "documented routes the app lacks"


async def test_openapi_served_without_token_equals_document(
    context: ApiContext, aiohttp_client: Any
) -> None:
    client = await aiohttp_client(make_app(context))

    response = await client.get(OPENAPI_PATH)

    assert response.status == 200
    assert await response.json() == build_openapi()


async def test_openapi_every_json_answer_validates_against_its_schema(
    context: ApiContext, archive: Archive, aiohttp_client: Any
) -> None:
    document = build_openapi()
    client = await aiohttp_client(make_app(context))
    admin = bearer(archive, "admin", Role.ADMIN)
    start, end = format_rfc3339(archive.end_us - 6 * S), format_rfc3339(archive.end_us)
    span = {
        "camera": "cam1",
        "start": start,
        "end": end,
        "case_id": "c-1",
        "reason": "incident",
    }
    query = f"start={start}&end={end}"
    checked: list[tuple[str, str, int]] = []

    async def check(
        method: str,
        path: str,
        url: str,
        expect: int,
        headers: dict[str, str] | None = None,
        **kw: Any,
    ) -> Any:
        response = await client.request(
            method, url, headers={**admin, **(headers or {})}, **kw
        )
        body = await response.json()
        assert response.status == expect, (url, body)
        _validate(document, path, method.lower(), response.status, body)
        checked.append((method, path, response.status))
        return body

    await check("GET", "/healthz", "/healthz", 200)
    await check("GET", "/readyz", "/readyz", 200)
    await check("GET", "/api/v1/cameras", "/api/v1/cameras", 200)
    recordings = "/api/v1/cameras/{camera_id}/recordings"
    listing = await check(
        "GET", recordings, f"/api/v1/cameras/cam1/recordings?{query}", 200
    )
    assert listing["segments"] and listing["gaps"]
    await check("GET", recordings, "/api/v1/cameras/cam1/recordings", 400)
    await check("GET", recordings, f"/api/v1/cameras/nope/recordings?{query}", 404)
    hold = await check("POST", "/api/v1/holds", "/api/v1/holds", 201, json=span)
    await check("GET", "/api/v1/holds", "/api/v1/holds", 200)
    await check("DELETE", "/api/v1/holds/{hold_id}", f"/api/v1/holds/{hold['id']}", 200)
    export = await check("POST", "/api/v1/exports", "/api/v1/exports", 202, json=span)
    await check(
        "GET", "/api/v1/exports/{export_id}", f"/api/v1/exports/{export['id']}", 200
    )
    await check("GET", "/api/v1/keys", "/api/v1/keys", 200)
    await check(
        "POST",
        "/api/v1/verify",
        "/api/v1/verify",
        200,
        data=b"not a zip",
        headers={"Content-Type": "application/zip"},
    )
    await check("GET", "/api/v1/audit", "/api/v1/audit", 200)
    await check("GET", "/api/v1/groups", "/api/v1/groups", 200)
    await check(
        "POST",
        "/api/v1/groups",
        "/api/v1/groups",
        201,
        json={"name": "long", "retention_days": 90},
    )
    await check(
        "PATCH",
        "/api/v1/groups/{name}",
        "/api/v1/groups/long",
        200,
        json={"retention_days": 120},
    )
    await check(
        "PUT",
        "/api/v1/cameras/{camera_id}/group",
        "/api/v1/cameras/cam1/group",
        200,
        json={"group": "long"},
    )
    await check("GET", "/api/v1/retention/plan", "/api/v1/retention/plan", 200)
    await check("GET", "/api/v1/storage", "/api/v1/storage", 200)
    assert len(checked) == 20


@pytest.mark.parametrize("method", ["GET", "HEAD"])
async def test_openapi_video_answer_has_documented_media_type(
    context: ApiContext, archive: Archive, aiohttp_client: Any, method: str
) -> None:
    client = await aiohttp_client(make_app(context))
    start, end = format_rfc3339(archive.end_us - 6 * S), format_rfc3339(archive.end_us)

    response = await client.request(
        method,
        f"/api/v1/cameras/cam1/video.mp4?start={start}&end={end}",
        headers=bearer(archive, "viewer", Role.VIEWER),
    )

    assert response.status == 200
    documented = build_openapi()["paths"]["/api/v1/cameras/{camera_id}/video.mp4"]
    assert response.content_type in documented["get"]["responses"]["200"]["content"]
