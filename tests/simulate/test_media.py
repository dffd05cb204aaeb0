"""Generated clips: codecs, GOP structure, B-frames and the parameter cache."""

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from nvr.errors import NvrError
from nvr.simulate.media import AudioCodec, VideoCodec, clip_name, make_clip


def small_clip(path: Path, codec: VideoCodec, **options: Any) -> Path:
    """A 2 s clip at 320x180, quick to encode."""
    return make_clip(path, codec, seconds=2, width=320, height=180, **options)


@dataclass
class ClipInfo:
    tracks: list[tuple[str, str]]
    picture_types: list[str]
    keyframe_indexes: list[int]


def probe(path: Path) -> ClipInfo:
    """Track codecs and the video frames' picture types, as ffprobe decodes them."""
    streams = json.loads(
        subprocess.run(
            [
                "/usr/bin/ffprobe",
                "-v",
                "error",
                "-show_entries",
                "stream=codec_type,codec_name",
                "-of",
                "json",
                str(path),
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )["streams"]
    frames = subprocess.run(
        [
            "/usr/bin/ffprobe",
            "-v",
            "error",
            "-select_streams",
            "v",
            "-show_entries",
            "frame=pict_type,key_frame",
            "-of",
            "csv=p=0",
            str(path),
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    return ClipInfo(
        tracks=sorted((s["codec_type"], s["codec_name"]) for s in streams),
        picture_types=[line.split(",")[1] for line in frames],
        keyframe_indexes=[i for i, line in enumerate(frames) if line.startswith("1")],
    )


@pytest.mark.parametrize(
    ("codec", "audio"),
    [("h264", "aac"), ("h264", "pcm_alaw"), ("hevc", None), ("hevc", "aac")],
)
def test_make_clip_codecs_are_as_requested(
    tmp_path: Path, codec: VideoCodec, audio: AudioCodec | None
) -> None:
    path = small_clip(tmp_path / "clip.mkv", codec, audio=audio)

    expected = [("video", codec)] + ([("audio", audio)] if audio else [])
    assert probe(path).tracks == sorted(expected)


@pytest.mark.parametrize("codec", ["h264", "hevc"])
def test_make_clip_bframes_gives_b_frames_and_fixed_gops(
    tmp_path: Path, codec: VideoCodec
) -> None:
    path = small_clip(tmp_path / "clip.mkv", codec, bframes=True, gop_frames=10, fps=10)

    info = probe(path)
    assert "B" in info.picture_types
    assert info.keyframe_indexes == [0, 10]


def test_make_clip_without_bframes_has_none(tmp_path: Path) -> None:
    path = small_clip(tmp_path / "clip.mkv", "h264")

    assert "B" not in probe(path).picture_types


def test_make_clip_same_parameters_reuses_file(tmp_path: Path) -> None:
    path = tmp_path / clip_name("h264", seconds=2, width=320, height=180)
    small_clip(path, "h264")
    written_ns = path.stat().st_mtime_ns

    small_clip(path, "h264")
    assert path.stat().st_mtime_ns == written_ns

    small_clip(path, "h264", bframes=True)
    assert path.stat().st_mtime_ns != written_ns
    assert "B" in probe(path).picture_types


def test_make_clip_same_parameters_same_bytes(tmp_path: Path) -> None:
    first = small_clip(tmp_path / "a.mkv", "h264", audio="aac", bframes=True)
    second = small_clip(tmp_path / "b.mkv", "h264", audio="aac", bframes=True)

    assert first.read_bytes() == second.read_bytes()


def test_make_clip_mpegts_writes_ts(tmp_path: Path) -> None:
    path = small_clip(tmp_path / "clip.ts", "h264", audio="aac")

    assert path.read_bytes()[0] == 0x47  # MPEG-TS sync byte
    assert probe(path).tracks == [("audio", "aac"), ("video", "h264")]


def test_make_clip_mpegts_with_alaw_raises(tmp_path: Path) -> None:
    with pytest.raises(NvrError, match="pcm_alaw"):
        make_clip(tmp_path / "clip.ts", "h264", audio="pcm_alaw")
