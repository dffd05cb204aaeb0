"""``GET /api/v1/workers`` on the real app, over a real worker process."""

import asyncio
import multiprocessing
import time
from collections.abc import Iterator
from typing import Any

import pytest

from nvr.api.app import ApiContext, make_app
from nvr.api.workers import WORKER_SOURCE
from nvr.auth.permissions import Role
from nvr.ingest.events import CameraState
from nvr.ingest.supervisor import Worker
from tests.api.conftest import bearer
from tests.evidence.support import Archive


def _busy(seconds: float) -> None:
    """Burns CPU so the worker shows load."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


class _Source:
    def __init__(self, workers: list[Worker], states: dict[str, CameraState]) -> None:
        self._workers = workers
        self.states = states

    @property
    def workers(self) -> list[Worker]:
        return self._workers


@pytest.fixture
def worker(states: dict[str, CameraState]) -> Iterator[Worker]:
    process = multiprocessing.get_context("spawn").Process(target=_busy, args=(30,))
    process.start()
    yield Worker(0, [], process=process, restarts=1, camera_ids=list(states))
    process.kill()
    process.join()


async def test_workers_admin_sees_pid_cpu_memory_and_camera_load(
    context: ApiContext,
    archive: Archive,
    worker: Worker,
    states: dict[str, CameraState],
    aiohttp_client: Any,
) -> None:
    app = make_app(context)
    app[WORKER_SOURCE] = _Source([worker], states)
    client = await aiohttp_client(app)
    headers = bearer(archive, "admin", Role.ADMIN)

    await client.get("/api/v1/workers", headers=headers)
    await asyncio.sleep(0.5)
    response = await client.get("/api/v1/workers", headers=headers)

    body = await response.json()
    assert response.status == 200, body
    [shown] = body["workers"]
    assert worker.process is not None and shown["pid"] == worker.process.pid
    assert shown["alive"] is True and shown["restarts"] == 1
    assert shown["cpu_pct"] > 20  # the busy loop, measured since the first request
    assert shown["rss_bytes"] > 1_000_000 and shown["pss_bytes"] > 0
    [camera] = shown["cameras"]
    assert camera["id"] == "cam1" and camera["state"] == "recording"
    assert camera["bitrate_bps"] == 512_000 and camera["packets"] == 1234
    assert body["supervisor"]["rss_bytes"] > 0


async def test_workers_viewer_is_refused(
    context: ApiContext, archive: Archive, aiohttp_client: Any
) -> None:
    client = await aiohttp_client(make_app(context))

    response = await client.get(
        "/api/v1/workers", headers=bearer(archive, "viewer", Role.VIEWER)
    )

    assert response.status == 403


async def test_workers_no_supervisor_answers_empty_list(
    context: ApiContext, archive: Archive, aiohttp_client: Any
) -> None:
    client = await aiohttp_client(make_app(context))

    response = await client.get(
        "/api/v1/workers", headers=bearer(archive, "operator", Role.OPERATOR)
    )

    assert response.status == 200
    assert (await response.json())["workers"] == []
