"""One nvr recording node for the ingest benchmark: the real Supervisor, workers and index.

Reads a JSON job on argv (storage root, index URL, camera URLs, segment seconds, cameras
per worker), starts the supervisor, prints ``{"ready": ...}`` once every camera records
(or after the start timeout), then waits for ``stop`` on stdin, stops the supervisor (which
closes every open segment and indexes it) and prints the final camera states as JSON.
"""

import asyncio
import json
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nvr.config import CameraConfig, Config, RecordingConfig, StorageConfig
from nvr.index.db import open_index
from nvr.ingest.events import CameraStatus
from nvr.ingest.supervisor import Supervisor
from nvr.log import setup_logging

T = TypeVar("T")


def _config(job: dict[str, Any]) -> Config:
    cameras = tuple(
        CameraConfig(id=f"cam{i:04d}", url=url) for i, url in enumerate(job["urls"])
    )
    return Config(
        storage=StorageConfig(root=Path(job["root"])),
        recording=RecordingConfig(
            segment_seconds=job["segment_seconds"],
            cameras_per_worker=job["cameras_per_worker"],
            connect_timeout_seconds=30,
        ),
        cameras=cameras,
    )


async def _run(job: dict[str, Any]) -> None:
    config = _config(job)
    index_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="index")
    loop = asyncio.get_running_loop()

    def index_call(function: Callable[..., T], *args: Any) -> "asyncio.Future[T]":
        return loop.run_in_executor(index_thread, function, *args)

    index = await index_call(open_index, job["index_url"])
    await index_call(index.sync_groups_and_cameras, config.groups, config.cameras)
    supervisor = Supervisor(config, list(config.cameras), index_call, index, "WARNING")
    await supervisor.start()

    deadline = time.monotonic() + job["start_timeout_s"]
    while time.monotonic() < deadline:
        recording = sum(
            s.status == CameraStatus.RECORDING for s in supervisor.states.values()
        )
        if recording == len(config.cameras):
            break
        await asyncio.sleep(0.25)
    recording = sum(
        s.status == CameraStatus.RECORDING for s in supervisor.states.values()
    )
    pids = [w.process.pid for w in supervisor.workers if w.process is not None]
    print(json.dumps({"ready": recording, "worker_pids": pids}), flush=True)

    await loop.run_in_executor(None, sys.stdin.readline)
    await supervisor.stop()
    states = {
        camera_id: {
            "packets": s.packets,
            "reconnects": s.reconnects,
            "status": s.status,
        }
        for camera_id, s in supervisor.states.items()
    }
    index_thread.shutdown(wait=True)
    print(json.dumps({"states": states}), flush=True)


def main() -> None:
    setup_logging("WARNING")
    job = json.loads(sys.argv[1])
    asyncio.run(_run(job))


if __name__ == "__main__":
    main()
