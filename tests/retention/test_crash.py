"""The sweeper SIGKILLed after each step of a deletion leaves no orphan after restart."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nvr.config import S3Config
from nvr.index.evidence import place_hold
from nvr.retention import catalogue
from nvr.retention.sweeper import sweep
from nvr.storage.s3 import S3Store
from nvr.storage.testing import SeaweedServer
from tests.index.support import T0_US

from .support import DAY_US, bucket_keys, make_store, replicate

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("kill_at", ["marked", "file-deleted", "object-deleted"])
@pytest.mark.parametrize("tiers", ["local", "local+s3"])
def test_sweeper_killed_after_step_restart_leaves_no_orphan(
    tmp_path: Path, kill_at: str, tiers: str, request: pytest.FixtureRequest
) -> None:
    store = make_store(tmp_path)
    ids = [store.add("cam1", seq) for seq in range(3)]
    s3_store = client = bucket = None
    env = dict(os.environ, PYTHONPATH=str(REPO))
    if tiers == "local+s3":
        server: SeaweedServer = request.getfixturevalue("aws_env")
        bucket = request.getfixturevalue("bucket")
        client = server.client()
        for segment_id in ids:
            replicate(store, client, bucket, segment_id)
        s3_store = S3Store(S3Config(endpoint_url=server.endpoint_url, bucket=bucket))
        env.update(server.env())
    args = {
        "db": f"sqlite:///{tmp_path / 'index.db'}",
        "root": str(store.root),
        "now_us": T0_US + 31 * DAY_US,
        "kill_at": kill_at,
        "endpoint": None if s3_store is None else s3_store.config.endpoint_url,
        "bucket": bucket,
    }

    killed = subprocess.run(
        [sys.executable, "-m", "tests.retention.crash_sweep", json.dumps(args)],
        env=env,
        cwd=REPO,
        timeout=60,
    )

    assert killed.returncode == -9
    assert len(catalogue.marked(store.index, 10)) == 1  # one deletion left half done
    # restart: the first sweep of the server finishes it (nothing else is due yet)
    store.clock.now_us = T0_US + DAY_US
    assert (
        sweep(store.index, store.root, now_us=store.clock, store=s3_store).segments == 0
    )
    assert catalogue.marked(store.index, 10) == []
    assert store.files() == store.rows()
    assert len(store.rows()) == 2
    assert [d.segment_id for d in store.index.deletions("cam1")] == [ids[0]]
    if client is not None:
        assert bucket is not None
        remaining = bucket_keys(client, bucket)
        assert len(remaining) == 2 and all(
            key.endswith(tuple(path.rsplit("/", 1)[1] for path in store.rows()))
            for key in remaining
        )


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
