"""Startup recovery of partial files (including after a real SIGKILL) and orphan files."""

import hashlib
import logging
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from nvr.mp4.layout import read_layout
from nvr.segmenter.files import closed_path, partial_path
from nvr.segmenter.recovery import orphan_segments, recover_partials
from nvr.simulate.cameras import SimulatedCamera

START_US = 1_796_342_400_123_456  # 2026-12-04T00:00:00.123456Z
RUN_ID = "0123456789abcdef0123456789abcdef"


@pytest.fixture(scope="module")
def fragmented_mp4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 6 s H.264 + AAC fMP4 with one fragment per 1 s GOP, as nvr writes segments."""
    path = tmp_path_factory.mktemp("fmp4") / "segment.mp4"
    subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=25",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000",
            "-t",
            "6",
            "-c:v",
            "libx264",
            "-bf",
            "2",
            "-g",
            "25",
            "-keyint_min",
            "25",
            "-sc_threshold",
            "0",
            "-c:a",
            "aac",
            "-movflags",
            "frag_keyframe+empty_moov+default_base_moof",
            str(path),
        ],
        check=True,
    )
    return path


def ffprobe_clean(path: Path) -> None:
    probe = subprocess.run(
        ["ffprobe", "-v", "error", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert probe.stderr == ""


def place_partial(source: Path, root: Path, cut_at: int | None = None) -> Path:
    target = partial_path(root, "cam1", START_US, RUN_ID, 3)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    if cut_at is not None:
        with open(target, "r+b") as f:
            f.truncate(cut_at)
    return target


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_recover_partials_cut_at_random_byte_returns_valid_segment(
    fragmented_mp4: Path, tmp_path: Path, seed: int
) -> None:
    layout = read_layout(fragmented_mp4)
    second_fragment_end = layout.fragments[1].offset + layout.fragments[1].size
    cut_at = random.Random(seed).randrange(second_fragment_end, layout.file_size)
    partial = place_partial(fragmented_mp4, tmp_path, cut_at)
    complete = [f for f in layout.fragments if f.offset + f.size <= cut_at]

    [segment] = recover_partials(tmp_path, "cam1")

    path = tmp_path / segment.path
    assert path == closed_path(tmp_path, "cam1", START_US)
    assert segment.path == f"cam1/2026/12/04/cam1-{START_US}.mp4"
    assert not partial.exists()
    ffprobe_clean(path)
    assert len(segment.keyframes) == len(complete)
    assert path.stat().st_size == complete[-1].offset + complete[-1].size
    assert hashlib.sha256(path.read_bytes()).hexdigest() == segment.sha256
    assert (segment.run_id, segment.seq) == (RUN_ID, 3)
    assert segment.start_us == START_US
    duration_us = segment.media_duration * 1_000_000 // segment.timescale
    assert segment.end_us - segment.start_us == pytest.approx(duration_us, abs=1)
    assert (segment.video_codec, segment.audio_codec) == ("h264", "aac")


def test_recover_partials_without_complete_fragment_quarantines_with_warning(
    fragmented_mp4: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    layout = read_layout(fragmented_mp4)
    partial = place_partial(fragmented_mp4, tmp_path, layout.fragments[0].offset + 100)

    with caplog.at_level(logging.WARNING, logger="nvr"):
        recovered = recover_partials(tmp_path, "cam1")

    assert recovered == []
    assert not partial.exists()
    assert (tmp_path / "cam1" / "quarantine" / partial.name).is_file()
    assert any("quarantined" in r.getMessage() for r in caplog.records)


def test_recover_partials_no_partial_dir_returns_nothing(tmp_path: Path) -> None:
    assert recover_partials(tmp_path, "cam1") == []


def test_orphan_segments_unindexed_closed_file_is_returned(
    fragmented_mp4: Path, tmp_path: Path
) -> None:
    known = closed_path(tmp_path, "cam1", START_US)
    orphan = closed_path(tmp_path, "cam1", START_US + 6_000_000)
    for path in (known, orphan):
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(fragmented_mp4, path)

    [segment] = orphan_segments(
        tmp_path, "cam1", {known.relative_to(tmp_path).as_posix()}
    )

    assert segment.path == orphan.relative_to(tmp_path).as_posix()
    assert segment.run_id.startswith("recovered-")
    assert segment.start_us == START_US + 6_000_000
    assert segment.end_us - segment.start_us == pytest.approx(6_000_000, abs=100_000)
    assert len(segment.keyframes) == 6


_RECORD_SCRIPT = """
import sys, threading
from pathlib import Path
from nvr.config import CameraConfig, RecordingConfig
from nvr.ingest.recorder import CameraRecorder
recorder = CameraRecorder(CameraConfig(id="cam1", url=sys.argv[1]),
                          RecordingConfig(segment_seconds=60), Path(sys.argv[2]),
                          lambda event: print(type(event).__name__, flush=True),
                          threading.Event())
recorder.run()
"""


@pytest.mark.e2e
def test_recorder_killed_mid_segment_partial_recovers_to_valid_segment(
    rtsp_camera_factory: Callable[..., SimulatedCamera], tmp_path: Path
) -> None:
    camera = rtsp_camera_factory("h264", audio="aac", bframes=True, seconds=10)
    root = tmp_path / "segments"
    project = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(
        [sys.executable, "-c", _RECORD_SCRIPT, camera.url, str(root)],
        cwd=project,
        env={"PYTHONPATH": str(project), "PATH": "/usr/bin:/bin"},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not list(root.glob("cam1/partial/*.mp4")):
            time.sleep(0.1)
        time.sleep(6)  # several fragments into a 60 s segment
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    [partial] = root.glob("cam1/partial/*.mp4")
    [segment] = recover_partials(root, "cam1")

    ffprobe_clean(root / segment.path)
    assert not partial.exists()
    assert len(segment.keyframes) >= 4  # at most the fragment being assembled was lost
    assert segment.audio_codec == "aac"
