"""RetentionService as nvr serve runs it: the first sweep finishes marked deletions at
startup, and disk pressure with only held data pauses recording through the supervisor."""

import asyncio
from pathlib import Path

from nvr.config import Config, StorageConfig
from nvr.index.evidence import place_hold
from nvr.retention import catalogue
from nvr.retention.service import RetentionService
from tests.evidence.support import index_call
from tests.index.support import T0_US

from .support import CAMERAS, DAY_US, GROUPS, make_store


class Recording:
    def __init__(self) -> None:
        self.calls: list[str] = []

    async def pause_recording(self, reason: str) -> None:
        self.calls.append(f"pause: {reason}")

    async def resume_recording(self) -> None:
        self.calls.append("resume")


async def test_service_start_finishes_marked_deletion_and_pauses_when_only_held(
    tmp_path: Path,
) -> None:
    store = make_store(tmp_path)
    ids = [store.add("cam1", seq) for seq in range(2)]
    catalogue.mark_deleting(store.index, ids[0], "retention", T0_US + 40 * DAY_US)
    place_hold(
        store.index, "cam1", T0_US + 61_000_000, T0_US + 62_000_000, "C-1", "x", "olive"
    )  # holds ids[1] only
    # marks at 0% and 0.001%: any real disk is "full", and everything left is held
    storage = StorageConfig(
        root=store.root, high_water_percent=0.001, low_water_percent=0.0005
    )
    config = Config(storage=storage, groups=GROUPS, cameras=CAMERAS)
    recording = Recording()
    service = RetentionService(
        config,
        store.index,
        index_call,
        None,
        recording,
        sweep_period_s=3600,
        pressure_period_s=3600,
    )

    await service.start()
    for _ in range(100):
        if recording.calls:
            break
        await asyncio.sleep(0.05)
    await service.stop()

    assert catalogue.marked(store.index, 10) == []
    assert [d.segment_id for d in store.index.deletions("cam1")] == [ids[0]]
    assert store.files() == store.rows() and len(store.rows()) == 1
    assert len(recording.calls) == 1 and recording.calls[0].startswith("pause: ")
