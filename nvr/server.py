"""``nvr serve``: recovery, the supervisor and the HTTP API on one uvloop event loop."""

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import uvloop
from aiohttp import web

from nvr.api.app import ApiContext, make_app
from nvr.api.workers import WORKER_SOURCE
from nvr.auth.hint import warn_if_no_token
from nvr.auth.tls import server_ssl_context
from nvr.config import CameraConfig, Config
from nvr.index.db import open_index
from nvr.ingest.supervisor import Supervisor
from nvr.log import fields
from nvr.metrics import Metrics
from nvr.retention.service import RetentionService
from nvr.storage.service import Replication
from nvr.timeutil import format_rfc3339, wall_now_us

log = logging.getLogger(__name__)

T = TypeVar("T")
IndexCall = Callable[..., "asyncio.Future[Any]"]


def _demo_cameras(config: Config) -> tuple[Config, list[Any]]:
    """With no camera configured, records simulated cameras served on loopback."""
    from nvr.simulate.cameras import start_demo_cameras

    workdir = Path(config.storage.root).parent / "demo"
    simulated = start_demo_cameras(workdir)
    cameras = tuple(
        CameraConfig(id=camera.name, url=camera.url, group="general")
        for camera in simulated
    )
    log.info(
        "no cameras configured; recording simulated cameras %s",
        fields(count=len(cameras)),
    )
    return config.model_copy(update={"cameras": cameras}), simulated


def _print_hint(config: Config) -> None:
    scheme = "https" if config.http.tls_cert is not None else "http"
    base = f"{scheme}://{config.http.listen}"
    print(
        f"nvr is recording {len(config.cameras)} camera(s); API at {base}/api/v1/cameras"
    )
    now_us = wall_now_us()
    start, end = (
        format_rfc3339(now_us - 120_000_000),
        format_rfc3339(now_us + 600_000_000),
    )
    span = f"start={start}&end={end}"
    auth = '-H "Authorization: Bearer $TOKEN"'
    for camera in config.cameras[:3]:
        print(
            f"  curl {auth} '{base}/api/v1/cameras/{camera.id}/recordings?{span}'\n"
            f"  curl {auth} -o {camera.id}.mp4 '{base}/api/v1/cameras/{camera.id}/video.mp4?{span}'"
        )
    print(
        "  (segments appear once closed; start and end are RFC 3339 times)", flush=True
    )


async def _serve(config: Config, log_level: str) -> None:
    # TLS (issue 8): with a certificate the listener speaks HTTPS only; loaded first so
    # a bad certificate fails before any camera is touched
    ssl_context = server_ssl_context(config.http)
    simulated: list[Any] = []
    if not config.cameras:
        config, simulated = await asyncio.to_thread(_demo_cameras, config)
    index_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="index")
    loop = asyncio.get_running_loop()

    def index_call(function: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        return loop.run_in_executor(index_thread, function, *args)

    index = await index_call(open_index, config.index.url)
    await index_call(index.sync_groups_and_cameras, config.groups, config.cameras)
    recorded = [camera for camera in config.cameras if camera.enabled]
    supervisor = Supervisor(config, recorded, index_call, index, log_level)
    metrics = Metrics(supervisor.states)  # health (issue 7): one registry per server
    supervisor.on_segment_indexed = metrics.segment_indexed
    await supervisor.start()

    # S3 (issue 3): never contacts S3 here; S3 problems show in the log and the API
    replication = Replication(config, index, index_call) if config.s3 else None
    if replication is not None:
        await replication.start()
    # retention (issue 4): sweeps both tiers (its first pass finishes interrupted
    # deletions) and pauses recording if the disk fills with held recordings
    retention = RetentionService(
        config,
        index,
        index_call,
        replication.store if replication else None,
        supervisor,
    )
    await retention.start()
    camera_groups = await index_call(index.camera_groups)
    app = make_app(
        ApiContext(
            config,
            supervisor.states,
            index,
            index_call,
            replication,
            metrics,
            camera_groups,
        )
    )
    app[WORKER_SOURCE] = supervisor  # ingest load (issue 6): GET /api/v1/workers
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(
        runner, config.http.host, config.http.port, ssl_context=ssl_context
    )
    await site.start()
    log.info(
        "api listening %s",
        fields(listen=config.http.listen, tls=ssl_context is not None),
    )
    _print_hint(config)
    await index_call(warn_if_no_token, index)

    stopped = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopped.set)
    try:
        await stopped.wait()
    finally:
        log.info("stopping: closing open segments")
        await retention.stop()
        await runner.cleanup()
        await supervisor.stop()
        if replication is not None:
            await replication.stop()
        index_thread.shutdown(wait=True)
        for camera in simulated:
            with contextlib.suppress(OSError):
                camera.stop()
        log.info("stopped")


def serve(config: Config, log_level: str = "INFO") -> None:
    """Runs the recorder until SIGINT or SIGTERM."""
    Path(config.storage.root).mkdir(parents=True, exist_ok=True)
    uvloop.run(_serve(config, log_level))
