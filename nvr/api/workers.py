"""``GET /api/v1/workers``: the load of each worker process and of each of its cameras.

CPU is the percentage of one core a process used since the previous request (or since it
started, on the first request), from ``cpu_times`` deltas; memory is RSS and PSS (each
shared page divided among the processes sharing it, so PSS adds up across workers).
"""

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import psutil
from aiohttp import web

from nvr.ingest.events import CameraState
from nvr.timeutil import format_rfc3339

if TYPE_CHECKING:
    from nvr.ingest.supervisor import Worker


class WorkerSource(Protocol):
    """What the endpoint reads: the supervisor's workers and camera states."""

    @property
    def workers(self) -> "list[Worker]": ...

    states: dict[str, CameraState]

    @property
    def paused(self) -> bool: ...

    pause_reason: str | None


@dataclass(frozen=True)
class ProcessLoad:
    pid: int
    alive: bool
    cpu_pct: float  # of one core
    rss_bytes: int
    pss_bytes: int


class LoadMeter:
    """Remembers each process's CPU time at the previous sample, to report a rate."""

    def __init__(self) -> None:
        self._last: dict[int, tuple[float, float]] = {}  # pid -> (monotonic s, cpu s)

    def sample(self, pid: int) -> ProcessLoad:
        """One process's load now. Blocking (reads /proc): call it off the event loop."""
        try:
            process = psutil.Process(pid)
            with process.oneshot():
                times = process.cpu_times()
                memory = process.memory_full_info()
                started_s = process.create_time()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            self._last.pop(pid, None)
            return ProcessLoad(pid, False, 0.0, 0, 0)
        cpu_s = times.user + times.system
        now_s = time.monotonic()
        previous = self._last.get(pid)
        if previous is None:
            # Note: psutil gives the process start as a wall instant only, so this
            # first reading is a wall difference; later ones use the monotonic clock
            elapsed_s = max(1e-3, time.time() - started_s)
            used_s = cpu_s
        else:
            elapsed_s = max(1e-3, now_s - previous[0])
            used_s = cpu_s - previous[1]
        self._last[pid] = (now_s, cpu_s)
        pss = int(getattr(memory, "pss", memory.rss))
        return ProcessLoad(
            pid, True, round(100 * used_s / elapsed_s, 2), memory.rss, pss
        )


def _camera_json(state: CameraState) -> dict[str, Any]:
    return {
        "id": state.camera_id,
        "state": state.status.value,
        "bitrate_bps": state.bitrate_bps,
        "packets": state.packets,
        "bytes": state.bytes,
        "reconnects": state.reconnects,
        "last_packet_time": format_rfc3339(state.last_packet_us)
        if state.last_packet_us
        else None,
    }


def workers_json(
    workers: "Sequence[Worker]",
    states: Mapping[str, CameraState],
    meter: LoadMeter,
    supervisor_pid: int,
) -> dict[str, Any]:
    """The response body. Blocking (samples /proc): call it off the event loop."""
    supervisor = meter.sample(supervisor_pid)
    body: list[dict[str, Any]] = []
    for worker in workers:
        process = worker.process
        pid = process.pid if process is not None else None
        load = (
            meter.sample(pid) if pid is not None else ProcessLoad(0, False, 0.0, 0, 0)
        )
        cameras = [_camera_json(states[c]) for c in worker.camera_ids if c in states]
        body.append(
            {
                "id": worker.worker_id,
                "pid": pid,
                "alive": load.alive,
                "restarts": worker.restarts,
                "cpu_pct": load.cpu_pct,
                "rss_bytes": load.rss_bytes,
                "pss_bytes": load.pss_bytes,
                "bitrate_bps": sum(c["bitrate_bps"] for c in cameras),
                "cameras": cameras,
            }
        )
    return {
        "cpu_count": psutil.cpu_count(),
        "supervisor": {
            "pid": supervisor.pid,
            "cpu_pct": supervisor.cpu_pct,
            "rss_bytes": supervisor.rss_bytes,
            "pss_bytes": supervisor.pss_bytes,
        },
        "workers": body,
    }


WORKER_SOURCE = web.AppKey("worker_source", WorkerSource)
_METER = web.AppKey("worker_meter", LoadMeter)


async def get_workers(request: web.Request) -> web.Response:
    """Per-worker pid, CPU %, memory and cameras; per-camera state, bitrate and counters."""
    from nvr.api.app import _json

    source = request.app.get(WORKER_SOURCE)
    if source is None:
        return _json(
            {"cpu_count": psutil.cpu_count(), "supervisor": None, "workers": []}
        )
    body = await asyncio.to_thread(
        workers_json,
        list(source.workers),
        dict(source.states),
        request.app[_METER],
        psutil.Process().pid,
    )
    return _json(body)


def register_workers(app: web.Application) -> None:
    """Adds the route; ``app[WORKER_SOURCE] = supervisor`` gives it something to show."""
    app[_METER] = LoadMeter()
    app.router.add_get("/api/v1/workers", get_workers)


def openapi_paths() -> dict[str, Any]:
    """This route's OpenAPI 3.1 operation, merged into ``nvr.api.openapi``."""
    load = {
        "cpu_pct": {"type": "number", "description": "percent of one core"},
        "rss_bytes": {"type": "integer"},
        "pss_bytes": {"type": "integer"},
    }
    camera = {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "state": {"type": "string"},
            "bitrate_bps": {"type": "integer"},
            "packets": {"type": "integer"},
            "bytes": {"type": "integer"},
            "reconnects": {"type": "integer"},
            "last_packet_time": {"type": ["string", "null"], "format": "date-time"},
        },
    }
    worker = {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "pid": {"type": ["integer", "null"]},
            "alive": {"type": "boolean"},
            "restarts": {"type": "integer"},
            **load,
            "bitrate_bps": {"type": "integer"},
            "cameras": {"type": "array", "items": camera},
        },
    }
    body = {
        "type": "object",
        "properties": {
            "cpu_count": {"type": ["integer", "null"]},
            "supervisor": {
                "type": ["object", "null"],
                "properties": {"pid": {"type": "integer"}, **load},
            },
            "workers": {"type": "array", "items": worker},
        },
    }
    error = {
        "description": "error",
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
    return {
        "/api/v1/workers": {
            "get": {
                "summary": "Load of each worker process and its cameras; permission storage:read",
                "responses": {
                    "200": {
                        "description": "worker and camera load",
                        "content": {"application/json": {"schema": body}},
                    },
                    "401": error,
                    "403": error,
                },
            }
        }
    }
