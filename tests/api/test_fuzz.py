"""Bad input at the API: schemathesis fuzzing against the served OpenAPI document, path
traversal attempts, oversized bodies and query strings. Real server, index and files."""

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.failures import FailureGroup

from nvr.api.app import ApiContext, make_app
from nvr.api.openapi import OPENAPI_PATH
from nvr.auth.permissions import Role
from nvr.errors import StorageError
from nvr.segmenter.files import segment_file
from tests.evidence.support import Archive, index_call

from .conftest import bearer

EXAMPLES_PER_OPERATION = 20
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@contextmanager
def served(app: web.Application) -> Iterator[str]:
    """Runs ``app`` on a loopback port in a thread with its own event loop."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(
        target=loop.run_forever, name="api-under-test", daemon=True
    )
    thread.start()
    runner = web.AppRunner(app)

    async def start() -> str:
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        host, port = runner.addresses[0][:2]
        return f"http://{host}:{port}"

    try:
        yield asyncio.run_coroutine_threadsafe(start(), loop).result(30)
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def _fuzz_operation(
    operation: Any, mode: GenerationMode, base_url: str, headers: dict[str, str]
) -> None:
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        response = case.call(base_url=base_url, headers=headers, timeout=30)
        case.validate_response(response, checks=CHECKS)

    run()


def test_fuzz_every_operation_no_server_error_and_answers_conform(
    context: ApiContext, archive: Archive
) -> None:
    headers = bearer(archive, "admin", Role.ADMIN)
    failures: list[str] = []
    with served(make_app(context)) as base_url:
        document = requests.get(base_url + OPENAPI_PATH, timeout=10).json()
        schema = schemathesis.openapi.from_dict(document)
        for result in schema.get_all_operations():
            operation = result.ok()
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                try:
                    _fuzz_operation(operation, mode, base_url, headers)
                except Unsatisfiable:
                    continue  # nothing to make invalid: the operation takes no input
                except (Exception, FailureGroup) as exc:
                    failures.append(f"{operation.label} [{mode.value}]: {exc}"[:3000])
    assert failures == [], "\n\n".join(failures)


@pytest.mark.parametrize(
    "camera_path",
    [
        "..%2F..%2Fetc",
        "%2e%2e",
        "..",
        "cam1%2F..%2F..",
        "%00",
        "CAM1",
        "cam1%20",
        "~root",
        "cam1;rm",
        "%C0%AE%C0%AE",
    ],
)
async def test_fuzz_odd_camera_id_answers_404_or_400(
    context: ApiContext, archive: Archive, aiohttp_client: Any, camera_path: str
) -> None:
    client = await aiohttp_client(make_app(context))
    query = "start=2026-01-01T00:00:00Z&end=2026-01-01T00:00:10Z"
    headers = bearer(archive, "admin", Role.ADMIN)

    for resource in ("recordings", "video.mp4"):
        response = await client.get(
            f"/api/v1/cameras/{camera_path}/{resource}?{query}", headers=headers
        )
        assert response.status in (400, 404), (camera_path, resource, response.status)


def test_fuzz_segment_path_outside_storage_root_refused(tmp_path: Path) -> None:
    root = tmp_path / "segments"

    for bad in ("../../etc/passwd", "/etc/passwd", "cam1/../../x.mp4", ""):
        with pytest.raises(StorageError):
            segment_file(root, bad)
    assert segment_file(root, "cam1/2026/01/01/cam1-1.mp4") == (
        root / "cam1" / "2026" / "01" / "01" / "cam1-1.mp4"
    )


async def test_fuzz_indexed_path_escaping_root_never_opened(
    context: ApiContext, archive: Archive, aiohttp_client: Any, tmp_path: Path
) -> None:
    from sqlalchemy import update

    from nvr.index.models import Segment

    outside = tmp_path / "secret.mp4"
    outside.write_bytes(b"not for you")
    with archive.index.write() as session:  # a row altered behind nvr's back
        session.execute(
            update(Segment)
            .where(Segment.id == archive.segment_ids[0])
            .values(path="../../secret.mp4")
        )
    client = await aiohttp_client(make_app(context))
    start = "2026-01-01T00:00:00Z"

    response = await client.get(
        f"/api/v1/cameras/cam1/video.mp4?start={start}&end=2026-01-01T00:00:10Z",
        headers=bearer(archive, "viewer", Role.VIEWER),
    )

    assert response.status == 500  # the index is wrong: a server fault, said as such
    assert (await response.json())["error"]["message"] == "internal error"


async def test_fuzz_oversized_json_body_answers_413_json(
    context: ApiContext, archive: Archive, aiohttp_client: Any
) -> None:
    client = await aiohttp_client(make_app(context))
    body = {
        "camera": "cam1",
        "start": "x",
        "end": "y",
        "case_id": "c",
        "reason": "r" * 200_000,
    }

    response = await client.post(
        "/api/v1/holds", json=body, headers=bearer(archive, "admin", Role.ADMIN)
    )

    assert response.status == 413
    assert (await response.json())["error"]["status"] == 413


async def test_fuzz_huge_query_string_answers_4xx(
    context: ApiContext, archive: Archive, aiohttp_client: Any
) -> None:
    client = await aiohttp_client(make_app(context))

    response = await client.get(
        "/api/v1/cameras/cam1/recordings?start=" + "9" * 20_000,
        headers=bearer(archive, "admin", Role.ADMIN),
    )

    assert 400 <= response.status < 500


async def test_fuzz_range_over_24_hours_answers_400(
    context: ApiContext, archive: Archive, aiohttp_client: Any
) -> None:
    client = await aiohttp_client(make_app(context))

    response = await client.get(
        "/api/v1/cameras/cam1/video.mp4?start=2026-01-01T00:00:00Z&end=2026-01-02T00:00:01Z",
        headers=bearer(archive, "admin", Role.ADMIN),
    )

    assert response.status == 400
    assert "24 h" in (await response.json())["error"]["message"]


NUL_REQUESTS = [
    ("GET", "/api/v1/audit?actor=%00", None),
    ("GET", "/api/v1/audit?action=a%00b", None),
    ("GET", "/api/v1/holds?case_id=%00", None),
    ("GET", "/api/v1/exports/%00", None),
    (
        "GET",
        "/api/v1/cameras/%00/video.mp4?start=2026-01-01T00:00:00Z&end=2026-01-01T00:00:10Z",
        None,
    ),
    ("PUT", "/api/v1/cameras/%00/group", {"group": "general"}),
    ("PUT", "/api/v1/cameras/cam1/group", {"group": "gen\u0000eral"}),
    ("POST", "/api/v1/groups", {"name": "g", "retention_days": 3, "\u0000": 1}),
]


@pytest.mark.parametrize(("method", "path", "body"), NUL_REQUESTS)
async def test_fuzz_nul_character_in_path_query_or_body_answers_400(
    any_archive: Archive,
    aiohttp_client: Any,
    method: str,
    path: str,
    body: dict[str, Any] | None,
) -> None:
    context = ApiContext(any_archive.config, {}, any_archive.index, index_call)
    client = await aiohttp_client(make_app(context))

    response = await client.request(
        method, path, json=body, headers=bearer(any_archive, "admin", Role.ADMIN)
    )

    assert response.status == 400, await response.text()
    assert "NUL" in (await response.json())["error"]["message"]
