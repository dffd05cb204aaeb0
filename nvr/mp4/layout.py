"""The fragment table of a segment file, reading it tolerantly and repairing a cut-off tail.

A segment is ftyp, moov, then moof+mdat pairs (docs/design.md). A crash can leave a
partial box at the end; everything before it is still playable, so reading stops there
and ``truncate_to_complete`` cuts the file back to the last complete fragment.
"""

import logging
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from nvr.errors import MediaError
from nvr.log import fields
from nvr.mp4.boxes import BoxHeader, read_at, read_header
from nvr.mp4.moof import Moof, parse_moof
from nvr.mp4.moov import TrackInfo, TrexDefaults, read_init

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Fragment:
    """One complete moof+mdat pair; times are in each track's timescale ticks."""

    offset: int  # of the moof
    size: int  # moof and mdat together
    decode_times: dict[int, int]  # track id -> tfdt baseMediaDecodeTime
    durations: dict[int, int]  # track id -> sum of sample durations
    video_keyframe: bool  # the first video sample is a sync sample


@dataclass(frozen=True)
class SegmentLayout:
    """Where everything is in a segment file."""

    init_size: int  # bytes of ftyp + moov
    tracks: dict[int, TrackInfo]
    video_track_id: int
    fragments: list[Fragment]
    complete_size: int  # bytes up to the end of the last complete moof+mdat
    file_size: int
    truncated: bool  # the file ends inside a box, or with a moof lacking its mdat
    durations: dict[int, int]  # track id -> ticks from its first decode time to its end

    @property
    def video_timescale(self) -> int:
        return self.tracks[self.video_track_id].timescale


@dataclass(frozen=True, slots=True)
class FragmentBoxes:
    """A parsed moof and the header of the mdat that follows it."""

    moof: Moof
    moof_bytes: bytes
    mdat: BoxHeader

    @property
    def end(self) -> int:
        return self.mdat.end


def iter_fragment_boxes(
    f: BinaryIO, trex: Mapping[int, TrexDefaults], start: int, file_size: int
) -> Iterator[FragmentBoxes | BoxHeader | None]:
    """Walks top-level boxes from ``start``: each complete fragment as FragmentBoxes, any
    other complete box as its header, and finally None if the file ends inside a box
    (or after a moof without its mdat). Blocking."""
    pos = start
    while pos < file_size:
        header = read_header(f, pos, file_size)
        if header is None or header.end > file_size:
            yield None
            return
        if header.type == "mdat":
            raise MediaError(f"mdat at byte {pos} has no moof before it")
        if header.type != "moof":
            yield header
            pos = header.end
            continue

        mdat = read_header(f, header.end, file_size)
        if mdat is None or mdat.end > file_size:
            yield None
            return
        if mdat.type != "mdat":
            raise MediaError(
                f"moof at byte {pos} is followed by {mdat.type!r}, not mdat"
            )
        moof_bytes = read_at(f, header.offset, header.size)
        yield FragmentBoxes(
            parse_moof(moof_bytes, header.offset, trex), moof_bytes, mdat
        )
        pos = mdat.end


def read_layout(path: Path) -> SegmentLayout:
    """Parses a segment file's fragment table. Blocking: reads every moof, not the mdats.

    A partial box at the end is tolerated (left out of ``fragments`` and
    ``complete_size``); a file that is not a fragmented MP4 raises MediaError.
    """
    try:
        with open(path, "rb") as f:
            return _read_layout(f, os.fstat(f.fileno()).st_size)
    except MediaError as exc:
        raise MediaError(f"{path}: {exc}") from exc


def _read_layout(f: BinaryIO, file_size: int) -> SegmentLayout:
    init, _ = read_init(f, file_size)
    video_track_id = init.video_track_id
    fragments: list[Fragment] = []
    complete_size = init.size
    truncated = False
    for item in iter_fragment_boxes(f, init.trex, init.size, file_size):
        if item is None:
            truncated = True
        elif isinstance(item, FragmentBoxes):
            fragments.append(_fragment(item, video_track_id))
            complete_size = item.end
    return SegmentLayout(
        init_size=init.size,
        tracks=init.tracks,
        video_track_id=video_track_id,
        fragments=fragments,
        complete_size=complete_size,
        file_size=file_size,
        truncated=truncated,
        durations=_track_durations(fragments),
    )


def _fragment(boxes: FragmentBoxes, video_track_id: int) -> Fragment:
    video = boxes.moof.traf(video_track_id)
    return Fragment(
        offset=boxes.moof.offset,
        size=boxes.end - boxes.moof.offset,
        decode_times={traf.track_id: traf.decode_time for traf in boxes.moof.trafs},
        durations={traf.track_id: traf.duration for traf in boxes.moof.trafs},
        video_keyframe=video is not None and video.starts_with_sync_sample,
    )


def _track_durations(fragments: list[Fragment]) -> dict[int, int]:
    first: dict[int, int] = {}
    end: dict[int, int] = {}
    for fragment in fragments:
        for track_id, decode_time in fragment.decode_times.items():
            first.setdefault(track_id, decode_time)
            end[track_id] = decode_time + fragment.durations[track_id]
    return {track_id: end[track_id] - first[track_id] for track_id in end}


def truncate_to_complete(path: Path) -> SegmentLayout:
    """Cuts a crash-truncated segment back to its last complete fragment, durably.

    Blocking (os.truncate + fsync). A file without a partial tail is left as it is.
    """
    layout = read_layout(path)
    if not layout.truncated:
        return layout
    with open(path, "r+b") as f:
        os.truncate(f.fileno(), layout.complete_size)
        os.fsync(f.fileno())
    log.info(
        "segment tail truncated %s",
        fields(
            path=path,
            from_bytes=layout.file_size,
            to_bytes=layout.complete_size,
            fragments=len(layout.fragments),
        ),
    )
    return read_layout(path)


def keyframe_table(layout: SegmentLayout) -> tuple[tuple[int, int], ...]:
    """(video ticks from segment start, byte offset) of each fragment starting on a keyframe."""
    video = layout.video_track_id
    return tuple(
        (fragment.decode_times[video], fragment.offset)
        for fragment in layout.fragments
        if fragment.video_keyframe
    )
