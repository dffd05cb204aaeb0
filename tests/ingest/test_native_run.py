"""NativeRun fed the access units of real encoded clips, as the RTP depacketizers emit
them, writing through the real I/O thread; FFmpeg decodes every segment it writes."""

import base64
import hashlib
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import pytest
import uvloop

from nvr.errors import CameraProtocolError, StorageError
from nvr.ingest import native_run
from nvr.ingest.events import Event, SegmentClosed
from nvr.ingest.native_io import IoThread, SegmentSink
from nvr.ingest.native_run import MAX_BACKWARD_S, AudioSync, NativeRun
from nvr.ingest.native_tracks import (
    VideoSetup,
    audio_setup,
    inband_parameter_sets,
    sdp_parameter_sets,
    video_setup,
)
from nvr.ingest.timing import MAX_DTS_JUMP_S, TimestampBreak
from nvr.mp4.layout import keyframe_table, read_layout
from nvr.mp4.moof import parse_moof
from nvr.mp4.moov import read_init
from nvr.rtsp.rtp import AccessUnit
from nvr.rtsp.sdp import MediaDescription
from nvr.segmenter.files import PARTIAL_DIR, closed_path
from nvr.segmenter.finalize import TrackFacts
from nvr.segmenter.recovery import probe_tracks
from tests.mp4.native_media import (
    AAC_FRAME_SAMPLES,
    FRAME_TICKS,
    GOP_FRAMES,
    SAMPLE_RATE,
    AudioSample,
    Clip,
    ClipCache,
    Codec,
    ReadBack,
    VideoSample,
    ffmpeg_decode_errors,
    read_back,
)

CAMERA = "cam1"
RUN_ID = "0123456789abcdef0123456789abcdef"
T0_US = 1_796_342_400_000_000  # capture instant of the clip's media time 0
NETWORK_US = 30_000  # every packet arrives this long after it is sent
VIDEO_RTP0 = (1 << 32) - 90000  # video RTP time at media time 0: it wraps after 1 s
AUDIO_RTP0 = 123_456_789  # audio RTP time at media time 0
CLIP_SECONDS = 5
CLIP_FRAMES = CLIP_SECONDS * 25
FRAME_US = 40_000
AAC_FRAME = Fraction(AAC_FRAME_SAMPLES, SAMPLE_RATE)  # seconds
CODECS = [("h264", False), ("h264", True), ("hevc", False), ("hevc", True)]
CODEC_IDS = ["h264-bf0", "h264-bf2", "hevc-bf0", "hevc-bf2"]
_PARAMETER_SETS = {"h264": (7, 8), "hevc": (32, 33, 34)}  # SPS, PPS (and VPS)


@pytest.fixture(scope="session")
def clips(tmp_path_factory: pytest.TempPathFactory) -> ClipCache:
    return ClipCache(tmp_path_factory.mktemp("native-run-clips"))


def clip_of(clips: ClipCache, codec: Codec, bframes: bool) -> Clip:
    """The 5 s 320x240 clip of ``codec``."""
    return clips.get(codec, bframes=bframes, seconds=CLIP_SECONDS)


@pytest.fixture
def io_thread() -> Iterator[IoThread]:
    io = IoThread()
    yield io
    io.shutdown()


# access units as the depacketizers emit them


def nal_type(nal: bytes, codec: Codec) -> int:
    return nal[0] & 0x1F if codec == "h264" else (nal[0] >> 1) & 0x3F


def parameter_sets(sample: VideoSample, codec: Codec) -> tuple[bytes, ...]:
    return tuple(n for n in sample.nals if nal_type(n, codec) in _PARAMETER_SETS[codec])


def length_prefixed(nals: tuple[bytes, ...]) -> list[bytes]:
    return [part for nal in nals for part in (len(nal).to_bytes(4, "big"), nal)]


def video_unit(
    sample: VideoSample,
    codec: Codec,
    *,
    rtp_time: int | None = None,
    in_band: bool = True,
) -> AccessUnit:
    """``sample`` as H264Depacketizer/H265Depacketizer emit it; ``in_band=False``
    leaves out its parameter sets (the camera sends them only in the SDP)."""
    params = parameter_sets(sample, codec)
    nals = tuple(n for n in sample.nals if in_band or n not in params)
    data = length_prefixed(nals)
    if rtp_time is None:
        rtp_time = VIDEO_RTP0 + sample.pts
    return AccessUnit(rtp_time, data, sum(map(len, data)), sample.keyframe)


def audio_unit(sample: AudioSample, ms_clock: bool = False) -> AccessUnit:
    """``sample`` as AacDepacketizer emits it; ``ms_clock`` stamps it as a camera that
    counts audio time in whole milliseconds does (steps of 1008 or 1056 ticks)."""
    ticks = sample.pts
    if ms_clock:
        ticks = round(Fraction(ticks * 1000, SAMPLE_RATE)) * SAMPLE_RATE // 1000
    return AccessUnit(AUDIO_RTP0 + ticks, [sample.frame], len(sample.frame), True)


def video_arrival_us(sample: VideoSample) -> int:
    """Pictures leave the encoder in decode order, each at its decode time."""
    return T0_US + sample.dts * 1_000_000 // 90000 + NETWORK_US


def audio_arrival_us(sample: AudioSample) -> int:
    """An audio frame leaves once its last sample is captured."""
    end = sample.pts + AAC_FRAME_SAMPLES
    return T0_US + end * 1_000_000 // SAMPLE_RATE + NETWORK_US


@dataclass(frozen=True)
class Arrival:
    arrival_us: int
    sample: VideoSample | AudioSample


def arrivals(clip: Clip, first: int = 0, frames: int | None = None) -> list[Arrival]:
    """Video samples ``first`` to ``first + frames`` (in decode order) and the audio
    sent until one frame after the last of them, in arrival order."""
    video = clip.video[first : None if frames is None else first + frames]
    last_us = video_arrival_us(video[-1]) + FRAME_US
    merged = [Arrival(video_arrival_us(s), s) for s in video] + [
        Arrival(audio_arrival_us(s), s)
        for s in clip.audio
        if audio_arrival_us(s) <= last_us
    ]
    return sorted(merged, key=lambda arrival: arrival.arrival_us)


# the run, wired as NativeCameraRecorder wires it


def video_media(codec: Codec, sprop: tuple[bytes, ...] = ()) -> MediaDescription:
    def encode(units: list[bytes]) -> str:
        return ",".join(base64.b64encode(unit).decode() for unit in units)

    fmtp: dict[str, str] = {}
    if codec == "h264" and sprop:
        fmtp["sprop-parameter-sets"] = encode(list(sprop))
    elif sprop:
        for name, kind in (("sprop-vps", 32), ("sprop-sps", 33), ("sprop-pps", 34)):
            fmtp[name] = encode([u for u in sprop if nal_type(u, codec) == kind])
    encoding = "H264" if codec == "h264" else "H265"
    return MediaDescription("video", 96, encoding, 90000, 1, "rtsp://cam/v", fmtp)


def audio_media(clip: Clip) -> MediaDescription:
    fmtp = {
        "mode": "AAC-hbr",
        "config": clip.audio_config.hex(),
        "sizelength": "13",
        "indexlength": "3",
        "indexdeltalength": "3",
    }
    return MediaDescription(
        "audio", 97, "MPEG4-GENERIC", SAMPLE_RATE, 1, "rtsp://cam/a", fmtp
    )


class Recording:
    """A NativeRun of one clip writing into ``root`` through the real I/O thread."""

    def __init__(
        self,
        root: Path,
        io: IoThread,
        clip: Clip,
        segment_seconds: float,
        *,
        rtp_info: bool = True,
        in_band: bool = True,
        audio_ms_clock: bool = False,
    ) -> None:
        self.root = root
        self.clip = clip
        self.in_band = in_band
        self.audio_ms_clock = audio_ms_clock
        self.events: list[Event] = []
        self.errors: list[StorageError] = []
        self.sink = SegmentSink(io, self.events.append, self.errors.append)
        codec = clip.codec
        sprop = () if in_band else parameter_sets(clip.video[0], codec)
        media = video_media(codec, sprop)

        def make_video(keyframe: AccessUnit) -> VideoSetup:
            inband = inband_parameter_sets(keyframe.data[1::2], codec)
            return video_setup(media, inband or sdp_parameter_sets(media))

        audio = audio_setup(audio_media(clip))
        pair = (VIDEO_RTP0 & 0xFFFFFFFF, AUDIO_RTP0) if rtp_info else None
        self.run = NativeRun(
            root,
            (CAMERA, RUN_ID),
            segment_seconds,
            codec,
            make_video,
            audio,
            AudioSync(pair, 90000, SAMPLE_RATE),
            self.sink,
            monotonic=lambda: self.now_us,
        )
        self.now_us = T0_US  # the run's monotonic clock: real time as the feed says

    def feed(self, schedule: list[Arrival]) -> None:
        for arrival in schedule:
            self.now_us = arrival.arrival_us
            if isinstance(arrival.sample, VideoSample):
                unit = video_unit(arrival.sample, self.clip.codec, in_band=self.in_band)
                self.run.video_unit(unit, arrival.arrival_us)
            else:
                unit = audio_unit(arrival.sample, self.audio_ms_clock)
                self.run.audio_unit(unit, arrival.arrival_us)

    async def finish(self) -> list[SegmentClosed]:
        self.run.finish()
        return await self.closed()

    async def closed(self) -> list[SegmentClosed]:
        """The segments closed so far, once the I/O thread has caught up."""
        await self.sink.drain()
        assert self.errors == []
        return [event for event in self.events if isinstance(event, SegmentClosed)]

    def partials(self) -> list[Path]:
        return sorted((self.root / CAMERA / PARTIAL_DIR).glob("*.mp4"))

    def stored(self, sample: VideoSample) -> bytes:
        """The MP4 sample the run should store for ``sample``."""
        return b"".join(video_unit(sample, self.clip.codec, in_band=self.in_band).data)

    def play(
        self,
        closed: list[SegmentClosed],
        stored: Callable[[VideoSample], bytes] | None = None,
    ) -> list["Played"]:
        return play(self.root, self.clip, closed, stored or self.stored)


@dataclass(frozen=True)
class Played:
    """One closed segment as FFmpeg reads it, each packet traced back to the clip."""

    closed: SegmentClosed
    path: Path
    media: ReadBack
    video: list[VideoSample]  # the clip's sample behind each video packet
    audio: list[AudioSample]

    def video_leads(self) -> list[Fraction]:
        """Per video packet: clip presentation time minus file presentation time (s)."""
        return [
            Fraction(sample.pts - packet.pts, 90000)
            for packet, sample in zip(self.media.video, self.video, strict=True)
        ]

    def audio_leads(self) -> list[Fraction]:
        return [
            Fraction(sample.pts - packet.pts, SAMPLE_RATE)
            for packet, sample in zip(self.media.audio, self.audio, strict=True)
        ]

    def leads(self) -> set[Fraction]:
        """One value when every packet, audio and video, is shifted alike: in sync."""
        return set(self.video_leads()) | set(self.audio_leads())


def play(
    root: Path,
    clip: Clip,
    closed: list[SegmentClosed],
    stored_as: Callable[[VideoSample], bytes],
) -> list[Played]:
    """Decodes each closed segment; ``stored_as`` gives the bytes a sample is stored
    as, to trace packets back to the clip."""
    stored = {stored_as(sample): sample for sample in clip.video}
    by_frame = {sample.frame: sample for sample in clip.audio}
    played = []
    for event in closed:
        path = root / event.path
        assert ffmpeg_decode_errors(path) == ""
        media = read_back(path)
        video = [stored[packet.data] for packet in media.video]
        audio = [by_frame[packet.data] for packet in media.audio]
        played.append(Played(event, path, media, video, audio))
    return played


def video_trun_rows(path: Path) -> list[tuple[int, int]]:
    """(duration, composition offset) of each video sample, read from the trun boxes."""
    layout = read_layout(path)
    data = path.read_bytes()
    with open(path, "rb") as f:
        init, _ = read_init(f, len(data))
    rows: list[tuple[int, int]] = []
    for fragment in layout.fragments:
        start = fragment.offset
        end = start + int.from_bytes(data[start : start + 4], "big")
        traf = parse_moof(data[start:end], start, init.trex).traf(layout.video_track_id)
        assert traf is not None
        for run in traf.runs:
            rows.extend(zip(run.durations, run.cts or [], strict=True))
    return rows


def presented(samples: list[VideoSample], clip: Clip) -> list[str]:
    """The decoded pictures of ``samples``, in presentation order."""
    return [
        clip.digests[s.pts // FRAME_TICKS] for s in sorted(samples, key=lambda s: s.pts)
    ]


# a whole clip, recorded once per codec


@dataclass(frozen=True)
class Recorded:
    root: Path
    clip: Clip
    segments: list[Played]


@pytest.fixture(scope="module", params=CODECS, ids=CODEC_IDS)
def recorded(
    request: pytest.FixtureRequest,
    clips: ClipCache,
    tmp_path_factory: pytest.TempPathFactory,
) -> Recorded:
    """The whole clip recorded with segment_seconds=1.5 and RTP-Info, read back."""
    codec, bframes = request.param
    clip = clip_of(clips, codec, bframes)
    root = tmp_path_factory.mktemp("recorded")

    async def record() -> list[Played]:
        io = IoThread()
        try:
            recording = Recording(root, io, clip, 1.5)
            recording.feed(arrivals(clip))
            closed = await recording.finish()
            assert recording.partials() == []
            return recording.play(closed)
        finally:
            io.shutdown()

    return Recorded(root, clip, uvloop.run(record()))


def test_native_run_segment_past_segment_seconds_cut_at_next_keyframe(
    recorded: Recorded,
) -> None:
    # 1 s GOPs and segment_seconds 1.5: each segment runs on to the keyframe at 2 s
    segments = recorded.segments

    assert [len(s.video) for s in segments] == [50, 50, 25]
    assert [s.closed.media_duration for s in segments] == [
        frames * FRAME_TICKS for frames in (50, 50, 25)
    ]
    for segment in segments:
        packets = segment.media.video
        keyframes = len(packets) // GOP_FRAMES
        assert packets[0].keyframe
        assert sum(p.keyframe for p in packets) == keyframes
        assert segment.closed.keyframes == keyframe_table(read_layout(segment.path))
        assert [ticks for ticks, _ in segment.closed.keyframes] == [
            i * GOP_FRAMES * FRAME_TICKS for i in range(keyframes)
        ]


def test_native_run_segments_tile_in_media_and_wall_time(recorded: Recorded) -> None:
    closed = [s.closed for s in recorded.segments]

    assert [c.seq for c in closed] == [0, 1, 2]
    assert closed[0].media_start == 0
    for before, after in itertools.pairwise(closed):
        assert before.media_start + before.media_duration == after.media_start
        assert before.end_us == after.start_us
    for segment in closed:
        # the camera clock keeps time with the server's: no slew
        wall_us = segment.media_duration * 1_000_000 // 90000
        assert segment.end_us - segment.start_us == wall_us
    # pictures are sent at their decode time, at most two frames before capture
    assert T0_US + NETWORK_US - 2 * FRAME_US <= closed[0].start_us
    assert closed[0].start_us <= T0_US + NETWORK_US


def test_native_run_segments_decode_every_frame_in_order(recorded: Recorded) -> None:
    clip = recorded.clip

    digests = [d for s in recorded.segments for d in s.media.digests]
    stored = [sample for s in recorded.segments for sample in s.video]

    assert stored == clip.video
    assert len(digests) == CLIP_FRAMES
    assert digests == clip.digests
    for segment in recorded.segments:
        media = segment.media
        assert (media.video_codec, media.width, media.height) == (clip.codec, 320, 240)


def test_native_run_decode_times_increase_and_precede_presentation(
    recorded: Recorded,
) -> None:
    for segment in recorded.segments:
        packets = segment.media.video

        assert all(a.dts < b.dts for a, b in itertools.pairwise(packets))
        assert all(p.pts >= p.dts for p in packets)
        assert all(p.dts >= 0 for p in packets)
        # FFmpeg would hide a negative offset by delaying pts; the file has none
        rows = video_trun_rows(segment.path)
        assert {duration for duration, _ in rows} == {FRAME_TICKS}
        assert min(offset for _, offset in rows) >= 0


def test_native_run_audio_kept_whole_and_in_sync(recorded: Recorded) -> None:
    clip = recorded.clip

    audio = [sample for s in recorded.segments for sample in s.audio]

    # one unbroken run of the clip's audio frames, from the first keyframe's capture
    first = clip.audio.index(audio[0])
    assert audio == clip.audio[first : first + len(audio)]
    assert audio[0].pts <= 0 < audio[0].pts + 2 * AAC_FRAME_SAMPLES
    for segment in recorded.segments:
        # every packet, audio and video, is shifted by the same time: in sync
        assert len(segment.leads()) == 1
        assert segment.media.audio_samples == len(segment.audio) * AAC_FRAME_SAMPLES


def test_native_run_audio_spans_each_segment(recorded: Recorded) -> None:
    # audio and video share each file's timeline, from decode time 0 to the media
    # duration; a B-frame stream presents its first picture a frame or two later
    segments = recorded.segments
    for index, segment in enumerate(segments):
        media = segment.media
        audio_start = Fraction(media.audio[0].pts, SAMPLE_RATE)
        audio_end = Fraction(media.audio[-1].pts, SAMPLE_RATE) + AAC_FRAME
        first_picture = Fraction(min(p.pts for p in media.video), 90000)
        end = Fraction(segment.closed.media_duration, 90000)

        if index == 0:
            assert 0 <= audio_start <= first_picture
        else:
            assert 0 <= audio_start < AAC_FRAME
        if index < len(segments) - 1:
            assert end <= audio_end < end + AAC_FRAME


def test_native_run_segment_closed_describes_its_file(recorded: Recorded) -> None:
    root = recorded.root
    for segment in recorded.segments:
        closed = segment.closed
        layout = read_layout(segment.path)

        data = segment.path.read_bytes()
        assert closed.bytes == len(data)
        assert closed.sha256 == hashlib.sha256(data).hexdigest()
        assert segment.path == closed_path(root, CAMERA, closed.start_us)
        assert (closed.camera_id, closed.run_id) == (CAMERA, RUN_ID)
        assert (closed.video_codec, closed.audio_codec) == (recorded.clip.codec, "aac")
        assert (closed.width, closed.height) == (320, 240)
        assert closed.timescale == 90000
        assert not layout.truncated
        assert layout.durations[layout.video_track_id] == closed.media_duration


def test_probe_tracks_native_segment_reports_codecs_and_size(
    recorded: Recorded,
) -> None:
    for segment in recorded.segments:
        media = segment.media

        facts = probe_tracks(segment.path)

        assert facts == TrackFacts(media.video_codec, "aac", media.width, media.height)
        assert facts == TrackFacts(recorded.clip.codec, "aac", 320, 240)


# how a run starts and ends


async def test_native_run_frames_before_first_keyframe_skipped(
    clips: ClipCache, tmp_path: Path, io_thread: IoThread
) -> None:
    clip = clip_of(clips, "h264", True)
    recording = Recording(tmp_path, io_thread, clip, 60)

    recording.feed(arrivals(clip, first=10))  # joins 10 frames into the first GOP
    (played,) = recording.play(await recording.finish())

    assert recording.run.skipped_before_keyframe == GOP_FRAMES - 10
    assert played.media.video[0].keyframe
    assert played.video == clip.video[GOP_FRAMES:]
    assert played.media.digests == clip.digests[GOP_FRAMES:]
    assert len(played.leads()) == 1


async def test_native_run_finish_closes_open_segment(
    clips: ClipCache, tmp_path: Path, io_thread: IoThread
) -> None:
    clip = clip_of(clips, "h264", False)
    recording = Recording(tmp_path, io_thread, clip, 60)
    recording.feed(arrivals(clip, frames=60))  # two GOPs and 10 frames of a third
    assert await recording.closed() == []
    assert len(recording.partials()) == 1

    closed = await recording.finish()

    assert recording.partials() == []
    assert recording.run.segments_closed == 1
    (played,) = recording.play(closed)
    assert played.closed.media_duration == 60 * FRAME_TICKS
    assert played.media.digests == clip.digests[:60]
    assert recording.run.last_end_us == played.closed.end_us


async def test_native_run_without_rtp_info_pairs_audio_within_a_frame(
    clips: ClipCache, tmp_path: Path, io_thread: IoThread
) -> None:
    clip = clip_of(clips, "hevc", False)
    recording = Recording(tmp_path, io_thread, clip, 2, rtp_info=False)

    recording.feed(arrivals(clip))
    segments = recording.play(await recording.finish())

    # paired by arrival: off by the audio frame's length, which it waits to send
    for segment in segments:
        (video_lead,) = set(segment.video_leads())
        (audio_lead,) = set(segment.audio_leads())
        assert abs(audio_lead - video_lead) < Fraction(FRAME_US, 1_000_000)
    audio = [sample for segment in segments for sample in segment.audio]
    first = clip.audio.index(audio[0])
    assert audio == clip.audio[first : first + len(audio)]


@pytest.mark.parametrize("bframes", [False, True], ids=["bf0", "bf2"])
async def test_native_run_audio_rtp_times_in_whole_ms_keep_every_frame(
    bframes: bool, clips: ClipCache, tmp_path: Path, io_thread: IoThread
) -> None:
    clip = clip_of(clips, "h264", bframes)
    recording = Recording(tmp_path, io_thread, clip, 2, audio_ms_clock=True)

    recording.feed(arrivals(clip))
    segments = recording.play(await recording.finish())

    audio = [sample for segment in segments for sample in segment.audio]
    first = clip.audio.index(audio[0])
    assert audio == clip.audio[first : first + len(audio)]
    for segment in segments:
        (video_lead,) = set(segment.video_leads())
        # rounded to the ms, and a fragment's first frame moved by up to 48 ticks
        for lead in segment.audio_leads():
            assert abs(lead - video_lead) <= Fraction(1, 1000)


@pytest.mark.parametrize("codec", ["h264", "hevc"])
async def test_native_run_parameter_sets_only_in_sdp_decode(
    codec: Codec, clips: ClipCache, tmp_path: Path, io_thread: IoThread
) -> None:
    clip = clip_of(clips, codec, True)
    recording = Recording(tmp_path, io_thread, clip, 60, in_band=False)

    recording.feed(arrivals(clip))
    (played,) = recording.play(await recording.finish())

    assert played.video == clip.video
    assert played.media.digests == clip.digests


async def test_native_run_parameter_sets_sent_apart_join_their_keyframe(
    clips: ClipCache, tmp_path: Path, io_thread: IoThread
) -> None:
    clip = clip_of(clips, "h264", True)
    recording = Recording(tmp_path, io_thread, clip, 60)
    codec = clip.codec

    def stored(sample: VideoSample) -> bytes:
        params = parameter_sets(sample, codec)
        pictures = tuple(nal for nal in sample.nals if nal not in params)
        return b"".join(length_prefixed(params + pictures))

    for arrival in arrivals(clip):
        sample = arrival.sample
        if isinstance(sample, AudioSample):
            recording.run.audio_unit(audio_unit(sample), arrival.arrival_us)
            continue
        if sample.keyframe:
            # some cameras stamp the parameter sets apart from the picture
            params = length_prefixed(parameter_sets(sample, codec))
            size = sum(map(len, params))
            unit = AccessUnit(VIDEO_RTP0 + sample.pts - 1, params, size, False)
            recording.run.video_unit(unit, arrival.arrival_us)
        unit = video_unit(sample, codec, in_band=False)
        recording.run.video_unit(unit, arrival.arrival_us)
    (played,) = recording.play(await recording.finish(), stored)

    assert played.video == clip.video  # each keyframe stored with its parameter sets
    assert played.media.digests == clip.digests


# broken runs


@pytest.mark.parametrize(
    "jump_ticks",
    [(MAX_DTS_JUMP_S + 1) * 90000, -(MAX_BACKWARD_S + 1) * 90000],
    ids=["forward", "backward"],
)
async def test_native_run_rtp_time_jump_raises_timestamp_jump(
    jump_ticks: int, clips: ClipCache, tmp_path: Path, io_thread: IoThread
) -> None:
    clip = clip_of(clips, "h264", True)
    recording = Recording(tmp_path, io_thread, clip, 60)
    recording.feed(arrivals(clip, frames=40))
    after = clip.video[40]
    unit = video_unit(after, clip.codec, rtp_time=VIDEO_RTP0 + after.pts + jump_ticks)

    with pytest.raises(TimestampBreak) as broken:
        recording.run.video_unit(unit, video_arrival_us(after))
    (played,) = recording.play(await recording.finish())

    assert broken.value.reason == "timestamp-jump"
    # what came before the jump stays recorded, and decodes
    assert played.video == clip.video[:40]
    assert played.media.digests == presented(clip.video[:40], clip)


@pytest.mark.parametrize("codec", ["h264", "hevc"])
async def test_native_run_keyframe_with_new_resolution_raises_stream_changed(
    codec: Codec, clips: ClipCache, tmp_path: Path, io_thread: IoThread
) -> None:
    clip = clip_of(clips, codec, False)
    smaller = clips.get(codec, bframes=False, width=256, height=192, seconds=1)
    recording = Recording(tmp_path, io_thread, clip, 60)
    recording.feed(arrivals(clip, frames=2 * GOP_FRAMES))
    due = clip.video[2 * GOP_FRAMES]  # the keyframe the camera should have sent
    unit = video_unit(smaller.video[0], codec, rtp_time=VIDEO_RTP0 + due.pts)

    with pytest.raises(TimestampBreak) as broken:
        recording.run.video_unit(unit, video_arrival_us(due))
    (played,) = recording.play(await recording.finish())

    assert broken.value.reason == "stream-changed"
    assert (played.media.width, played.media.height) == (320, 240)
    assert played.media.digests == clip.digests[: 2 * GOP_FRAMES]


# long GOPs


@pytest.mark.parametrize("codec", ["h264", "hevc"])
async def test_native_run_gop_split_into_fragments_keeps_decode_order(
    codec: Codec,
    clips: ClipCache,
    tmp_path: Path,
    io_thread: IoThread,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # a GOP over FRAGMENT_MAX_BYTES becomes several fragments; B-frames straddle them
    monkeypatch.setattr(native_run, "FRAGMENT_MAX_BYTES", 8000)
    clip = clip_of(clips, codec, True)
    recording = Recording(tmp_path, io_thread, clip, 60)

    recording.feed(arrivals(clip))
    (played,) = recording.play(await recording.finish())

    layout = read_layout(played.path)
    assert len(layout.fragments) > 2 * CLIP_SECONDS
    assert len(keyframe_table(layout)) == CLIP_SECONDS
    rows = video_trun_rows(played.path)
    assert {duration for duration, _ in rows} == {FRAME_TICKS}
    assert min(offset for _, offset in rows) >= 0
    packets = played.media.video
    assert all(a.dts < b.dts for a, b in itertools.pairwise(packets))
    assert len(played.leads()) == 1
    assert played.media.digests == clip.digests


# cameras whose timestamps or payloads misbehave


@pytest.mark.parametrize("pattern", ["stuck", "oscillating", "creeping-back"])
async def test_native_run_rtp_time_not_advancing_ends_run_before_real_time_runs_far(
    pattern: str, clips: ClipCache, tmp_path: Path, io_thread: IoThread
) -> None:
    clip = clip_of(clips, "h264", False)
    recording = Recording(tmp_path, io_thread, clip, 10)
    recording.feed(arrivals(clip, frames=GOP_FRAMES))
    last = clip.video[GOP_FRAMES - 1]
    times = {
        "stuck": lambda i: last.pts,
        "oscillating": lambda i: last.pts + (i % 2) * FRAME_TICKS,
        "creeping-back": lambda i: last.pts - i * 10,  # well within B-frame reordering
    }[pattern]

    with pytest.raises(TimestampBreak) as broken:
        for index in range(1, 60 * 25):  # up to a minute of frames at 25 fps
            sample = clip.video[GOP_FRAMES + index % GOP_FRAMES]
            recording.now_us = video_arrival_us(last) + index * FRAME_US
            unit = video_unit(sample, "h264", rtp_time=VIDEO_RTP0 + times(index))
            unit.keyframe = False
            recording.run.video_unit(unit, recording.now_us)
    lasted_s = (recording.now_us - video_arrival_us(last)) / 1_000_000
    closed = await recording.finish()

    assert broken.value.reason == "timestamp-jump"
    assert lasted_s <= native_run.MEDIA_LAG_LIMIT_US / 1_000_000 + 2
    assert all(e.media_duration <= 11 * 90000 for e in closed)  # no giant segment
    assert recording.partials() == []


async def test_native_run_sei_without_pictures_refused_past_a_bound(
    clips: ClipCache, tmp_path: Path, io_thread: IoThread
) -> None:
    clip = clip_of(clips, "h264", False)
    recording = Recording(tmp_path, io_thread, clip, 10)
    recording.feed(arrivals(clip, frames=GOP_FRAMES))
    sei = bytes([6]) + bytes(9_999)  # an SEI NAL unit (H.264 type 6) of 10 kB
    held = 0

    with pytest.raises(CameraProtocolError, match="without a picture"):
        for _ in range(1000):
            recording.run.video_unit(
                AccessUnit(VIDEO_RTP0, length_prefixed((sei,)), 10_004, False), T0_US
            )
            held += 10_004

    assert held <= native_run.MAX_CARRY_BYTES
