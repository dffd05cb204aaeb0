"""Crash safety of batched deletion: a real sweeper process SIGKILLed after each step of
the procedure (docs/retention.md), on SQLite and PostgreSQL, local only and local +
SeaweedFS S3; the restarted sweep must leave no orphan, no mark, every deletion logged
and audited exactly once, and both hash chains intact."""

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from nvr.config import S3Config
from nvr.evidence.chain import audit_chain_breaks, walk_segment_chain
from nvr.index.evidence import (
    audit_entries,
    iter_audit_log,
    iter_chain_records,
    place_hold,
)
from nvr.retention import catalogue
from nvr.retention.sweeper import sweep
from nvr.storage.s3 import S3Store
from nvr.storage.testing import SeaweedServer
from tests.index.support import T0_US

from .support import DAY_US, Store, bucket_keys, make_store, replicate

REPO = Path(__file__).resolve().parents[2]
BATCH = 3  # five due segments: a first batch of three, then two
OBJECTS_PER_REQUEST = 2  # the first batch's objects take two DeleteObjects requests


@dataclass(frozen=True)
class Left:
    """What the killed sweep left of the first batch (three segments)."""

    files_gone: int
    objects_gone: int
    marked: int
    logged: int


# After each step of the first batch: its three segments are marked, then their files
# go one by one, then the objects two per request, then the rows (not yet committed at
# "rows-written", so nothing is logged), then the commit.
LEFT_AFTER = {
    "marked": Left(files_gone=0, objects_gone=0, marked=3, logged=0),
    "file-deleted": Left(files_gone=1, objects_gone=0, marked=3, logged=0),
    "files-deleted": Left(files_gone=3, objects_gone=0, marked=3, logged=0),
    "object-deleted": Left(files_gone=3, objects_gone=2, marked=3, logged=0),
    "objects-deleted": Left(files_gone=3, objects_gone=3, marked=3, logged=0),
    "rows-written": Left(files_gone=3, objects_gone=3, marked=3, logged=0),
    "rows-removed": Left(files_gone=3, objects_gone=3, marked=0, logged=3),
}
CASES = [
    (step, tiers)
    for tiers in ("local", "local+s3")
    for step in LEFT_AFTER
    if not (tiers == "local" and step == "object-deleted")  # no object, no request
]


def _kill_sweep_at(
    store: Store, db_url: str, kill_at: str, server: SeaweedServer | None, bucket: str
) -> int:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    if server is not None:
        env.update(server.env())
    args = {
        "db": db_url,
        "root": str(store.root),
        "now_us": T0_US + 31 * DAY_US,
        "kill_at": kill_at,
        "endpoint": None if server is None else server.endpoint_url,
        "bucket": None if server is None else bucket,
        "batch": BATCH,
        "objects_per_request": OBJECTS_PER_REQUEST,
    }
    killed = subprocess.run(
        [sys.executable, "-m", "tests.retention.crash_sweep", json.dumps(args)],
        env=env,
        cwd=REPO,
        timeout=120,
    )
    return killed.returncode


def _assert_explained(store: Store, deleted: list[int]) -> None:
    """Each deleted segment logged and audited once; both chains walk clean."""
    logged = sorted(d.segment_id for d in store.index.deletions("cam1", limit=100))
    assert logged == sorted(deleted)
    audited = audit_entries(store.index, action="deletion")
    assert sorted(json.loads(e.details)["segment_id"] for e in audited) == logged
    assert list(audit_chain_breaks(iter_audit_log(store.index))) == []
    links = list(walk_segment_chain(iter_chain_records(store.index, "cam1")))
    assert len(links) == 6 and all(link.intact for link in links)


@pytest.mark.parametrize(("kill_at", "tiers"), CASES)
def test_sweeper_killed_after_step_restart_leaves_no_orphan(
    tmp_path: Path,
    db_url: str,
    kill_at: str,
    tiers: str,
    request: pytest.FixtureRequest,
) -> None:
    store = make_store(tmp_path, url=db_url)
    ids = [store.add("cam1", seq) for seq in range(5)]
    ids.append(store.add("cam1", 5, start_s=2 * 86_400))  # due a day after the rest
    store.add("cam2", 0)  # key-area keeps it 90 days
    due, first_batch = ids[:5], ids[:3]
    paths = {i: row.path for i in ids if (row := store.index.segment_by_id(i))}
    server: SeaweedServer | None = None
    s3_store = client = None
    bucket = ""
    keys: dict[int, str] = {}
    if tiers == "local+s3":
        server = request.getfixturevalue("aws_env")
        bucket = request.getfixturevalue("bucket")
        client = server.client()
        keys = {i: replicate(store, client, bucket, i) for i in ids}
        s3_store = S3Store(S3Config(endpoint_url=server.endpoint_url, bucket=bucket))

    status = _kill_sweep_at(store, db_url, kill_at, server, bucket)

    # the kill came exactly after the named step of the first batch
    assert status == -9
    left = LEFT_AFTER[kill_at]
    files = store.files()
    assert sum(paths[i] not in files for i in first_batch) == left.files_gone
    assert all(paths[i] in files for i in ids[3:])
    assert len(catalogue.marked(store.index, 10)) == left.marked
    assert len(store.index.deletions("cam1")) == left.logged
    assert len(audit_entries(store.index, action="deletion")) == left.logged
    if client is not None:
        objects = bucket_keys(client, bucket)
        assert sum(keys[i] not in objects for i in first_batch) == left.objects_gone
        assert all(keys[i] in objects for i in ids[3:])

    # restart: the server's first sweep finishes the first batch (nothing else is due)
    store.clock.now_us = T0_US + DAY_US
    restarted = sweep(store.index, store.root, now_us=store.clock, store=s3_store)

    assert restarted.segments == 0  # completions are not counted as new deletions
    assert catalogue.marked(store.index, 10) == []
    assert store.files() == store.rows()
    assert {paths[i] for i in ids[3:]} <= store.rows()
    _assert_explained(store, first_batch)
    if client is not None:
        assert bucket_keys(client, bucket) == {keys[i] for i in ids[3:]}

    # and the next sweep deletes the rest of what is due as if nothing had happened
    store.clock.now_us = T0_US + 31 * DAY_US
    later = sweep(store.index, store.root, now_us=store.clock, store=s3_store)

    assert later.segments == 2
    assert store.files() == store.rows()
    assert {paths[ids[5]]} <= store.rows() and len(store.rows()) == 2
    _assert_explained(store, due)
    if client is not None:
        assert bucket_keys(client, bucket) == {keys[ids[5]]}


def test_marked_then_held_before_any_byte_deleted_restart_withdraws_deletion(
    tmp_path: Path,
) -> None:
    store = make_store(tmp_path)
    segment_id = store.add("cam1", 0)
    assert (
        catalogue.mark_deleting(store.index, segment_id, "retention", T0_US) is not None
    )
    place_hold(
        store.index, "cam1", T0_US, T0_US + DAY_US, "CASE-2", "late hold", "olive"
    )

    result = sweep(store.index, store.root, now_us=lambda: T0_US + 400 * DAY_US)

    assert result.segments == 0
    assert catalogue.marked(store.index, 10) == []
    assert len(store.files()) == 1 and store.files() == store.rows()


def test_batch_marked_then_one_held_restart_withdraws_it_finishes_others(
    tmp_path: Path,
) -> None:
    store = make_store(tmp_path)
    ids = [store.add("cam1", seq) for seq in range(3)]
    marking = catalogue.mark_batch(store.index, ids, "retention", T0_US + 31 * DAY_US)
    assert [c.segment_id for c in marking.marked] == ids and marking.held == []
    place_hold(  # covers the middle segment only
        store.index, "cam1", T0_US + 61_000_000, T0_US + 62_000_000, "C-9", "x", "olive"
    )

    result = sweep(store.index, store.root, now_us=lambda: T0_US + DAY_US)

    assert result.segments == 0
    assert catalogue.marked(store.index, 10) == []
    assert [d.segment_id for d in store.index.deletions("cam1")] == [ids[2], ids[0]]
    assert (
        store.files()
        == store.rows()
        == {row.path for row in [store.index.segment_by_id(ids[1])] if row}
    )
