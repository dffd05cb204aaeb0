"""Real parameter sets: tiny streams encoded by ffmpeg (libx264, libx265, aac) from
lavfi sources, and what ffprobe reads from them, made once per session."""

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.codecs.support import Encoded, split_annex_b

FFMPEG = ["ffmpeg", "-nostdin", "-loglevel", "error", "-y"]
# a test's own arguments come after these, so its -x265-params replaces the default
VIDEO_ENCODERS = {
    "h264": ["-c:v", "libx264"],
    "hevc": ["-c:v", "libx265", "-x265-params", "log-level=error"],
}


def probe(path: Path, stream: str) -> dict[str, object]:
    out = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-select_streams",
            stream,
            "-show_streams",
            "-show_data",
            "-of",
            "json",
            str(path),
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    streams: list[dict[str, object]] = json.loads(out)["streams"]
    return streams[0]


@pytest.fixture(scope="session")
def encode_video(
    tmp_path_factory: pytest.TempPathFactory,
) -> Callable[..., Encoded]:
    """``encode_video(codec, "640x360", "yuv420p", *ffmpeg_args, frames=1)``."""
    root = tmp_path_factory.mktemp("codecs")
    made: dict[tuple[object, ...], Encoded] = {}

    def encode(
        codec: str, size: str, pix_fmt: str, *args: str, frames: int = 1
    ) -> Encoded:
        key = (codec, size, pix_fmt, args, frames)
        if key not in made:
            path = root / f"clip{len(made)}.{codec}"
            subprocess.run(
                [
                    *FFMPEG,
                    "-f",
                    "lavfi",
                    "-i",
                    f"testsrc=size={size}:rate=25",
                    "-frames:v",
                    str(frames),
                    "-pix_fmt",
                    pix_fmt,
                    *VIDEO_ENCODERS[codec],
                    *args,
                    "-f",
                    codec,
                    str(path),
                ],
                check=True,
            )
            made[key] = Encoded(
                split_annex_b(path.read_bytes()), probe(path, "v:0"), path
            )
        return made[key]

    return encode


@pytest.fixture(scope="session")
def encode_aac(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., bytes]:
    """``encode_aac(sample_rate, channels)``: the AudioSpecificConfig ffmpeg's AAC
    encoder stores in an .m4a, as ffprobe dumps it."""
    root = tmp_path_factory.mktemp("aac")

    def encode(sample_rate: int, channels: int) -> bytes:
        path = root / f"sine-{sample_rate}-{channels}.m4a"
        subprocess.run(
            [
                *FFMPEG,
                "-f",
                "lavfi",
                "-i",
                f"sine=frequency=440:sample_rate={sample_rate}",
                "-t",
                "0.1",
                "-ac",
                str(channels),
                "-c:a",
                "aac",
                str(path),
            ],
            check=True,
        )
        stream = probe(path, "a:0")
        # xxd-like lines, "00000000: 1408 56e5 00    ..V..": the hex is columns 10-49
        lines = str(stream["extradata"]).splitlines()
        config = bytes.fromhex("".join(line[10:50] for line in lines if line))
        assert len(config) == stream["extradata_size"]
        return config

    return encode


@pytest.fixture(scope="session")
def ffmpeg_record() -> Callable[[Encoded, str], bytes]:
    """``ffmpeg_record(encoded, "avcC")``: the decoder configuration record ffmpeg's
    mp4 muxer writes for the stream, the reference nvr's records must equal."""

    def record(encoded: Encoded, fourcc: str) -> bytes:
        mp4 = encoded.path.with_suffix(".mp4")
        tag = ["-tag:v", "hvc1"] if fourcc == "hvcC" else []
        subprocess.run(
            [*FFMPEG, "-i", str(encoded.path), "-c", "copy", *tag, str(mp4)],
            check=True,
        )
        data = mp4.read_bytes()
        # the record is the payload of the only box of its type, inside the sample
        # entry (ISO/IEC 14496-15 §5.4.2.1, §8.4.1.1)
        at = data.index(fourcc.encode())
        assert data.count(fourcc.encode()) == 1
        size = int.from_bytes(data[at - 4 : at], "big")
        return data[at + 4 : at - 4 + size]

    return record
