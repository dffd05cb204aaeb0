"""Storage faults against real parts: a full small filesystem, a read-only one, a locked
index. The recorder must not crash, must say what is wrong, and must recover by itself
without losing what fit.
"""

import json
import os
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.checks import (
    assert_rows_match_files,
    camera,
    indexed_rows,
    state,
    unindexed_files,
)

pytestmark = pytest.mark.e2e

SEGMENT_S = 4


def _mount(args: list[str]) -> bool:
    done = subprocess.run(["mount", *args], capture_output=True, text=True, check=False)
    return done.returncode == 0


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A real 48 MiB tmpfs (needs root; skipped otherwise)."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    if os.geteuid() != 0 or not _mount(
        ["-t", "tmpfs", "-o", "size=48m", "tmpfs", str(mount_point)]
    ):
        pytest.skip("mounting a tmpfs needs root")
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], check=False)


def _fill(directory: Path, name: str = "filler.bin") -> Path:
    """Writes a file until the filesystem is full (down to the last 4 KiB); returns it."""
    filler = directory / name
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        for size in (1 << 20, 4096):
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError:
                pass
    finally:
        os.close(fd)
    return filler


def _open_files_under(directory: Path) -> list[str]:
    """Every open file descriptor pointing under ``directory``, as 'pid: target'."""
    found = []
    for fd in Path("/proc").glob("[0-9]*/fd/*"):
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith(str(directory)):
            found.append(f"{fd.parts[2]}: {target}")
    return found


def _ready(recorder: Any) -> dict[str, Any]:
    """The checks of GET /readyz (503 while one fails)."""
    status, _, body = recorder.get("/readyz")
    checks: dict[str, Any] = json.loads(body)["checks"]
    assert (status == 200) == all(c["ok"] for c in checks.values()), (status, body)
    return checks


def _segments_grow(recorder: Any, camera_id: str, than: int) -> bool:
    return len(indexed_rows(recorder, camera_id)) > than and not unindexed_files(
        recorder, camera_id
    )


@pytest.mark.timeout(400)
def test_serve_disk_full_read_only_and_locked_index_recover(
    rtsp_camera_factory: Any, recorder_factory: Any, small_fs: Path
) -> None:
    cam = rtsp_camera_factory(codec="h264")
    recorder = recorder_factory([("cam", cam.url)], segment_seconds=SEGMENT_S)
    recorder.storage = small_fs / "segments"
    text = recorder.config_path.read_text()
    recorder.config_path.write_text(
        text.replace(str(recorder.workdir / "segments"), str(recorder.storage))
    )
    recorder.start()
    recorder.wait_for(lambda: state(recorder, "cam") == "recording", 60, "recording")
    recorder.wait_for(
        lambda: len(indexed_rows(recorder, "cam")) >= 2, 30, "two segments"
    )

    # 1. disk full: the run ends with a storage error shown in the API, no crash
    filler = _fill(small_fs)
    recorder.wait_for(
        lambda: "space" in str(camera(recorder, "cam").get("last_error")),
        40,
        "the disk-full error in GET /api/v1/cameras",
    )
    time.sleep(3)
    assert recorder.process is not None and recorder.process.poll() is None
    assert "No space left" in recorder.log_text()
    top_up = _fill(small_fs, "filler-2.bin")  # what recovery freed by cutting partials
    assert not _ready(recorder)["storage"]["ok"]
    before = len(indexed_rows(recorder, "cam"))
    filler.unlink()
    top_up.unlink()
    recorder.wait_for(
        lambda: _segments_grow(recorder, "cam", before + 1),
        60,
        "recording to resume after space was freed",
    )
    assert_rows_match_files(recorder, "cam")

    # 2. the storage turned read-only (root ignores permission bits; a ro mount does not).
    # Linux refuses a ro remount while a file is open for writing, so the camera drops
    # first; the recorder meets the read-only storage when it reconnects.
    cam.stop()
    recorder.wait_for(
        lambda: state(recorder, "cam") != "recording", 30, "the run to end"
    )
    recorder.wait_for(
        lambda: not list((recorder.storage / "cam" / "partial").glob("*")),
        15,
        "the open segment to close",
    )
    assert _mount(["-o", "remount,ro", str(small_fs)]), _open_files_under(small_fs)
    cam.start()
    cam.wait_ready()
    try:
        recorder.wait_for(
            lambda: (
                "read-only" in str(camera(recorder, "cam").get("last_error")).lower()
            ),
            40,
            "the read-only error in GET /api/v1/cameras",
        )
        time.sleep(3)
        assert recorder.process is not None and recorder.process.poll() is None
        assert not _ready(recorder)["storage"]["ok"]
    finally:
        assert _mount(["-o", "remount,rw", str(small_fs)])
    before = len(indexed_rows(recorder, "cam"))
    recorder.wait_for(
        lambda: _segments_grow(recorder, "cam", before + 1),
        60,
        "recording to resume once writable",
    )
    assert_rows_match_files(recorder, "cam")

    # 3. the index locked longer than SQLite's busy timeout: rows are written later
    before = len(indexed_rows(recorder, "cam"))
    db_path = recorder.index_url.removeprefix("sqlite:///")
    locked = threading.Event()

    def hold_lock() -> None:
        connection = sqlite3.connect(db_path, isolation_level=None)
        connection.execute("BEGIN EXCLUSIVE")
        locked.set()
        time.sleep(22)
        connection.execute("ROLLBACK")
        connection.close()

    holder = threading.Thread(target=hold_lock)
    holder.start()
    locked.wait(10)
    time.sleep(SEGMENT_S + 2)  # a segment closes; its row waits for the lock
    assert not _ready(recorder)["index"]["ok"]
    holder.join()
    recorder.wait_for(
        lambda: _segments_grow(recorder, "cam", before + 2),
        60,
        "segments closed during the lock to be indexed",
    )
    recorder.wait_for(
        lambda: all(c["ok"] for c in _ready(recorder).values()),
        30,
        "/readyz to be ready again",
    )
    assert "index write failed; retrying" in recorder.log_text()
    assert_rows_match_files(recorder, "cam")
    # no hole: every segment of the run made during the lock is indexed
    rows = indexed_rows(recorder, "cam")
    runs: dict[str, list[int]] = {}
    for row in rows:
        runs.setdefault(row.run_id, []).append(row.seq)
    for run_id, seqs in runs.items():
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), (run_id, seqs)
    assert recorder.process is not None and recorder.process.poll() is None
    recorder.stop()  # before the small filesystem goes away
