"""Fragmented MP4 written by nvr.mp4.write from real H.264, H.265 and AAC samples, read
back by nvr's own readers and decoded by FFmpeg."""

import itertools
import struct
from dataclasses import dataclass
from pathlib import Path

import pytest

from nvr.codecs.aac import esds_payload, parse_config
from nvr.mp4.layout import keyframe_table, read_layout
from nvr.mp4.moof import SAMPLE_NON_SYNC, Moof, parse_moof
from nvr.mp4.moov import InitSegment, TrackInfo, read_init
from nvr.mp4.write import (
    NON_SYNC_SAMPLE_FLAGS,
    SYNC_SAMPLE_FLAGS,
    TrackFragment,
    TrackSpec,
    fragment,
    init_segment,
)
from tests.mp4.native_media import (
    AAC_FRAME_SAMPLES,
    FRAME_TICKS,
    GOP_FRAMES,
    SAMPLE_RATE,
    AudioSample,
    Clip,
    ClipCache,
    Codec,
    VideoSample,
    ffmpeg_decode_errors,
    read_back,
)

VIDEO_ID = 1
AUDIO_ID = 2
CLIP_FRAMES = 100  # 4 s at 25 fps
CLIP_GOPS = 4


@pytest.fixture(scope="session")
def clips(tmp_path_factory: pytest.TempPathFactory) -> ClipCache:
    """4 s clips, 320x240, made on first use."""
    return ClipCache(tmp_path_factory.mktemp("write-clips"))


@pytest.fixture(
    params=[("h264", False), ("h264", True), ("hevc", False), ("hevc", True)],
    ids=["h264-bf0", "h264-bf2", "hevc-bf0", "hevc-bf2"],
)
def clip(request: pytest.FixtureRequest, clips: ClipCache) -> Clip:
    codec, bframes = request.param
    return clips.get(codec, bframes=bframes)


@dataclass(frozen=True)
class Written:
    """A clip as written: where each fragment starts and what it holds."""

    path: Path
    init_size: int
    offsets: list[int]  # of each moof
    gops: list[list[VideoSample]]
    audio: list[list[AudioSample]]  # per fragment
    video_zero: int  # source dts at video decode time 0
    audio_zero: int  # source audio pts at audio decode time 0 (the same instant)


def track_specs(clip: Clip, audio: bool = True) -> list[TrackSpec]:
    specs = [
        TrackSpec(
            VIDEO_ID,
            "video",
            clip.fourcc,
            90000,
            clip.video_config,
            width=clip.width,
            height=clip.height,
        )
    ]
    if audio:
        config = parse_config(clip.audio_config.hex())
        specs.append(
            TrackSpec(
                AUDIO_ID,
                "audio",
                "mp4a",
                SAMPLE_RATE,
                esds_payload(config, AUDIO_ID),
                channels=1,
                sample_rate=SAMPLE_RATE,
            )
        )
    return specs


def write_clip(
    path: Path, clip: Clip, *, audio: bool = True, cts_shift: int = 0
) -> Written:
    """One fragment per GOP, with the audio presented during it; each video sample's
    composition offset is its source pts minus dts, less ``cts_shift``."""
    gops = clip.gops()
    video_zero = clip.video[0].dts
    audio_zero = video_zero * SAMPLE_RATE // 90000
    next_starts = [gop[0].pts for gop in gops[1:]]
    audio_parts: list[list[AudioSample]] = [[] for _ in gops]
    if audio:
        for sample in clip.audio:
            if sample.pts < audio_zero:
                continue  # before the first video frame is decoded
            at = sample.pts * 90000 // SAMPLE_RATE
            audio_parts[sum(start <= at for start in next_starts)].append(sample)

    offsets = []
    with open(path, "wb") as f:
        init = init_segment(track_specs(clip, audio))
        f.write(init)
        for sequence, (gop, part) in enumerate(zip(gops, audio_parts, strict=True)):
            tracks = [video_fragment(clip, gop, video_zero, cts_shift)]
            if part:
                tracks.append(audio_fragment(part, audio_zero))
            offsets.append(f.tell())
            f.writelines(fragment(sequence + 1, tracks))
    return Written(path, len(init), offsets, gops, audio_parts, video_zero, audio_zero)


def video_fragment(
    clip: Clip, gop: list[VideoSample], zero: int, cts_shift: int
) -> TrackFragment:
    index = clip.video.index(gop[0])
    following = [*clip.video[index + 1 : index + len(gop)], None]
    durations = [
        (after.dts if after is not None else sample.dts + FRAME_TICKS) - sample.dts
        for sample, after in zip(gop, following, strict=True)
    ]
    return TrackFragment(
        VIDEO_ID,
        gop[0].dts - zero,
        durations,
        [len(sample.sample) for sample in gop],
        [SYNC_SAMPLE_FLAGS if s.keyframe else NON_SYNC_SAMPLE_FLAGS for s in gop],
        [sample.pts - sample.dts - cts_shift for sample in gop],
        [sample.sample for sample in gop],
    )


def audio_fragment(part: list[AudioSample], zero: int) -> TrackFragment:
    return TrackFragment(
        AUDIO_ID,
        part[0].pts - zero,
        [AAC_FRAME_SAMPLES] * len(part),
        [len(sample.frame) for sample in part],
        [SYNC_SAMPLE_FLAGS] * len(part),
        None,
        [sample.frame for sample in part],
    )


def read_moofs(written: Written) -> tuple[InitSegment, list[Moof], bytes]:
    data = written.path.read_bytes()
    with open(written.path, "rb") as f:
        init, _ = read_init(f, len(data))
    moofs = []
    for offset in written.offsets:
        size = int.from_bytes(data[offset : offset + 4], "big")
        moofs.append(parse_moof(data[offset : offset + size], offset, init.trex))
    return init, moofs, data


def test_init_segment_tracks_read_back_with_codec_and_timescale(
    clip: Clip, tmp_path: Path
) -> None:
    written = write_clip(tmp_path / "segment.mp4", clip)

    init, _, data = read_moofs(written)

    assert init.tracks == {
        VIDEO_ID: TrackInfo("video", 90000, clip.fourcc),
        AUDIO_ID: TrackInfo("audio", SAMPLE_RATE, "mp4a"),
    }
    assert init.video_track_id == VIDEO_ID
    assert set(init.trex) == {VIDEO_ID, AUDIO_ID}
    assert init.size == written.init_size == written.offsets[0]
    assert clip.video_config in init.stsd[VIDEO_ID]
    assert clip.audio_config in init.stsd[AUDIO_ID]
    assert data[4:8] == b"ftyp"
    # sample entries (ISO/IEC 14496-12 §12.1.3, §12.2.3), past the stsd and entry headers
    video_entry, audio_entry = (init.stsd[track][24:] for track in (VIDEO_ID, AUDIO_ID))
    assert struct.unpack_from(">HH", video_entry, 24) == (320, 240)
    channels, sample_bits, _, _, rate = struct.unpack_from(">HHHHI", audio_entry, 16)
    assert (channels, sample_bits, rate >> 16) == (1, 16, SAMPLE_RATE)


def test_fragment_one_per_gop_layout_matches_samples(
    clip: Clip, tmp_path: Path
) -> None:
    written = write_clip(tmp_path / "segment.mp4", clip)
    audio_samples = sum(len(part) for part in written.audio)

    layout = read_layout(written.path)

    assert [f.offset for f in layout.fragments] == written.offsets
    assert len(layout.fragments) == CLIP_GOPS
    assert all(f.video_keyframe for f in layout.fragments)
    assert not layout.truncated
    assert layout.complete_size == layout.file_size == written.path.stat().st_size
    assert layout.durations == {
        VIDEO_ID: CLIP_FRAMES * FRAME_TICKS,
        AUDIO_ID: audio_samples * AAC_FRAME_SAMPLES,
    }
    keyframe_dts = [i * GOP_FRAMES * FRAME_TICKS for i in range(CLIP_GOPS)]
    assert keyframe_table(layout) == tuple(
        zip(keyframe_dts, written.offsets, strict=True)
    )


def test_fragment_moof_samples_point_at_their_bytes(clip: Clip, tmp_path: Path) -> None:
    written = write_clip(tmp_path / "segment.mp4", clip)

    _, moofs, data = read_moofs(written)

    for sequence, (moof, gop, part) in enumerate(
        zip(moofs, written.gops, written.audio, strict=True)
    ):
        assert moof.sequence == sequence + 1
        assert [traf.track_id for traf in moof.trafs] == [VIDEO_ID, AUDIO_ID]
        video, audio = moof.trafs
        (run,) = video.runs
        assert video.decode_time == gop[0].dts - written.video_zero
        assert run.cts == [sample.pts - sample.dts for sample in gop]
        assert [not flags & SAMPLE_NON_SYNC for flags in run.sample_flags] == [
            sample.keyframe for sample in gop
        ]
        assert sample_bytes(data, run.data_pos, run.sizes) == [s.sample for s in gop]
        (audio_run,) = audio.runs
        assert audio.decode_time == part[0].pts - written.audio_zero
        assert audio_run.durations == [AAC_FRAME_SAMPLES] * len(part)
        assert sample_bytes(data, audio_run.data_pos, audio_run.sizes) == [
            sample.frame for sample in part
        ]


def sample_bytes(data: bytes, position: int, sizes: list[int]) -> list[bytes]:
    ends = list(itertools.accumulate(sizes, initial=position))
    return [data[start:end] for start, end in itertools.pairwise(ends)]


def test_fragment_file_decodes_in_ffmpeg_as_the_source(
    clip: Clip, tmp_path: Path
) -> None:
    written = write_clip(tmp_path / "segment.mp4", clip)
    audio_samples = [sample for part in written.audio for sample in part]

    played = read_back(written.path)

    assert ffmpeg_decode_errors(written.path) == ""
    assert (played.video_codec, played.width, played.height) == (
        clip.codec,
        320,
        240,
    )
    assert played.video_time_base * 90000 == 1
    assert [(p.pts, p.dts) for p in played.video] == [
        (s.pts - written.video_zero, s.dts - written.video_zero) for s in clip.video
    ]
    assert [p.keyframe for p in played.video] == [s.keyframe for s in clip.video]
    assert all(a.dts < b.dts for a, b in itertools.pairwise(played.video))
    assert all(p.pts >= p.dts for p in played.video)
    assert played.digests == clip.digests
    assert len(played.digests) == CLIP_FRAMES
    assert (played.audio_codec, played.sample_rate, played.channels) == (
        "aac",
        SAMPLE_RATE,
        1,
    )
    assert [p.pts for p in played.audio] == [
        s.pts - written.audio_zero for s in audio_samples
    ]
    assert [p.data for p in played.audio] == [s.frame for s in audio_samples]
    assert played.audio_samples == len(audio_samples) * AAC_FRAME_SAMPLES


@pytest.mark.parametrize("codec", ["h264", "hevc"])
def test_fragment_negative_composition_offsets_keep_presentation_times(
    codec: Codec, clips: ClipCache, tmp_path: Path
) -> None:
    clip = clips.get(codec, bframes=True)
    first = clip.video[0]
    shift = first.pts - first.dts  # the first picture then presents at decode time 0
    written = write_clip(tmp_path / "segment.mp4", clip, cts_shift=shift)

    _, moofs, _ = read_moofs(written)
    played = read_back(written.path)

    run = moofs[0].trafs[0].runs[0]
    assert run.version == 1
    assert min(run.cts or [0]) < 0
    assert ffmpeg_decode_errors(written.path) == ""
    # FFmpeg delays every pts by the most negative offset so that pts >= dts; read as
    # unsigned, an offset would instead put its sample about 13 h late
    lead = {
        packet.pts - (sample.pts - first.pts)
        for packet, sample in zip(played.video, clip.video, strict=True)
    }
    assert lead == {-min(s.pts - s.dts - shift for s in clip.video)}
    assert all(p.pts >= p.dts for p in played.video)
    assert played.digests == clip.digests


def test_init_segment_video_only_file_decodes(clips: ClipCache, tmp_path: Path) -> None:
    clip = clips.get("h264", bframes=True)
    written = write_clip(tmp_path / "segment.mp4", clip, audio=False)

    played = read_back(written.path)
    layout = read_layout(written.path)

    assert set(layout.tracks) == {VIDEO_ID}
    assert played.audio_codec is None
    assert ffmpeg_decode_errors(written.path) == ""
    assert played.digests == clip.digests
