"""Real media for the native writer tests: small clips encoded by ffmpeg from lavfi
sources and demuxed by PyAV into samples with their times, and written files read back
the way a player reads them (PyAV decode, the ffmpeg command line)."""

import hashlib
import subprocess
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Literal

import av
from av.bitstream import BitStreamFilterContext

FFMPEG = ["ffmpeg", "-nostdin", "-loglevel", "error", "-y"]
FPS = 25
FRAME_TICKS = 90000 // FPS  # one frame at the 90 kHz video clock
GOP_FRAMES = 25
SAMPLE_RATE = 48000
AAC_FRAME_SAMPLES = 1024

Codec = Literal["h264", "hevc"]
_TO_ANNEX_B = {"h264": "h264_mp4toannexb", "hevc": "hevc_mp4toannexb"}


@dataclass(frozen=True)
class VideoSample:
    """One picture of a clip, in decode order."""

    pts: int  # 1/90000 s; the first presented picture is at 0
    dts: int
    sample: bytes  # length-prefixed NAL units, as the clip's MP4 stores them
    nals: tuple[bytes, ...]  # the picture's NAL units, with parameter sets in band
    keyframe: bool


@dataclass(frozen=True)
class AudioSample:
    pts: int  # samples at SAMPLE_RATE; the encoder's priming frame is before 0
    frame: bytes  # one raw AAC frame


@dataclass(frozen=True)
class Clip:
    """A testsrc2 + 440 Hz sine clip: 25 fps, one closed GOP a second, mono AAC."""

    codec: Codec
    bframes: bool
    width: int
    height: int
    video: list[VideoSample]
    video_config: bytes  # the avcC or hvcC record FFmpeg wrote
    audio: list[AudioSample]
    audio_config: bytes  # the AudioSpecificConfig
    digests: list[str]  # every decoded picture, in presentation order

    @property
    def fourcc(self) -> Literal["avc1", "hvc1"]:
        return "avc1" if self.codec == "h264" else "hvc1"

    def gops(self) -> list[list[VideoSample]]:
        """The samples split before each keyframe."""
        gops: list[list[VideoSample]] = []
        for sample in self.video:
            if sample.keyframe or not gops:
                gops.append([])
            gops[-1].append(sample)
        return gops


class ClipCache:
    """Clips made in ``directory`` on first request, kept for the session."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._clips: dict[tuple[object, ...], Clip] = {}

    def get(
        self,
        codec: Codec,
        *,
        bframes: bool,
        width: int = 320,
        height: int = 240,
        seconds: int = 4,
    ) -> Clip:
        key = (codec, bframes, width, height, seconds)
        if key not in self._clips:
            self._clips[key] = make_clip(
                self._directory,
                codec,
                bframes=bframes,
                width=width,
                height=height,
                seconds=seconds,
            )
        return self._clips[key]


def make_clip(
    directory: Path,
    codec: Codec,
    *,
    bframes: bool,
    width: int = 320,
    height: int = 240,
    seconds: int = 4,
) -> Clip:
    """Encodes the clip (bit-exact, one thread) into ``directory`` and demuxes it."""
    path = directory / f"{codec}-bf{int(bframes)}-{width}x{height}-{seconds}s.mp4"
    if not path.exists():
        subprocess.run(
            [
                *FFMPEG,
                "-f",
                "lavfi",
                "-i",
                f"testsrc2=size={width}x{height}:rate={FPS}",
                "-f",
                "lavfi",
                "-i",
                f"sine=frequency=440:sample_rate={SAMPLE_RATE}",
                "-t",
                str(seconds),
                "-map",
                "0:v",
                "-map",
                "1:a",
                "-pix_fmt",
                "yuv420p",
                "-threads",
                "1",
                *_encoder_args(codec, bframes),
                "-c:a",
                "aac",
                "-b:a",
                "64k",
                "-ac",
                "1",
                "-video_track_timescale",
                "90000",
                "-map_metadata",
                "-1",
                "-fflags",
                "+bitexact",
                "-flags",
                "+bitexact",
                str(path),
            ],
            check=True,
        )
    return _demux(path, codec, bframes)


def _encoder_args(codec: Codec, bframes: bool) -> list[str]:
    """Closed GOPs of exactly GOP_FRAMES, no scene-cut keyframes, two B-frames or none."""
    params = (
        f"keyint={GOP_FRAMES}:min-keyint={GOP_FRAMES}:scenecut=0:open-gop=0"
        f":bframes={2 if bframes else 0}"
    )
    if codec == "h264":
        return ["-c:v", "libx264", "-preset", "veryfast", "-x264-params", params]
    params += ":log-level=error:frame-threads=1:pools=none"
    x265 = ["-c:v", "libx265", "-preset", "veryfast", "-tag:v", "hvc1"]
    return [*x265, "-x265-params", params]


def _demux(path: Path, codec: Codec, bframes: bool) -> Clip:
    video: list[VideoSample] = []
    audio: list[AudioSample] = []
    with av.open(str(path)) as container:
        video_stream = container.streams.video[0]
        audio_stream = container.streams.audio[0]
        to_annex_b = BitStreamFilterContext(_TO_ANNEX_B[codec], video_stream)
        for packet in container.demux(video_stream, audio_stream):
            if packet.size == 0:
                continue  # the flush packet at the end
            if packet.stream.type == "audio":
                audio.append(AudioSample(int(packet.pts), bytes(packet)))
                continue
            # read everything first: filtering takes the packet's data and flags
            sample, pts, dts = bytes(packet), int(packet.pts), int(packet.dts)
            keyframe = bool(packet.is_keyframe)
            (annex_b,) = to_annex_b.filter(packet)
            nals = split_annex_b(bytes(annex_b))
            video.append(VideoSample(pts, dts, sample, nals, keyframe))
        video_config = bytes(video_stream.codec_context.extradata)
        audio_config = bytes(audio_stream.codec_context.extradata)
        size = (video_stream.codec_context.width, video_stream.codec_context.height)
    with av.open(str(path)) as container:
        digests = [picture_digest(frame) for frame in container.decode(video=0)]
    return Clip(
        codec,
        bframes,
        *size,
        video,
        video_config,
        audio,
        audio_config,
        digests,
    )


def split_annex_b(stream: bytes) -> tuple[bytes, ...]:
    """NAL units between start codes (ITU-T H.264 Annex B); the zero byte of a 4-byte
    start code belongs to no unit."""
    return tuple(unit.rstrip(b"\x00") for unit in stream.split(b"\x00\x00\x01")[1:])


def picture_digest(frame: av.VideoFrame) -> str:
    """SHA-256 of a decoded 8-bit picture's pixels (line padding left out)."""
    digest = hashlib.sha256()
    for plane in frame.planes:
        data = bytes(plane)
        for row in range(plane.height):
            start = row * plane.line_size
            digest.update(data[start : start + plane.width])
    return digest.hexdigest()


@dataclass(frozen=True)
class Packet:
    pts: int
    dts: int
    data: bytes
    keyframe: bool


@dataclass(frozen=True)
class ReadBack:
    """A written file as FFmpeg (PyAV) demuxes and decodes it."""

    video_codec: str
    width: int
    height: int
    video_time_base: Fraction
    video: list[Packet]  # file order
    digests: list[str]  # decoded pictures, in presentation order
    audio_codec: str | None
    sample_rate: int
    channels: int
    audio: list[Packet]
    audio_samples: int  # decoded


def read_back(path: Path) -> ReadBack:
    """Demuxes every packet of ``path`` and decodes every picture and audio frame."""
    video: list[Packet] = []
    audio: list[Packet] = []
    digests: list[str] = []
    audio_samples = 0
    with av.open(str(path)) as container:
        video_stream = container.streams.video[0]
        audio_stream = next(iter(container.streams.audio), None)
        streams = [video_stream] + ([audio_stream] if audio_stream else [])
        for packet in container.demux(*streams):
            if packet.size:  # not the flush packet at the end
                packets = video if packet.stream.type == "video" else audio
                data, keyframe = bytes(packet), bool(packet.is_keyframe)
                packets.append(Packet(int(packet.pts), int(packet.dts), data, keyframe))
            for frame in packet.decode():
                if isinstance(frame, av.VideoFrame):
                    digests.append(picture_digest(frame))
                else:
                    audio_samples += frame.samples
        sound = audio_stream.codec_context if audio_stream else None
        return ReadBack(
            video_codec=video_stream.codec_context.name,
            width=video_stream.codec_context.width,
            height=video_stream.codec_context.height,
            video_time_base=Fraction(video_stream.time_base),
            video=video,
            digests=digests,
            audio_codec=sound.name if sound else None,
            sample_rate=sound.sample_rate if sound else 0,
            channels=sound.channels if sound else 0,
            audio=audio,
            audio_samples=audio_samples,
        )


def ffmpeg_decode_errors(path: Path) -> str:
    """What the ffmpeg command line reports while decoding every stream of ``path``."""
    done = subprocess.run(
        [*FFMPEG, "-i", str(path), "-f", "null", "-"],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stderr
