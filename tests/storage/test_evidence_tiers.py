"""Evidence on both tiers: exports and the archive audit with segments evicted to S3.

A real archive (FFmpeg-cut segments, SQLite index) replicated to a real SeaweedFS server;
the oldest segments are evicted by the real evictor, so their only copy is in S3.
"""

import asyncio
import io
import json
import zipfile
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import av
import pytest
from click.testing import CliRunner
from evidence.support import WALL_T0_US, Archive, S, build_archive, cut_segments
from evidence.support import index_call as evidence_index_call

from nvr.api.app import ApiContext, make_app
from nvr.auth.permissions import Role
from nvr.auth.tokens import create_token
from nvr.cli import main
from nvr.config import Config
from nvr.evidence.archive import ArchiveAudit, audit_archive
from nvr.evidence.verify import verify_package
from nvr.storage import replicas
from nvr.storage.keys import US_PER_DAY
from nvr.storage.s3 import S3Store
from nvr.storage.service import Replication
from nvr.storage.testing import SeaweedServer
from nvr.timeutil import format_rfc3339

from .conftest import new_bucket

ClientFactory = Callable[..., Awaitable[Any]]
EVICTED = 2  # the archive's first two segments (run A, 0-8 s) end up only in S3


@pytest.fixture(scope="module")
def tier_media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Path]]:
    base = tmp_path_factory.mktemp("tier-media")
    return {
        "a": cut_segments(base / "a", seconds=12, segment_s=4, offset_s=0),
        "b": cut_segments(base / "b", seconds=8, segment_s=4, offset_s=20),
    }


@pytest.fixture
def tiered(tmp_path: Path, tier_media: dict[str, list[Path]]) -> Iterator[Archive]:
    built = build_archive(tmp_path, tier_media)
    yield built
    built.index.close()


def _settings(archive: Archive, server: SeaweedServer, bucket: str) -> dict[str, Any]:
    """The recorder's config as TOML-shaped data: one day on local disk, then S3 only."""
    return {
        "storage": {"root": str(archive.root)},
        "index": {"url": archive.config.index.url},
        "groups": [{"name": "general", "retention_days": 30, "local_days": 1}],
        "cameras": [{"id": "cam1", "url": "rtsp://127.0.0.1:1/a"}],
        "s3": {
            "endpoint_url": server.endpoint_url,
            "bucket": bucket,
            "retry_max_seconds": 2,
            "request_timeout_seconds": 5,
        },
    }


async def _replicate_and_evict(archive: Archive, config: Config) -> Replication:
    """Uploads every segment, then evicts the first ``EVICTED`` as a day later."""
    last_evicted = archive.index.segment_by_id(archive.segment_ids[EVICTED - 1])
    assert last_evicted is not None
    now_us = last_evicted.end_us + US_PER_DAY + 1
    replication = Replication(
        config, archive.index, evidence_index_call, clock=lambda: now_us, poll_s=0.1
    )
    assert await replication.uploader.drain(30)
    assert await replication.evictor.evict_once() == EVICTED
    states = replicas.states(archive.index, archive.segment_ids)
    assert [states[i] for i in archive.segment_ids] == (
        ["evicted"] * EVICTED + ["replicated"] * (len(archive.segment_ids) - EVICTED)
    )
    assert [archive.path_of(i).exists() for i in archive.segment_ids[:EVICTED]] == [
        False
    ] * EVICTED
    return replication


def _object_key(archive: Archive, segment_id: int) -> str:
    return replicas.object_keys(archive.index, [segment_id])[segment_id]


async def _run_export(
    client: Any, headers: dict[str, str], start_us: int, end_us: int
) -> tuple[str, dict[str, Any]]:
    """Starts an export through the API and waits for it to finish or fail."""
    answer = await client.post(
        "/api/v1/exports",
        headers=headers,
        json={
            "camera": "cam1",
            "start": format_rfc3339(start_us),
            "end": format_rfc3339(end_us),
            "case_id": "CASE-7",
            "reason": "tiers",
        },
    )
    assert answer.status == 202, await answer.text()
    export_id = str((await answer.json())["id"])
    state: dict[str, Any] = {}
    for _ in range(600):
        state = await (
            await client.get(f"/api/v1/exports/{export_id}", headers=headers)
        ).json()
        if state["state"] in ("done", "failed"):
            break
        await asyncio.sleep(0.05)
    return export_id, state


async def _export(
    client: Any, headers: dict[str, str], start_us: int, end_us: int
) -> bytes:
    export_id, state = await _run_export(client, headers, start_us, end_us)
    assert state["state"] == "done", state
    download = await client.get(
        f"/api/v1/exports/{export_id}/download", headers=headers
    )
    assert download.status == 200
    return bytes(await download.read())


async def test_export_spanning_local_and_s3_tiers_verifies_and_decodes(
    aiohttp_client: ClientFactory,
    aws_env: SeaweedServer,
    bucket: str,
    tiered: Archive,
    tmp_path: Path,
) -> None:
    config = Config.model_validate(_settings(tiered, aws_env, bucket))
    replication = await _replicate_and_evict(tiered, config)
    app = make_app(
        ApiContext(
            config, {}, tiered.index, evidence_index_call, replication=replication
        )
    )
    client = await aiohttp_client(app)
    headers = {
        "Authorization": f"Bearer {create_token(tiered.index, 'olive', Role.OPERATOR)}"
    }
    start_us, end_us = WALL_T0_US + 2 * S, tiered.run_a_end_us  # 2 evicted + 1 local

    package = await _export(client, headers, start_us, end_us)

    path = tmp_path / "package.zip"
    path.write_bytes(package)
    with zipfile.ZipFile(path) as archive_zip:
        manifest = json.loads(archive_zip.read("manifest.json"))
        video = archive_zip.read("video.mp4")
    assert [s["id"] for s in manifest["segments"]] == tiered.segment_ids[:3]
    keys = await (await client.get("/api/v1/keys", headers=headers)).json()
    report = verify_package(path, keys["keys"][0]["public_key_pem"].encode())
    assert report.passed, report.checks
    assert report.key_source == "trusted"
    with av.open(io.BytesIO(video)) as container:
        frames = sum(1 for _ in container.decode(video=0))
    assert frames >= (end_us - start_us) * 25 // S - 25


async def test_export_evicted_segment_altered_in_s3_fails_naming_it(
    aiohttp_client: ClientFactory,
    aws_env: SeaweedServer,
    bucket: str,
    tiered: Archive,
) -> None:
    config = Config.model_validate(_settings(tiered, aws_env, bucket))
    replication = await _replicate_and_evict(tiered, config)
    first = tiered.segment_ids[0]
    aws_env.client().put_object(
        Bucket=bucket, Key=_object_key(tiered, first), Body=b"not the recording"
    )
    app = make_app(
        ApiContext(
            config, {}, tiered.index, evidence_index_call, replication=replication
        )
    )
    client = await aiohttp_client(app)
    headers = {
        "Authorization": f"Bearer {create_token(tiered.index, 'olive', Role.OPERATOR)}"
    }

    _, state = await _run_export(client, headers, WALL_T0_US, WALL_T0_US + 3 * S)

    assert state["state"] == "failed"
    assert f"segment {first} " in state["error"]


def _audit(archive: Archive, store: S3Store | None) -> ArchiveAudit:
    return audit_archive(archive.index, archive.root, "cam1", store=store)


async def test_audit_archive_evicted_segments_rehashed_from_s3_clean(
    aws_env: SeaweedServer,
    bucket: str,
    tiered: Archive,
) -> None:
    config = Config.model_validate(_settings(tiered, aws_env, bucket))
    replication = await _replicate_and_evict(tiered, config)

    result = _audit(tiered, replication.store)

    assert result.clean, result.findings
    assert result.hashed == len(tiered.segment_ids)


@pytest.mark.parametrize("object_lock", [False, True], ids=["plain", "versioned"])
async def test_audit_archive_object_overwritten_in_s3_reported_altered_on_s3_tier(
    aws_env: SeaweedServer,
    tiered: Archive,
    object_lock: bool,
) -> None:
    # A bucket with Object Lock enabled is versioned: the overwrite is a new version and
    # the original stays, but the audit reads the current one, as an export would.
    bucket = new_bucket(aws_env, object_lock=object_lock)
    settings = _settings(tiered, aws_env, bucket)
    config = Config.model_validate(settings)
    replication = await _replicate_and_evict(tiered, config)
    target = tiered.segment_ids[1]
    key = _object_key(tiered, target)
    client = aws_env.client()
    original = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    changed = bytearray(original)
    changed[len(changed) // 2] ^= 0x01  # same size, one bit different
    client.put_object(Bucket=bucket, Key=key, Body=bytes(changed))

    result = _audit(tiered, replication.store)

    assert [(f.kind, f.record.segment_id, f.tier) for f in result.findings] == [
        ("altered", target, "s3")
    ]
    assert f"s3://{bucket}/{key}: sha256" in result.findings[0].detail


async def test_audit_archive_object_deleted_from_s3_reported_missing_on_s3_tier(
    aws_env: SeaweedServer,
    bucket: str,
    tiered: Archive,
) -> None:
    config = Config.model_validate(_settings(tiered, aws_env, bucket))
    replication = await _replicate_and_evict(tiered, config)
    target = tiered.segment_ids[0]
    aws_env.client().delete_object(Bucket=bucket, Key=_object_key(tiered, target))

    result = _audit(tiered, replication.store)

    assert [(f.kind, f.record.segment_id, f.tier) for f in result.findings] == [
        ("missing", target, "s3")
    ]


async def test_audit_archive_evicted_without_s3_store_reported_unverified(
    aws_env: SeaweedServer,
    bucket: str,
    tiered: Archive,
) -> None:
    config = Config.model_validate(_settings(tiered, aws_env, bucket))
    await _replicate_and_evict(tiered, config)

    result = _audit(tiered, None)

    assert [(f.kind, f.record.segment_id) for f in result.findings] == [
        ("unverified", segment_id) for segment_id in tiered.segment_ids[:EVICTED]
    ]
    assert not result.clean


def _toml(settings: dict[str, Any], path: Path) -> Path:
    """Writes the settings as the TOML file ``nvr audit --config`` reads."""
    lines = [
        f'[storage]\nroot = "{settings["storage"]["root"]}"',
        f'[index]\nurl = "{settings["index"]["url"]}"',
        '[[groups]]\nname = "general"\nretention_days = 30\nlocal_days = 1',
        '[[cameras]]\nid = "cam1"\nurl = "rtsp://127.0.0.1:1/a"',
    ]
    s3 = settings["s3"]
    lines.append(
        f'[s3]\nendpoint_url = "{s3["endpoint_url"]}"\nbucket = "{s3["bucket"]}"\n'
        "request_timeout_seconds = 5"
    )
    path.write_text("\n".join(lines) + "\n")
    return path


async def test_audit_command_with_s3_config_reads_evicted_segments_from_s3(
    aws_env: SeaweedServer,
    bucket: str,
    tiered: Archive,
    tmp_path: Path,
) -> None:
    settings = _settings(tiered, aws_env, bucket)
    await _replicate_and_evict(tiered, Config.model_validate(settings))
    config_path = _toml(settings, tmp_path / "nvr.toml")
    command = ["audit", "--config", str(config_path), "--camera", "cam1"]

    clean = CliRunner().invoke(main, command)
    target = tiered.segment_ids[0]
    aws_env.client().put_object(
        Bucket=bucket, Key=_object_key(tiered, target), Body=b"x" * 100
    )
    altered = CliRunner().invoke(main, command)

    assert clean.exit_code == 0, clean.output
    assert "5 files re-hashed" in clean.output and "result: CLEAN" in clean.output
    assert altered.exit_code == 1, altered.output
    assert f"ALTERED  segment {target} " in altered.output
    assert f"s3://{bucket}/" in altered.output


async def test_playback_of_evicted_segment_while_s3_down_answers_503(
    aiohttp_client: ClientFactory,
    own_seaweed: SeaweedServer,
    tiered: Archive,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in own_seaweed.env().items():
        monkeypatch.setenv(name, value)
    config = Config.model_validate(
        _settings(tiered, own_seaweed, new_bucket(own_seaweed))
    )
    replication = await _replicate_and_evict(tiered, config)
    app = make_app(
        ApiContext(
            config, {}, tiered.index, evidence_index_call, replication=replication
        )
    )
    client = await aiohttp_client(app)
    headers = {
        "Authorization": f"Bearer {create_token(tiered.index, 'vera', Role.VIEWER)}"
    }
    query = f"start={format_rfc3339(WALL_T0_US + S)}&end={format_rfc3339(WALL_T0_US + 3 * S)}"
    own_seaweed.stop()

    answer = await client.get(
        f"/api/v1/cameras/cam1/video.mp4?{query}", headers=headers
    )

    assert answer.status == 503, await answer.text()
    assert "object storage is unavailable" in (await answer.json())["error"]["message"]
