"""``/healthz`` and ``/readyz`` on the real app: public, and naming each failed check."""

from pathlib import Path
from typing import Any

from sqlalchemy import create_engine

from nvr.api.app import ApiContext, make_app
from nvr.api.workers import WORKER_SOURCE
from nvr.index.repo import Index
from nvr.ingest.supervisor import Supervisor
from tests.evidence.support import Archive, index_call


async def test_healthz_without_token_answers_ok(
    context: ApiContext, aiohttp_client: Any
) -> None:
    client = await aiohttp_client(make_app(context))

    response = await client.get("/healthz")

    assert response.status == 200
    assert (await response.json())["status"] == "ok"


async def test_readyz_index_and_storage_fine_answers_200_naming_checks(
    context: ApiContext, archive: Archive, aiohttp_client: Any
) -> None:
    client = await aiohttp_client(make_app(context))

    response = await client.get("/readyz")

    body = await response.json()
    assert response.status == 200, body
    assert body["status"] == "ready"
    assert body["checks"]["index"]["ok"] is True
    assert body["checks"]["storage"]["ok"] is True
    assert "s3" not in body["checks"]  # not configured
    assert not [p for p in archive.root.iterdir() if p.name.startswith(".readyz")]


async def test_readyz_storage_root_not_a_directory_answers_503(
    context: ApiContext, tmp_path: Path, aiohttp_client: Any
) -> None:
    blocker = tmp_path / "other" / "segments"  # a file where the directory should be
    blocker.parent.mkdir()
    blocker.write_text("x")
    storage = context.config.storage.model_copy(update={"root": blocker})
    config = context.config.model_copy(update={"storage": storage})
    client = await aiohttp_client(
        make_app(ApiContext(config, {}, context.index, index_call))
    )

    response = await client.get("/readyz")

    body = await response.json()
    assert response.status == 503
    assert body["status"] == "not ready"
    assert body["checks"]["storage"]["ok"] is False
    assert "not writable" in body["checks"]["storage"]["detail"]
    assert body["checks"]["index"]["ok"] is True


async def test_readyz_index_unreachable_answers_503(
    context: ApiContext, aiohttp_client: Any
) -> None:
    client = await aiohttp_client(make_app(context))
    # after start-up the index moves to a PostgreSQL port nothing listens on
    engine = create_engine(
        "postgresql+psycopg://postgres@127.0.0.1:1/test?connect_timeout=1"
    )
    context.index = Index(engine)

    response = await client.get("/readyz")

    body = await response.json()
    assert response.status == 503
    assert body["checks"]["index"]["ok"] is False
    assert "OperationalError" in body["checks"]["index"]["detail"]
    assert body["checks"]["storage"]["ok"] is True
    engine.dispose()


async def test_readyz_recording_paused_by_disk_pressure_answers_503(
    context: ApiContext, aiohttp_client: Any
) -> None:
    # a real supervisor with no cameras: pausing it is what disk pressure does
    supervisor = Supervisor(context.config, [], index_call, context.index)
    app = make_app(context)
    app[WORKER_SOURCE] = supervisor
    client = await aiohttp_client(app)
    assert (await client.get("/readyz")).status == 200

    await supervisor.pause_recording("disk full of held recordings")
    paused = await client.get("/readyz")
    await supervisor.resume_recording()
    resumed = await client.get("/readyz")

    body = await paused.json()
    assert paused.status == 503
    assert body["checks"]["recording"] == {
        "ok": False,
        "detail": "paused: disk full of held recordings",
    }
    assert resumed.status == 200
