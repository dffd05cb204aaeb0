"""Prometheus metrics of one server: camera gauges read at scrape time, counters, latency.

Each ``Metrics`` has its own ``CollectorRegistry`` (never the process-global one), so two
apps in one test process do not share counters. Camera metrics are not booked twice:
``CameraCollector`` reads the supervisor's live ``CameraState`` map when scraped.
The segments-indexed counter is fed by the supervisor; values that need the index or
the disk (deletions, upload backlog, disk use) are read by ``nvr.api.metrics`` just
before a scrape renders.
"""

import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from nvr.index.models import Deletion
from nvr.ingest.events import CameraState, CameraStatus, SegmentClosed
from nvr.timeutil import wall_now_us

US_PER_S = 1_000_000
# HTTP latency buckets (seconds): API listings take milliseconds, clips up to minutes.
LATENCY_BUCKETS_S = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
    300,
)


class CameraCollector(Collector):
    """Per-camera state, packets, bytes, reconnects and open gap, read from live states."""

    def __init__(
        self, states: Mapping[str, CameraState], clock: Callable[[], int] = wall_now_us
    ) -> None:
        self._states = states
        self._clock = clock

    def collect(self) -> Iterator[Metric]:
        now_us = self._clock()
        state = GaugeMetricFamily(
            "nvr_camera_state",
            "1 for the camera's current state, 0 for the others",
            labels=["camera", "state"],
        )
        packets = CounterMetricFamily(
            "nvr_camera_packets",
            "packets received in the current worker's lifetime",
            labels=["camera"],
        )
        received = CounterMetricFamily(
            "nvr_camera_bytes",
            "packet bytes received in the current worker's lifetime",
            labels=["camera"],
        )
        reconnects = CounterMetricFamily(
            "nvr_camera_reconnects",
            "reconnections in the current worker's lifetime",
            labels=["camera"],
        )
        bitrate = GaugeMetricFamily(
            "nvr_camera_bitrate_bps", "recent received bitrate", labels=["camera"]
        )
        gap = GaugeMetricFamily(
            "nvr_camera_gap_seconds",
            "seconds since the last packet while not recording (the open gap), else 0",
            labels=["camera"],
        )
        for camera_id, camera in sorted(dict(self._states).items()):
            for status in CameraStatus:
                state.add_metric(
                    [camera_id, status.value], float(camera.status == status)
                )
            packets.add_metric([camera_id], camera.packets)
            received.add_metric([camera_id], camera.bytes)
            reconnects.add_metric([camera_id], camera.reconnects)
            bitrate.add_metric([camera_id], camera.bitrate_bps)
            gap.add_metric([camera_id], open_gap_s(camera, now_us))
        yield from (state, packets, received, reconnects, bitrate, gap)


def open_gap_s(camera: CameraState, now_us: int) -> float:
    """How long a camera that is not recording has gone without a packet, in seconds."""
    if camera.status == CameraStatus.RECORDING or camera.last_packet_us is None:
        return 0.0
    return max(0, now_us - camera.last_packet_us) / US_PER_S


class DeletionCollector(Collector):
    """Segments and bytes deleted, by reason, as last read from the index's deletion log.

    Note: read from the ``deletions`` table at scrape time rather than counted in the
    sweeper, so the totals survive restarts and count every deleter (retention, space).
    """

    def __init__(self) -> None:
        self.totals: dict[str, tuple[int, int]] = {}
        """reason -> (segments, bytes); set by ``nvr.api.metrics.refresh``."""

    def collect(self) -> Iterator[Metric]:
        segments = CounterMetricFamily(
            "nvr_deleted_segments",
            "segments deleted, by reason (e.g. retention)",
            labels=["reason"],
        )
        freed = CounterMetricFamily(
            "nvr_deleted_bytes",
            "bytes of the segments deleted, by reason",
            labels=["reason"],
        )
        for reason, (count, total) in sorted(self.totals.items()):
            segments.add_metric([reason], count)
            freed.add_metric([reason], total)
        yield from (segments, freed)


def deletion_totals(index: Any) -> dict[str, tuple[int, int]]:
    """Segments and bytes in the deletion log by reason. Blocking (index thread)."""
    # Limitation: a full scan of ``deletions`` per scrape; fine for a few million rows
    # (tens of ms on SQLite); a running total kept in the index would make it constant.
    statement = select(
        Deletion.reason, func.count(), func.coalesce(func.sum(Deletion.bytes), 0)
    ).group_by(Deletion.reason)
    with index.read() as session:
        rows = session.execute(statement).all()
    return {str(reason): (int(count), int(total)) for reason, count, total in rows}


class Metrics:
    """The registry of one server and the metrics fed from outside the API."""

    def __init__(self, states: Mapping[str, CameraState]) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(CameraCollector(states))
        self.deletions = DeletionCollector()
        self.registry.register(self.deletions)
        self.segments_indexed = Counter(
            "nvr_segments_indexed",
            "segments written and committed to the index",
            ["camera"],
            registry=self.registry,
        )
        self.segment_bytes = Counter(
            "nvr_segment_bytes_indexed",
            "bytes of the segments indexed",
            ["camera"],
            registry=self.registry,
        )
        self.upload_backlog_segments = Gauge(
            "nvr_upload_backlog_segments",
            "segments not yet replicated to S3 (0 without S3)",
            registry=self.registry,
        )
        self.upload_backlog_bytes = Gauge(
            "nvr_upload_backlog_bytes",
            "bytes not yet replicated to S3 (0 without S3)",
            registry=self.registry,
        )
        self.disk_bytes = Gauge(
            "nvr_storage_disk_bytes",
            "file system of storage.root: total, used, free",
            ["kind"],
            registry=self.registry,
        )
        self.http_seconds = Histogram(
            "nvr_http_request_duration_seconds",
            "time to answer an API request",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )

    def segment_indexed(self, event: SegmentClosed) -> None:
        """Counts one segment the supervisor committed to the index."""
        self.segments_indexed.labels(event.camera_id).inc()
        self.segment_bytes.labels(event.camera_id).inc(event.bytes)

    def observe_request(
        self, method: str, route: str, status: int, started_s: float
    ) -> None:
        """Records one request's latency; ``started_s`` is a ``time.perf_counter()``."""
        elapsed_s = time.perf_counter() - started_s
        self.http_seconds.labels(method, route, str(status)).observe(elapsed_s)

    def render(self) -> bytes:
        """The text exposition format of every metric."""
        return generate_latest(self.registry)
