"""``GET /api/v1/storage``: where recordings live and how far S3 replication lags."""

import asyncio
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from nvr.retention.forecast import forecast

if TYPE_CHECKING:
    from nvr.api.app import ApiContext


async def get_storage(request: web.Request) -> web.Response:
    """Backlog (count, bytes, oldest unreplicated segment), S3 state and last error;
    the local root, with ``error`` when it cannot be read; the forecast per group."""
    from nvr.api.app import CONTEXT, _json

    context: ApiContext = request.app[CONTEXT]
    replication = context.replication
    body: dict[str, Any]
    if replication is None:
        body = {"s3": {"enabled": False}}
    else:
        body = await replication.status_json()
    body["local"] = {"root": str(context.config.storage.root)}
    # retention (issue 4): capacity forecast per group
    root = Path(context.config.storage.root)
    try:
        free_bytes = (await asyncio.to_thread(shutil.disk_usage, root)).free
    except OSError as exc:
        # the disk unmounted or the root removed: say so; no free space to count on
        body["local"]["error"] = f"storage root unreadable: {exc.strerror}"
        free_bytes = 0
    forecasts = await context.index_call(
        forecast, context.index, root, replication is not None, None, free_bytes
    )
    body["groups"] = [group.as_json() for group in forecasts]
    return _json(body)


def register_storage(app: web.Application) -> None:
    """Adds the storage routes; their permission is in nvr.auth.permissions."""
    app.router.add_get("/api/v1/storage", get_storage)
