"""Generated test clips: small, deterministic, closed-GOP video with optional audio.

A clip is made once by ``/usr/bin/ffmpeg`` from lavfi sources (``testsrc2`` with the
running time burnt in, a 440 Hz sine) and reused while its parameters match the JSON
sidecar written beside it. The container follows the file's suffix: ``.mkv`` (Matroska,
carries every codec here) or ``.ts`` (MPEG-TS, which cannot carry G.711 A-law).
"""

import json
import logging
import os
import subprocess
from pathlib import Path
from typing import Literal

from nvr.errors import NvrError
from nvr.log import fields

logger = logging.getLogger(__name__)

FFMPEG = "/usr/bin/ffmpeg"

VideoCodec = Literal["h264", "hevc"]
AudioCodec = Literal["aac", "pcm_alaw"]

_CONTAINERS = {".mkv": "matroska", ".ts": "mpegts"}
_SIDECAR_SUFFIX = ".params.json"


def clip_name(
    codec: VideoCodec,
    *,
    audio: AudioCodec | None = None,
    seconds: float = 10,
    fps: int = 25,
    gop_frames: int = 25,
    width: int = 640,
    height: int = 360,
    bframes: bool = False,
) -> str:
    """A file name that spells out every parameter, so distinct clips never collide."""
    bf = "bf2" if bframes else "bf0"
    return (
        f"{codec}-{audio or 'noaudio'}-{seconds:g}s-{fps}fps-gop{gop_frames}"
        f"-{width}x{height}-{bf}.mkv"
    )


def make_clip(
    path: Path,
    codec: VideoCodec,
    *,
    audio: AudioCodec | None = None,
    seconds: float = 10,
    fps: int = 25,
    gop_frames: int = 25,
    width: int = 640,
    height: int = 360,
    bframes: bool = False,
) -> Path:
    """Writes the clip to ``path`` unless an identical one is already there; returns ``path``.

    Every GOP is closed and exactly ``gop_frames`` long; ``bframes=True`` gives two
    B-frames between references. Blocks for the encode (about a second for 10 s at 360p).
    """
    params: dict[str, object] = {
        "codec": codec,
        "audio": audio,
        "seconds": seconds,
        "fps": fps,
        "gop_frames": gop_frames,
        "width": width,
        "height": height,
        "bframes": bframes,
    }
    container = _CONTAINERS.get(path.suffix)
    if container is None:
        raise NvrError(f"clip suffix must be one of {sorted(_CONTAINERS)}: {path}")
    if container == "mpegts" and audio == "pcm_alaw":
        raise NvrError(f"MPEG-TS cannot carry pcm_alaw; use a .mkv path: {path}")

    sidecar = path.with_name(path.name + _SIDECAR_SUFFIX)
    if path.exists() and _read_params(sidecar) == params:
        return path

    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    command = _ffmpeg_command(partial, container, params)
    logger.info("generating clip %s", fields(path=path, codec=codec, audio=audio))
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        partial.unlink(missing_ok=True)
        raise NvrError(f"ffmpeg failed making {path}: {done.stderr.strip()[-2000:]}")
    os.replace(partial, path)
    sidecar.write_text(json.dumps(params, sort_keys=True))
    return path


def _read_params(sidecar: Path) -> object:
    """The parameters a previous run recorded, or None if there is no readable sidecar."""
    try:
        return json.loads(sidecar.read_text())
    except (OSError, ValueError):
        return None


def _ffmpeg_command(out: Path, container: str, params: dict[str, object]) -> list[str]:
    """The full ffmpeg command line that renders ``params`` into ``out``."""
    fps, width, height = params["fps"], params["width"], params["height"]
    # Note: drawtext's colon must be escaped inside the filter graph
    video_source = (
        f"testsrc2=size={width}x{height}:rate={fps},"
        "drawtext=text='%{pts\\:hms}':fontsize=32:fontcolor=white"
        ":box=1:boxcolor=black@0.6:x=10:y=10"
    )
    command = [
        FFMPEG,
        "-hide_banner",
        "-nostdin",
        "-loglevel",
        "error",
        "-y",
        "-f",
        "lavfi",
        "-i",
        video_source,
    ]
    audio = params["audio"]
    if audio is not None:
        rate = 48000 if audio == "aac" else 8000
        command += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate={rate}"]

    command += ["-t", f"{params['seconds']}", "-map", "0:v"]
    command += _video_codec_args(params)
    if audio == "aac":
        command += ["-map", "1:a", "-c:a", "aac", "-b:a", "64k", "-ac", "1"]
    elif audio == "pcm_alaw":
        command += ["-map", "1:a", "-c:a", "pcm_alaw", "-ac", "1"]

    # bit-exact output: the same parameters give the same bytes on this machine
    command += [
        "-map_metadata",
        "-1",
        "-fflags",
        "+bitexact",
        "-flags",
        "+bitexact",
        "-f",
        container,
        str(out),
    ]
    return command


def _video_codec_args(params: dict[str, object]) -> list[str]:
    """Encoder options: fixed closed GOPs, no scene-cut keyframes, B-frames on request."""
    gop = params["gop_frames"]
    bframes = 2 if params["bframes"] else 0
    common = ["-pix_fmt", "yuv420p", "-threads", "1", "-g", f"{gop}"]
    if params["codec"] == "h264":
        x264 = f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes={bframes}:open-gop=0"
        return [
            *common,
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-profile:v",
            "high",
            "-x264-params",
            x264,
        ]
    x265 = (
        f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes={bframes}:open-gop=0"
        ":log-level=error"
    )
    return [*common, "-c:v", "libx265", "-preset", "veryfast", "-x265-params", x265]
