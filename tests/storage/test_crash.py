"""A recorder killed (SIGKILL) in the middle of a multipart upload, then restarted."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import select

from nvr.index import Index
from nvr.index.models import Replica
from nvr.storage.testing import SeaweedServer

from .support import WALL_T0_US, place_blob

MIB = 1024 * 1024
REPO = Path(__file__).resolve().parents[2]

# The uploader alone, as ``nvr serve`` runs it, in a process of its own to be killed.
UPLOADER_SCRIPT = """
import asyncio, sys
from pathlib import Path
from nvr.config import S3Config
from nvr.index import open_index
from nvr.storage.s3 import S3Store
from nvr.storage.uploader import Uploader

async def index_call(function, *args):
    return await asyncio.to_thread(function, *args)

async def main(url, root, endpoint, bucket):
    config = S3Config(endpoint_url=endpoint, bucket=bucket, multipart_threshold_mb=5,
                      part_size_mb=5, upload_concurrency=1)
    index = open_index(url)
    uploader = Uploader(S3Store(config), index, index_call, Path(root), config, poll_s=0.1)
    await uploader.drain(120)

asyncio.run(main(*sys.argv[1:]))
"""


def _row(index: Index, segment_id: int) -> tuple[str, str | None, str]:
    with index.read() as session:
        row = session.scalars(
            select(Replica).where(Replica.segment_id == segment_id)
        ).first()
        if row is None:
            return "none", None, ""
        return row.state, row.upload_id, row.object_key


def _kill_during_upload(
    index: Index,
    segment_id: int,
    storage_root: Path,
    server: SeaweedServer,
    bucket: str,
) -> None:
    url = str(index.engine.url)
    env = dict(os.environ, PYTHONPATH=str(REPO), **server.env())
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            UPLOADER_SCRIPT,
            url,
            str(storage_root),
            server.endpoint_url,
            bucket,
        ],
        env=env,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            state, upload_id, _ = _row(index, segment_id)
            if state == "uploading" and upload_id is not None:
                break
            assert process.poll() is None, "the uploader finished before it was killed"
            time.sleep(0.01)
        else:
            raise AssertionError("the multipart upload never started")
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)


async def test_uploader_killed_mid_multipart_restart_completes_queue(
    aws_env: SeaweedServer, bucket: str, index: Index, storage_root: Path
) -> None:
    from .test_uploader import _uploader

    event = place_blob(storage_root, "cam1", 0, WALL_T0_US, 60 * MIB + 5)
    segment_id = index.add_segment(event)
    _kill_during_upload(index, segment_id, storage_root, aws_env, bucket)
    state, upload_id, key = _row(index, segment_id)
    assert (state, upload_id is not None) == ("uploading", True)

    restarted = _uploader(
        index, storage_root, aws_env, bucket, multipart_threshold_mb=5, part_size_mb=5
    )
    assert await restarted.drain(120)

    assert _row(index, segment_id)[:2] == ("replicated", None)
    client = aws_env.client()
    stored = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    assert stored == (storage_root / event.path).read_bytes()
    leftovers = client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert [u for u in leftovers if u["UploadId"] == upload_id] == []
