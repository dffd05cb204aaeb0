"""``GET /metrics``: Prometheus text with camera, storage, deletion and HTTP metrics."""

from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from nvr.api.app import ApiContext, make_app
from nvr.auth.permissions import Role
from nvr.ingest.events import CameraState, SegmentClosed
from nvr.metrics import Metrics
from tests.evidence.support import Archive

from .conftest import bearer


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def _scrape(client: Any, headers: dict[str, str]) -> dict[Any, float]:
    response = await client.get("/metrics", headers=headers)
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    return _samples(await response.text())


async def test_metrics_without_token_answers_401(
    context: ApiContext, aiohttp_client: Any
) -> None:
    client = await aiohttp_client(make_app(context))

    response = await client.get("/metrics")

    assert response.status == 401


async def test_metrics_viewer_token_answers_403(
    context: ApiContext, archive: Archive, aiohttp_client: Any
) -> None:
    client = await aiohttp_client(make_app(context))

    response = await client.get("/metrics", headers=bearer(archive, "v", Role.VIEWER))

    assert response.status == 403


async def test_metrics_monitor_token_reads_camera_state_and_counts(
    context: ApiContext, archive: Archive, aiohttp_client: Any
) -> None:
    client = await aiohttp_client(make_app(context))

    samples = await _scrape(client, bearer(archive, "prometheus", Role.MONITOR))

    cam = (("camera", "cam1"),)
    assert (
        samples[("nvr_camera_state", (("camera", "cam1"), ("state", "recording")))] == 1
    )
    assert samples[("nvr_camera_state", (("camera", "cam1"), ("state", "failed")))] == 0
    assert samples[("nvr_camera_packets_total", cam)] == 1234
    assert samples[("nvr_camera_bytes_total", cam)] == 987_654
    assert samples[("nvr_camera_reconnects_total", cam)] == 2
    assert samples[("nvr_camera_gap_seconds", cam)] == 0
    assert samples[("nvr_storage_disk_bytes", (("kind", "total"),))] > 0
    assert samples[("nvr_upload_backlog_segments", ())] == 0


async def test_metrics_camera_down_reports_open_gap(
    context: ApiContext,
    states: dict[str, CameraState],
    archive: Archive,
    aiohttp_client: Any,
) -> None:
    from dataclasses import replace

    from nvr.ingest.events import CameraStatus

    states["cam1"] = replace(states["cam1"], status=CameraStatus.RECONNECTING)
    client = await aiohttp_client(make_app(context))

    samples = await _scrape(client, bearer(archive, "admin", Role.ADMIN))

    assert samples[("nvr_camera_gap_seconds", (("camera", "cam1"),))] > 60
    state = samples[
        ("nvr_camera_state", (("camera", "cam1"), ("state", "reconnecting")))
    ]
    assert state == 1


async def test_metrics_retention_deletion_counted_from_index(
    context: ApiContext, archive: Archive, aiohttp_client: Any
) -> None:
    segment_id = archive.segment_ids[0]
    size = archive.path_of(segment_id).stat().st_size
    archive.index.delete_segment_row(segment_id, "retention", archive.end_us)
    client = await aiohttp_client(make_app(context))

    samples = await _scrape(client, bearer(archive, "admin", Role.ADMIN))

    assert samples[("nvr_deleted_segments_total", (("reason", "retention"),))] == 1
    assert samples[("nvr_deleted_bytes_total", (("reason", "retention"),))] == size


async def test_metrics_http_latency_labelled_by_route_template(
    context: ApiContext, archive: Archive, aiohttp_client: Any
) -> None:
    client = await aiohttp_client(make_app(context))
    headers = bearer(archive, "admin", Role.ADMIN)
    query = "start=2026-01-01T00:00:00Z&end=2026-01-01T00:01:00Z"
    for camera in ("cam1", "no-such-camera"):
        await client.get(
            f"/api/v1/cameras/{camera}/recordings?{query}", headers=headers
        )
    await client.get("/no/such/path", headers=headers)

    samples = await _scrape(client, headers)

    route = "/api/v1/cameras/{camera_id}/recordings"
    ok = (("method", "GET"), ("route", route), ("status", "200"))
    missing = (("method", "GET"), ("route", route), ("status", "404"))
    unmatched = (("method", "GET"), ("route", "unmatched"), ("status", "404"))
    assert samples[("nvr_http_request_duration_seconds_count", ok)] == 1
    assert samples[("nvr_http_request_duration_seconds_count", missing)] == 1
    assert samples[("nvr_http_request_duration_seconds_count", unmatched)] == 1
    routes = {dict(labels).get("route") for _, labels in samples}
    assert not any(r and "cam1" in r for r in routes)  # raw paths never become labels


def test_metrics_two_registries_count_independently(
    states: dict[str, CameraState],
) -> None:
    first, second = Metrics(states), Metrics(states)
    event = SegmentClosed(
        camera_id="cam1",
        run_id="r",
        seq=0,
        path="cam1/x.mp4",
        start_us=0,
        end_us=1,
        media_start=0,
        media_duration=1,
        timescale=90_000,
        bytes=100,
        sha256="0" * 64,
        video_codec="h264",
        audio_codec=None,
        width=1,
        height=1,
    )

    first.segment_indexed(event)
    first.segment_indexed(event)

    one = _samples(first.render().decode())
    other = _samples(second.render().decode())
    assert one[("nvr_segments_indexed_total", (("camera", "cam1"),))] == 2
    assert one[("nvr_segment_bytes_indexed_total", (("camera", "cam1"),))] == 200
    assert ("nvr_segments_indexed_total", (("camera", "cam1"),)) not in other
