"""Fragment tables of real FFmpeg fMP4 files, whole, cut off, and repaired."""

import json
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from nvr.errors import MediaError
from nvr.mp4.layout import (
    SegmentLayout,
    keyframe_table,
    read_layout,
    truncate_to_complete,
)


def ffprobe(path: Path, *args: str) -> dict[str, list[dict[str, object]]]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-of", "json", *args, str(path)],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, list[dict[str, object]]] = json.loads(out.stdout)
    return result


def video_keyframe_count(path: Path) -> int:
    packets = ffprobe(path, "-select_streams", "v:0", "-show_entries", "packet=flags")
    return sum("K" in str(packet["flags"]) for packet in packets["packets"])


def packet_counts(path: Path) -> list[int]:
    streams = ffprobe(path, "-count_packets", "-show_entries", "stream=nb_read_packets")
    return [int(str(stream["nb_read_packets"])) for stream in streams["streams"]]


def fragment_sample_counts(path: Path, layout: SegmentLayout) -> dict[int, int]:
    """Samples per track over the complete fragments, counted from the trun boxes."""
    from nvr.mp4.moof import parse_moof
    from nvr.mp4.moov import read_init

    counts: dict[int, int] = {}
    with open(path, "rb") as f:
        init, _ = read_init(f, layout.file_size)
        for fragment in layout.fragments:
            f.seek(fragment.offset)
            size = int.from_bytes(f.read(4), "big")
            f.seek(fragment.offset)
            moof = parse_moof(f.read(size), fragment.offset, init.trex)
            for traf in moof.trafs:
                counts[traf.track_id] = counts.get(traf.track_id, 0) + traf.sample_count
    return counts


def test_read_layout_ffmpeg_fmp4_one_fragment_per_keyframe(fmp4_file: Path) -> None:
    layout = read_layout(fmp4_file)

    assert len(layout.fragments) == video_keyframe_count(fmp4_file) == 12
    assert all(fragment.video_keyframe for fragment in layout.fragments)
    assert not layout.truncated
    kinds = {track.kind for track in layout.tracks.values()}
    assert kinds == {"video", "audio"}
    codecs = {track.codec for track in layout.tracks.values()}
    assert codecs in ({"avc1", "mp4a"}, {"hvc1", "mp4a"})


def test_read_layout_ffmpeg_fmp4_durations_match_ffprobe(fmp4_file: Path) -> None:
    layout = read_layout(fmp4_file)
    streams = ffprobe(fmp4_file, "-show_entries", "stream=index,duration_ts,time_base")

    ffprobe_ticks = [int(str(stream["duration_ts"])) for stream in streams["streams"]]
    ours = [layout.durations[track_id] for track_id in sorted(layout.tracks)]
    assert ours == ffprobe_ticks
    assert layout.durations[layout.video_track_id] == 12 * layout.video_timescale


def test_keyframe_table_ffmpeg_fmp4_matches_keyframe_dts(fmp4_file: Path) -> None:
    layout = read_layout(fmp4_file)
    packets = ffprobe(
        fmp4_file, "-select_streams", "v:0", "-show_entries", "packet=dts,flags"
    )

    table = keyframe_table(layout)

    keyframe_dts = [
        int(str(p["dts"])) for p in packets["packets"] if "K" in str(p["flags"])
    ]
    assert table[0] == (0, layout.init_size)
    assert [ticks for ticks, _ in table] == keyframe_dts
    assert [offset for _, offset in table] == [f.offset for f in layout.fragments]


def test_read_layout_truncated_at_random_bytes_keeps_complete_fragments(
    fmp4_file: Path, tmp_path: Path
) -> None:
    whole = read_layout(fmp4_file)
    cut_file = tmp_path / "cut.mp4"
    rng = random.Random(7)
    cuts = [rng.randrange(whole.init_size, whole.complete_size) for _ in range(8)]
    cuts.append(whole.fragments[3].offset + 5)  # inside a moof header

    for cut in cuts:
        shutil.copyfile(fmp4_file, cut_file)
        with open(cut_file, "r+b") as f:
            f.truncate(cut)

        layout = read_layout(cut_file)

        expected = [f for f in whole.fragments if f.offset + f.size <= cut]
        assert layout.fragments == expected
        assert layout.complete_size == (
            expected[-1].offset + expected[-1].size if expected else whole.init_size
        )
        assert layout.truncated == (cut != layout.complete_size)


def test_truncate_to_complete_cut_file_ffprobe_reads_every_complete_fragment(
    fmp4_file: Path, tmp_path: Path
) -> None:
    whole = read_layout(fmp4_file)
    cut_file = tmp_path / "crashed.mp4"
    shutil.copyfile(fmp4_file, cut_file)
    cut = whole.fragments[7].offset + whole.fragments[7].size // 2
    with open(cut_file, "r+b") as f:
        f.truncate(cut)

    repaired = truncate_to_complete(cut_file)

    assert (
        cut_file.stat().st_size == repaired.complete_size == whole.fragments[7].offset
    )
    assert not repaired.truncated
    assert len(repaired.fragments) == 7
    counts = fragment_sample_counts(cut_file, repaired)
    assert packet_counts(cut_file) == [counts[track_id] for track_id in sorted(counts)]
    decode = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", str(cut_file), "-f", "null", "-"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert decode.stderr == ""


def test_truncate_to_complete_whole_file_left_unchanged(
    fmp4_file: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "whole.mp4"
    shutil.copyfile(fmp4_file, copy)

    layout = truncate_to_complete(copy)

    assert copy.read_bytes() == fmp4_file.read_bytes()
    assert len(layout.fragments) == 12


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"not an mp4 at all, just text" * 10,
        bytes(random.Random(1).randbytes(5000)),
    ],
    ids=["empty", "text", "random"],
)
def test_read_layout_garbage_raises_media_error(content: bytes, tmp_path: Path) -> None:
    path = tmp_path / "garbage.mp4"
    path.write_bytes(content)

    with pytest.raises(MediaError, match=r"garbage\.mp4"):
        read_layout(path)


def test_read_layout_plain_mp4_raises_media_error(tmp_path: Path) -> None:
    path = tmp_path / "plain.mp4"
    subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=160x120:rate=10",
            "-t",
            "1",
            "-c:v",
            "libx264",
            str(path),
        ],
        check=True,
    )

    with pytest.raises(MediaError, match="fragmented"):
        read_layout(path)


def test_read_layout_cut_inside_moov_raises_media_error(
    fmp4_file: Path, tmp_path: Path
) -> None:
    path = tmp_path / "head.mp4"
    path.write_bytes(fmp4_file.read_bytes()[:600])

    with pytest.raises(MediaError, match="moov"):
        read_layout(path)
