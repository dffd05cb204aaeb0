"""``GET /readyz``: whether this server can serve and record (index, storage, S3).

``/healthz`` (in nvr.api.app) only says the process answers; ``/readyz`` runs the checks
below and answers 200 when all pass, 503 naming the failed ones otherwise. Both are
public: a load balancer or orchestrator probes them without a token.
"""

import asyncio
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from nvr.errors import NvrError

if TYPE_CHECKING:
    from nvr.api.app import ApiContext

CHECK_TIMEOUT_S = 2.0
PROBE_PREFIX = ".readyz-probe-"


@dataclass(frozen=True)
class Check:
    ok: bool
    detail: str


def ping_index(index: Any) -> None:
    """One trivial query. Blocking (runs on the index thread)."""
    with index.read() as session:
        session.execute(text("SELECT 1"))


def probe_storage(root: Path) -> None:
    """Creates, fsyncs and removes a small file in ``root``. Blocking (run in a thread)."""
    probe = root / f"{PROBE_PREFIX}{os.getpid()}-{uuid.uuid4().hex}"
    descriptor = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(descriptor, b"ready\n")
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
        probe.unlink(missing_ok=True)


async def _index_check(context: "ApiContext") -> Check:
    try:
        await asyncio.wait_for(
            context.index_call(ping_index, context.index), CHECK_TIMEOUT_S
        )
    except TimeoutError:
        return Check(False, f"no answer within {CHECK_TIMEOUT_S} s")
    except (NvrError, OSError, SQLAlchemyError) as exc:
        return Check(False, f"{type(exc).__name__}: {exc}")
    return Check(True, "answers")


async def _storage_check(context: "ApiContext") -> Check:
    root = Path(context.config.storage.root)
    try:
        await asyncio.wait_for(asyncio.to_thread(probe_storage, root), CHECK_TIMEOUT_S)
    except TimeoutError:
        return Check(False, f"probe file not written within {CHECK_TIMEOUT_S} s")
    except OSError as exc:
        return Check(False, f"not writable: {exc.strerror or exc}")
    return Check(True, "writable")


def _s3_check(context: "ApiContext") -> Check | None:
    """The uploader's last bucket probe; None when S3 is not configured.

    Note: readiness does not call S3 itself, so a probe every few seconds costs nothing
    and cannot be throttled by the provider; the uploader re-probes on its own backoff.
    """
    replication = context.replication
    if replication is None:
        return None
    status = replication.uploader.status
    if status.state == "ok":
        return Check(True, "bucket reachable")
    return Check(False, f"{status.state}: {status.last_error or 'not probed yet'}")


def _recording_check(request: web.Request) -> Check | None:
    """Whether recording runs; None when this app has no supervisor (tests, tools).

    A node whose disk is full of held recordings answers playback but records nothing,
    so it is not ready: an orchestrator must see that, not a green probe.
    """
    from nvr.api.workers import WORKER_SOURCE

    source = request.app.get(WORKER_SOURCE)
    if source is None:
        return None
    if source.paused:
        return Check(False, f"paused: {source.pause_reason or 'disk full'}")
    return Check(True, "running")


async def readyz(request: web.Request) -> web.Response:
    from nvr.api.app import CONTEXT, _json

    context = request.app[CONTEXT]
    index_check, storage_check = await asyncio.gather(
        _index_check(context), _storage_check(context)
    )
    checks = {"index": index_check, "storage": storage_check}
    s3_check = _s3_check(context)
    if s3_check is not None:
        checks["s3"] = s3_check
    recording_check = _recording_check(request)
    if recording_check is not None:
        checks["recording"] = recording_check
    ready = all(check.ok for check in checks.values())
    body = {
        "status": "ready" if ready else "not ready",
        "checks": {
            name: {"ok": c.ok, "detail": c.detail} for name, c in checks.items()
        },
    }
    return _json(body, 200 if ready else 503)


def register_health(app: web.Application) -> None:
    """Adds ``GET /readyz``; public in nvr.auth.permissions."""
    app.router.add_get("/readyz", readyz)
