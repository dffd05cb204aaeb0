"""Clips planned from real segment files, checked with ffprobe and decoded with PyAV."""

import dataclasses
import json
import random
import subprocess
import time
from fractions import Fraction
from itertools import pairwise
from pathlib import Path

import av
import pytest
from clip_media import WALL_T0_US, Recording, clip_sources, cut_segments

from nvr.errors import BadRange, NotFound
from nvr.export.clip import ClipPlan, plan_clip
from nvr.mp4.layout import read_layout

S = 1_000_000


def write_clip(plan: ClipPlan, path: Path) -> Path:
    with open(path, "wb") as f:
        for chunk in plan.iter_chunks():
            f.write(chunk)
    return path


def probe_duration_s(path: Path) -> float:
    out = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-of",
            "json",
            "-show_entries",
            "format=duration",
            str(path),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return float(json.loads(out.stdout)["format"]["duration"])


@dataclasses.dataclass
class Decoded:
    video_frames: int
    audio_frames: int
    first_video_keyframe: bool
    video_dts_s: list[Fraction]
    audio_dts_s: list[Fraction]


def steps(times: list[Fraction]) -> list[Fraction]:
    return [b - a for a, b in pairwise(times)]


def decode(path: Path) -> Decoded:
    """Demuxes and decodes every packet; any decoder error raises."""
    result = Decoded(0, 0, False, [], [])
    with av.open(str(path)) as container:
        assert {s.type for s in container.streams} == {"video", "audio"}
        for packet in container.demux():
            is_video = packet.stream.type == "video"
            if (
                packet.dts is not None
            ):  # None marks the end-of-stream packet that flushes
                assert packet.time_base is not None
                dts_s = packet.dts * packet.time_base
                if is_video and not result.video_dts_s:
                    result.first_video_keyframe = packet.is_keyframe
                (result.video_dts_s if is_video else result.audio_dts_s).append(dts_s)
            for _frame in packet.decode():
                if is_video:
                    result.video_frames += 1
                else:
                    result.audio_frames += 1
    return result


def test_plan_clip_across_three_segments_decodes_whole(
    recording: Recording, tmp_path: Path
) -> None:
    plan = plan_clip(
        recording.sources, WALL_T0_US + 10_500_000, WALL_T0_US + 25_500_000
    )
    clip = write_clip(plan, tmp_path / "clip.mp4")

    decoded = decode(clip)

    assert plan.start_us == WALL_T0_US + 10 * S
    assert plan.truncated_at_us is None
    assert 15 <= probe_duration_s(clip) < 15 + recording.gop_us / S
    assert decoded.first_video_keyframe
    assert decoded.video_frames == 388  # 10.00 s up to the frame at 25.48 s
    assert decoded.audio_frames > 15 * 48000 / 1024


def test_plan_clip_across_segments_timeline_has_no_gap_or_overlap(
    recording: Recording, tmp_path: Path
) -> None:
    plan = plan_clip(recording.sources, WALL_T0_US + 5 * S, WALL_T0_US + 30 * S)

    decoded = decode(write_clip(plan, tmp_path / "clip.mp4"))

    video_steps = set(steps(decoded.video_dts_s))
    assert video_steps == {Fraction(1, 25)}
    audio_steps = steps(decoded.audio_dts_s)
    assert all(Fraction(0) < step <= Fraction(2048, 48000) for step in audio_steps)
    assert plan.end_us == WALL_T0_US + 30 * S


def test_clip_read_random_ranges_equal_slices_of_stream(recording: Recording) -> None:
    plan = plan_clip(recording.sources, WALL_T0_US + 3_200_000, WALL_T0_US + 27_700_000)
    whole = b"".join(plan.iter_chunks(chunk_size=100_000))
    rng = random.Random(3)

    ranges = [(rng.randrange(plan.size), rng.randrange(1, 400_000)) for _ in range(60)]
    ranges += [(0, 10), (plan.size - 7, 100), (0, plan.size)]

    assert len(whole) == plan.size
    for offset, length in ranges:
        assert plan.read(offset, length) == whole[offset : offset + length]
    middle = b"".join(plan.iter_chunks(1000, 500_000, chunk_size=4096))
    assert middle == whole[1000:500_000]


def test_plan_clip_range_inside_one_segment_starts_at_previous_keyframe(
    recording: Recording, tmp_path: Path
) -> None:
    plan = plan_clip(recording.sources, WALL_T0_US + 2_300_000, WALL_T0_US + 6_700_000)

    decoded = decode(write_clip(plan, tmp_path / "inside.mp4"))

    assert plan.start_us == WALL_T0_US + 2 * S
    assert decoded.first_video_keyframe
    assert decoded.video_frames == 118  # 2.00 s to 6.68 s at 25 fps
    assert plan.end_us == WALL_T0_US + 6_720_000


def test_plan_clip_range_ending_on_keyframe_excludes_that_fragment(
    recording: Recording, tmp_path: Path
) -> None:
    plan = plan_clip(recording.sources, WALL_T0_US + 12 * S, WALL_T0_US + 14 * S)

    decoded = decode(write_clip(plan, tmp_path / "two.mp4"))

    assert decoded.video_frames == 50
    assert plan.end_us - plan.start_us == 2 * S


@pytest.mark.parametrize(
    ("start_s", "end_s"),
    [(-20, -1), (36.5, 50), (-5, 0)],
    ids=["before", "after", "abut"],
)
def test_plan_clip_no_fragment_in_range_raises_not_found(
    recording: Recording, start_s: float, end_s: float
) -> None:
    with pytest.raises(NotFound):
        plan_clip(
            recording.sources,
            WALL_T0_US + int(start_s * S),
            WALL_T0_US + int(end_s * S),
        )


def test_plan_clip_end_not_after_start_raises_bad_range(recording: Recording) -> None:
    with pytest.raises(BadRange):
        plan_clip(recording.sources, WALL_T0_US + 5 * S, WALL_T0_US + 5 * S)


def test_plan_clip_gap_between_runs_keeps_wall_offset(
    recording: Recording, tmp_path: Path
) -> None:
    first, second, _ = recording.sources
    moved = dataclasses.replace(
        second, start_us=second.start_us + 5 * S, end_us=second.end_us + 5 * S
    )
    plan = plan_clip([first, moved], WALL_T0_US + 6 * S, WALL_T0_US + 20 * S)

    decoded = decode(write_clip(plan, tmp_path / "gap.mp4"))

    video_steps = steps(decoded.video_dts_s)
    assert sorted(set(video_steps)) == [Fraction(1, 25), Fraction(1, 25) + 5]
    resumed_at = decoded.video_dts_s[video_steps.index(Fraction(1, 25) + 5) + 1]
    assert resumed_at == (moved.start_us - plan.start_us) / Fraction(S)
    assert decoded.video_frames == (6 + 3) * 25  # 6 s before the gap, 3 s after it


def test_plan_clip_resolution_change_ends_clip_before_new_segment(
    export_media_dir: Path, tmp_path: Path
) -> None:
    small = cut_segments(
        export_media_dir / "h264-small", "h264", seconds=8, segment_s=4
    )
    large = cut_segments(
        export_media_dir / "h264-large", "h264", seconds=4, segment_s=4, size="640x480"
    )
    sources = clip_sources([*small, *large], WALL_T0_US)

    plan = plan_clip(sources, WALL_T0_US + 1 * S, WALL_T0_US + 11 * S)

    decoded = decode(write_clip(plan, tmp_path / "cut.mp4"))
    assert plan.truncated_at_us == sources[2].start_us == WALL_T0_US + 8 * S
    assert plan.end_us == WALL_T0_US + 8 * S
    assert decoded.video_frames == 7 * 25


def test_plan_clip_day_of_two_second_gops_plans_quickly(export_media_dir: Path) -> None:
    """43,200 fragments: 1440 one-minute segments of 2 s GOPs (one real file, reused)."""
    minute = export_media_dir / "minute"
    if not minute.exists():
        minute.mkdir()
        subprocess.run(
            [
                "ffmpeg",
                "-nostdin",
                "-loglevel",
                "error",
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=64x48:rate=10",
                "-f",
                "lavfi",
                "-i",
                "sine",
                "-t",
                "60",
                "-c:v",
                "libx264",
                "-g",
                "20",
                "-sc_threshold",
                "0",
                "-c:a",
                "aac",
                "-movflags",
                "frag_keyframe+empty_moov+default_base_moof",
                str(minute / "seg.mp4"),
            ],
            check=True,
        )
    (one,) = clip_sources([minute / "seg.mp4"], WALL_T0_US)
    assert len(one.keyframes) == 30
    sources = [
        dataclasses.replace(
            one, start_us=one.start_us + i * 60 * S, end_us=one.end_us + i * 60 * S
        )
        for i in range(1440)
    ]

    began = time.perf_counter()
    plan = plan_clip(sources, WALL_T0_US, WALL_T0_US + 86_400 * S)
    elapsed_s = time.perf_counter() - began
    print(f"planned 43200 fragments in {elapsed_s:.3f} s, size {plan.size} bytes")

    assert elapsed_s < 1.0
    assert plan.end_us == WALL_T0_US + 86_400 * S
    layout = read_layout(one.path)
    fragments_bytes = layout.complete_size - layout.init_size
    # everything but the audio of the last 0.2 s, which decodes after the range's end
    assert 0 < 1440 * fragments_bytes + layout.init_size - plan.size < 10_000
    tail = plan.read(plan.size - 64, 64)
    assert len(tail) == 64
