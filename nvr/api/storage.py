"""``GET /api/v1/storage``: where recordings live and how far S3 replication lags."""

from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from nvr.api.app import ApiContext


async def get_storage(request: web.Request) -> web.Response:
    """Backlog (count, bytes, oldest unreplicated segment), S3 state and last error."""
    from nvr.api.app import CONTEXT, _json

    context: ApiContext = request.app[CONTEXT]
    replication = context.replication
    body: dict[str, Any]
    if replication is None:
        body = {"s3": {"enabled": False}}
    else:
        body = await replication.status_json()
    body["local"] = {"root": str(context.config.storage.root)}
    return _json(body)


def register_storage(app: web.Application) -> None:
    """Adds the storage routes; their permission is in nvr.auth.permissions."""
    app.router.add_get("/api/v1/storage", get_storage)
