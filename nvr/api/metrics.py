"""``GET /metrics`` (Prometheus text format) and the middleware timing every request.

The route needs a token with the ``metrics`` permission (roles monitor, operator,
auditor, admin): camera ids and recording volume are not for anonymous eyes, and
Prometheus sends a bearer token with ``authorization: {credentials: ...}`` in its scrape
config (README, "Health and metrics").
"""

import asyncio
import logging
import shutil
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from nvr.log import fields
from nvr.metrics import Metrics, deletion_totals
from nvr.storage import replicas

if TYPE_CHECKING:
    from nvr.api.app import ApiContext

log = logging.getLogger(__name__)

METRICS = web.AppKey("metrics", Metrics)
UNMATCHED_ROUTE = "unmatched"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def route_label(request: web.Request) -> str:
    """The matched route's template, never the raw path (which would explode cardinality)."""
    if request.match_info.http_exception is not None:
        return UNMATCHED_ROUTE
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else UNMATCHED_ROUTE


@web.middleware
async def http_metrics(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Times each request by method, route template and status (outermost middleware)."""
    started_s = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        request.app[METRICS].observe_request(
            request.method, route_label(request), status, started_s
        )


async def refresh(context: "ApiContext", metrics: Metrics) -> None:
    """Sets the gauges that need the disk or the index; called before each scrape."""
    try:
        usage = await asyncio.to_thread(shutil.disk_usage, context.config.storage.root)
    except OSError as exc:
        log.warning("disk usage unreadable %s", fields(error=exc))
    else:
        metrics.disk_bytes.labels("total").set(usage.total)
        metrics.disk_bytes.labels("used").set(usage.used)
        metrics.disk_bytes.labels("free").set(usage.free)
    metrics.deletions.totals = await context.index_call(deletion_totals, context.index)
    if context.replication is None:
        return
    backlog = await context.index_call(replicas.backlog, context.index)
    metrics.upload_backlog_segments.set(backlog.segments)
    metrics.upload_backlog_bytes.set(backlog.bytes)


async def get_metrics(request: web.Request) -> web.Response:
    from nvr.api.app import CONTEXT

    metrics = request.app[METRICS]
    await refresh(request.app[CONTEXT], metrics)
    return web.Response(
        body=metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST}
    )


def register_metrics(app: web.Application, metrics: Metrics) -> None:
    """Adds ``GET /metrics``; ``http_metrics`` must already be in the middleware list."""
    app[METRICS] = metrics
    app.router.add_get("/metrics", get_metrics)
