"""The HTTP API for VMS clients: cameras, recordings with gaps, playable MP4 of a range."""

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from nvr import __version__
from nvr.api.evidence import register_evidence
from nvr.api.health import register_health
from nvr.api.metrics import http_metrics, register_metrics
from nvr.api.openapi import register_openapi
from nvr.api.ranges import byte_range, send_span
from nvr.api.storage import register_storage
from nvr.api.timerange import parse_time_range
from nvr.api.workers import register_workers
from nvr.auth.middleware import AUTH, Authenticator, auth_middleware, camera_visible
from nvr.config import Config
from nvr.errors import (
    Conflict,
    NotFound,
    NvrError,
    ObjectStoreUnavailable,
    RequestError,
)
from nvr.export.clip import ClipPlan, ClipSource, plan_clip
from nvr.ingest.events import CameraState, CameraStatus
from nvr.log import fields, redact_url
from nvr.metrics import Metrics
from nvr.retention.api import register_retention
from nvr.segmenter.files import segment_file
from nvr.timeutil import format_rfc3339

if TYPE_CHECKING:
    from nvr.storage.service import Replication

log = logging.getLogger(__name__)

CHUNK_BYTES = 256 * 1024


@dataclass
class ApiContext:
    """What the handlers need: the config, live camera states and the index."""

    config: Config
    states: dict[str, CameraState]
    index: Any
    index_call: Callable[..., Awaitable[Any]]
    replication: "Replication | None" = None  # S3 (issue 3); None when [s3] is unset
    metrics: Metrics | None = None  # health (issue 7); None: the app makes its own
    # Each camera's group as the index holds it; shared, and updated when the API moves a
    # camera, so scoping and listings follow the change without a restart.
    camera_groups: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for camera in self.config.cameras:
            self.camera_groups.setdefault(camera.id, camera.group)


CONTEXT = web.AppKey("context", ApiContext)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(
        data, status=status, dumps=lambda v: json.dumps(v, indent=1)
    )


@web.middleware
async def _errors(
    request: web.Request,
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> web.StreamResponse:
    """Turns request errors into JSON answers naming the problem."""
    try:
        return await handler(request)
    except RequestError as exc:
        return _json({"error": {"status": exc.status, "message": str(exc)}}, exc.status)
    except web.HTTPException as exc:
        if exc.status < 400 or exc.content_type == "application/json":
            raise
        answer = _json(
            {"error": {"status": exc.status, "message": exc.reason}}, exc.status
        )
        if "Content-Range" in exc.headers:  # a 416 tells the client the body's size
            answer.headers["Content-Range"] = exc.headers["Content-Range"]
        return answer
    except ObjectStoreUnavailable as exc:
        # a segment evicted to S3 cannot be read while S3 is down: retry later
        log.warning(
            "object storage unavailable %s", fields(path=request.path, error=exc)
        )
        message = "object storage is unavailable; the recording is safe, retry later"
        return _json({"error": {"status": 503, "message": message}}, 503)
    except NvrError as exc:
        # health (issue 7): a server-side failure still answers in the error schema
        log.error("request failed %s", fields(path=request.path, error=exc))
        return _json({"error": {"status": 500, "message": "internal error"}}, 500)


@web.middleware
async def _refuse_nul(
    request: web.Request,
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> web.StreamResponse:
    """A decoded path or query holding NUL (%00) is refused: no text column stores it
    (PostgreSQL fails the statement), and no camera, group or case id contains one."""
    query = request.query
    if "\x00" in request.path or any("\x00" in k + v for k, v in query.items()):
        raise RequestError("the request path or query holds a NUL character (%00)")
    return await handler(request)


def _camera_or_404(context: ApiContext, camera_id: str) -> None:
    if not any(camera.id == camera_id for camera in context.config.cameras):
        raise NotFound(f"unknown camera {camera_id!r}")


async def healthz(request: web.Request) -> web.Response:
    return _json({"status": "ok", "version": __version__})


async def list_cameras(request: web.Request) -> web.Response:
    context = request.app[CONTEXT]
    cameras = []
    for camera in context.config.cameras:
        group = context.camera_groups.get(camera.id, camera.group)
        if not camera_visible(request, camera.id, group):
            continue  # a scoped token sees only its cameras (issue 8)
        state = context.states.get(camera.id) or CameraState(
            camera.id, CameraStatus.CONNECTING
        )
        last_packet = state.last_packet_us
        cameras.append(
            {
                "id": camera.id,
                "group": group,
                "url": redact_url(camera.url),
                "state": state.status.value,
                "last_packet_time": format_rfc3339(last_packet)
                if last_packet
                else None,
                "bitrate_bps": state.bitrate_bps,
                "packets": state.packets,
                "reconnects": state.reconnects,
                "last_error": state.last_error,
            }
        )
    return _json({"cameras": cameras})


def _segment_json(row: Any, tier: str = "local") -> dict[str, Any]:
    return {
        "id": row.id,
        "run_id": row.run_id,
        "start": format_rfc3339(row.start_us),
        "end": format_rfc3339(row.end_us),
        "media_duration_s": round(row.media_duration / row.timescale, 6),
        "bytes": row.bytes,
        "video_codec": row.video_codec,
        "audio_codec": row.audio_codec,
        "width": row.width,
        "height": row.height,
        "sha256": row.sha256,
        "tier": tier,  # local | local+s3 | s3 (docs/storage.md)
    }


async def list_recordings(request: web.Request) -> web.Response:
    context = request.app[CONTEXT]
    camera_id = request.match_info["camera_id"]
    _camera_or_404(context, camera_id)
    span = parse_time_range(request.query)
    segments = await context.index_call(
        context.index.segments_overlapping, camera_id, span.start_us, span.end_us
    )
    replication = context.replication  # S3 (issue 3): where each segment lives
    tiers = {} if replication is None else await replication.tiers(segments)
    gaps = await context.index_call(
        context.index.gaps_overlapping, camera_id, span.start_us, span.end_us
    )
    gap_list = [
        {
            "start": format_rfc3339(g.start_us),
            "end": format_rfc3339(g.end_us),
            "reason": g.reason,
        }
        for g in gaps
    ]
    gap_list.extend(_open_gap(context, camera_id, segments, span.end_us))
    return _json(
        {
            "camera": camera_id,
            "start": format_rfc3339(span.start_us),
            "end": format_rfc3339(span.end_us),
            "segments": [
                _segment_json(row, tiers.get(row.id, "local")) for row in segments
            ],
            "gaps": gap_list,
        }
    )


def _open_gap(
    context: ApiContext, camera_id: str, segments: list[Any], range_end_us: int
) -> list[dict[str, Any]]:
    """While a camera is down, the time since its last segment is a gap still open."""
    state = context.states.get(camera_id)
    if state is None or state.status == CameraStatus.RECORDING or not segments:
        return []
    last_end_us = segments[-1].end_us
    if last_end_us >= range_end_us:
        return []
    return [
        {
            "start": format_rfc3339(last_end_us),
            "end": None,
            "reason": state.status.value,
        }
    ]


async def _plan(request: web.Request) -> ClipPlan:
    context = request.app[CONTEXT]
    camera_id = request.match_info["camera_id"]
    _camera_or_404(context, camera_id)
    span = parse_time_range(request.query)
    rows = await context.index_call(
        context.index.segments_overlapping, camera_id, span.start_us, span.end_us
    )
    if not rows:
        raise NotFound(f"no recording of {camera_id!r} in the requested range")
    root = Path(context.config.storage.root)
    # S3 (issue 3): a replicated segment is read locally while present, else from S3
    replication = context.replication
    locations = (
        [segment_file(root, row.path) for row in rows]
        if replication is None
        else await replication.locations(rows)
    )
    sources = [
        ClipSource(
            path=location,
            start_us=row.start_us,
            end_us=row.end_us,
            timescale=row.timescale,
            keyframes=tuple(row.keyframes),
            size=row.bytes,
        )
        for row, location in zip(rows, locations, strict=True)
    ]
    sources = await asyncio.to_thread(_intact, camera_id, rows, sources)
    return await asyncio.to_thread(plan_clip, sources, span.start_us, span.end_us)


def _intact(
    camera_id: str, rows: list[Any], sources: list[ClipSource]
) -> list[ClipSource]:
    """The sources whose local file is present at its indexed size. Blocking (stat).

    A missing or truncated file is left out of the clip, which then shows a hole there,
    rather than failing the whole playback; it is logged at ERROR for ``nvr audit``.
    """
    kept = []
    for row, source in zip(rows, sources, strict=True):
        if isinstance(source.path, Path):
            try:
                size = source.path.stat().st_size
            except FileNotFoundError:
                size = -1
            if size != row.bytes:
                log.error(
                    "segment file missing or damaged; left out of playback %s",
                    fields(
                        camera=camera_id, segment=row.id, size=size, indexed=row.bytes
                    ),
                )
                continue
        kept.append(source)
    if not kept:
        raise Conflict(
            f"the recording of {camera_id!r} in this range is missing or damaged on disk "
            "(run nvr audit)"
        )
    return kept


async def video_mp4(request: web.Request) -> web.StreamResponse:
    plan = await _plan(request)
    wanted = byte_range(request, plan.size)
    first, stop = wanted if wanted is not None else (0, plan.size)
    response = web.StreamResponse(status=206 if wanted is not None else 200)
    response.content_type = "video/mp4"
    response.content_length = stop - first
    response.headers["Accept-Ranges"] = "bytes"
    response.headers["X-Clip-Start"] = format_rfc3339(plan.start_us)
    response.headers["X-Clip-End"] = format_rfc3339(plan.end_us)
    if wanted is not None:
        response.headers["Content-Range"] = f"bytes {first}-{stop - 1}/{plan.size}"
    await response.prepare(request)
    if request.method == "HEAD":
        return response
    whole = await send_span(response, plan.read, (first, stop), CHUNK_BYTES)
    log.debug(
        "clip served %s",
        fields(
            camera=request.match_info["camera_id"],
            bytes=stop - first,
            completed=whole,
        ),
    )
    return response


def make_app(context: ApiContext) -> web.Application:
    """The aiohttp application serving the v1 API."""
    app = web.Application(
        middlewares=[http_metrics, _errors, auth_middleware, _refuse_nul],
        client_max_size=64 * 1024,
    )
    app[CONTEXT] = context
    # auth (issue 8): every route needs an entry in nvr.auth.permissions.ROUTE_PERMISSIONS
    app[AUTH] = Authenticator(
        context.index,
        context.index_call,
        context.camera_groups,
    )
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/api/v1/cameras", list_cameras)
    app.router.add_get("/api/v1/cameras/{camera_id}/recordings", list_recordings)
    app.router.add_get("/api/v1/cameras/{camera_id}/video.mp4", video_mp4)
    register_evidence(app, context)  # evidence (issue 5): exports, keys, verify, audit
    register_storage(app)  # S3 replication (issue 3): GET /api/v1/storage
    register_retention(app)  # retention (issue 4): groups, camera group, plan
    # health (issue 7): /readyz, /metrics, the OpenAPI document
    register_health(app)
    register_metrics(app, context.metrics or Metrics(context.states))
    register_openapi(app)
    register_workers(app)  # ingest load (issue 6): GET /api/v1/workers
    return app
