"""A real index (SQLite, or PostgreSQL when a test asks) with real segment files, and
a clock the tests move by hand."""

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from nvr.config import CameraConfig, GroupConfig
from nvr.index import Index, open_index
from tests.index.support import SECOND_US, T0_US, segment_event

DAY_US = 86_400 * SECOND_US
GROUPS = (
    GroupConfig(name="general", retention_days=30),
    GroupConfig(name="key-area", retention_days=90, priority=10),
)
CAMERAS = (
    CameraConfig(id="cam1", url="rtsp://127.0.0.1/a", group="general"),
    CameraConfig(id="cam2", url="rtsp://127.0.0.1/b", group="key-area"),
)


@dataclass
class Clock:
    """An injected wall clock: ``now_us`` only changes when a test sets it."""

    now_us: int = T0_US

    def __call__(self) -> int:
        return self.now_us


@dataclass
class Store:
    index: Index
    root: Path
    clock: Clock
    ids: dict[tuple[str, int], int] = field(default_factory=dict)  # (camera, seq) -> id

    def add(
        self,
        camera_id: str,
        seq: int,
        size: int = 10,
        start_s: float | None = None,
        duration_s: float = 60,
    ) -> int:
        """Writes a real file of ``size`` bytes and indexes it as one segment."""
        start = seq * duration_s if start_s is None else start_s
        event = segment_event(
            camera_id, f"run-{camera_id}", seq, start, duration_s, sha=str(seq % 10)
        )
        event = dataclasses.replace(event, bytes=size)
        path = self.root / event.path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\0" * size)
        segment_id = self.index.add_segment(event)
        self.ids[(camera_id, seq)] = segment_id
        return segment_id

    def files(self) -> set[str]:
        return {p.relative_to(self.root).as_posix() for p in self.root.rglob("*.mp4")}

    def rows(self) -> set[str]:
        with self.index.read() as session:
            from sqlalchemy import select

            from nvr.index.models import Segment

            return set(session.scalars(select(Segment.path)))


def make_store(
    tmp_path: Path, root: Path | None = None, url: str | None = None
) -> Store:
    """A fresh index at ``url`` (default: SQLite in ``tmp_path``) with both groups."""
    clock = Clock()
    index = open_index(url or sqlite_url(tmp_path), clock=clock)
    index.sync_groups_and_cameras(GROUPS, CAMERAS)
    storage_root = root if root is not None else tmp_path / "segments"
    storage_root.mkdir(parents=True, exist_ok=True)
    return Store(index, storage_root, clock)


def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'index.db'}"


def replicate(
    store: Store, client: object, bucket: str, segment_id: int, **put: object
) -> str:
    """Uploads the segment's file to ``bucket`` and records it ``replicated``; its key.

    ``put`` goes to ``PutObject`` as is (e.g. an Object Lock mode and date).
    """
    from nvr.storage import replicas
    from nvr.storage.keys import object_key

    row = store.index.segment_by_id(segment_id)
    assert row is not None
    key = object_key("", row.camera_id, row.start_us)
    answer = client.put_object(
        Bucket=bucket,
        Key=key,  # type: ignore[attr-defined]
        Body=(store.root / row.path).read_bytes(),
        **put,
    )
    replicas.enqueue_new(store.index, "", segment_id - 1, store.clock())
    replicas.mark_replicated(
        store.index, segment_id, None, answer.get("VersionId"), None, store.clock()
    )
    return key


def bucket_keys(client: object, bucket: str) -> set[str]:
    answer = client.list_objects_v2(Bucket=bucket)  # type: ignore[attr-defined]
    return {item["Key"] for item in answer.get("Contents", [])}
