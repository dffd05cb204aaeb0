"""Generated fragmented MP4 files, written the way FFmpeg's mp4 muxer writes segments."""

import subprocess
from pathlib import Path

import pytest

FRAGMENTED = "frag_keyframe+empty_moov+default_base_moof"
VIDEO_CODECS = {
    "h264": ["-c:v", "libx264", "-bf", "2", "-sc_threshold", "0"],
    "h265": [
        "-c:v",
        "libx265",
        "-tag:v",
        "hvc1",
        "-x265-params",
        "log-level=error:scenecut=0",
    ],
}


def make_fmp4(path: Path, codec: str, seconds: int = 12, gop_frames: int = 25) -> Path:
    """A testsrc2 + sine fMP4 (25 fps, AAC) with one fragment per GOP."""
    if path.exists():
        return path
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
            str(seconds),
            *VIDEO_CODECS[codec],
            "-g",
            str(gop_frames),
            "-keyint_min",
            str(gop_frames),
            "-c:a",
            "aac",
            "-movflags",
            FRAGMENTED,
            str(path),
        ],
        check=True,
    )
    return path


@pytest.fixture(scope="session")
def mp4_media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mp4-media")


@pytest.fixture(scope="session", params=["h264", "h265"])
def fmp4_file(request: pytest.FixtureRequest, mp4_media_dir: Path) -> Path:
    """A 12 s fMP4 of the parametrized codec with AAC audio, 1 s GOPs."""
    codec: str = request.param
    return make_fmp4(mp4_media_dir / f"{codec}-aac.mp4", codec)
