"""One playable MP4 for a time range, streamed out of several segment files.

The clip is the first segment's init (durations patched, an mehd added) followed by
the selected fragments copied byte for byte, except that every moof is rewritten:
mfhd renumbered, each tfdt shifted so the clip's timeline is continuous, and the last
fragment cut at sample level so the clip ends at the requested end. Every output
byte's source is decided while planning, so the size is known before the first byte
is sent and any byte range can be served (HTTP Range).
"""

import logging
import os
from bisect import bisect_left, bisect_right
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import BinaryIO

from nvr.errors import BadRange, MediaError, NotFound
from nvr.export.pieces import (
    BytesPiece,
    FileRangePiece,
    Piece,
    SegmentLocation,
    SpansPiece,
    open_segment,
    read_exact,
)
from nvr.log import fields
from nvr.mp4.boxes import read_at, read_header
from nvr.mp4.layout import FragmentBoxes, iter_fragment_boxes
from nvr.mp4.moof import build_trimmed_fragment, patch_moof, read_decode_times
from nvr.mp4.moov import InitSegment, parse_init, read_moov, rewrite_moov

log = logging.getLogger(__name__)

US_PER_S = 1_000_000

# Note: a segment starting within this much of the previous one's end is taken to be
# the same run, and is placed exactly at the previous segment's media end instead of at
# its wall time, so that small wall-clock jitter does not open gaps or overlaps.
JOIN_TOLERANCE_US = 100_000


@dataclass(frozen=True)
class ClipSource:
    """One segment as the index knows it."""

    path: SegmentLocation  # absolute path of the segment file, or a RangeReader (S3)
    start_us: int  # wall start of the segment (UTC microseconds)
    end_us: int
    timescale: int  # video ticks per second
    keyframes: tuple[
        tuple[int, int], ...
    ]  # (video ticks from segment start, byte offset)
    size: int  # bytes

    def keyframe_wall_us(self, index: int) -> int:
        return self.start_us + self.keyframes[index][0] * US_PER_S // self.timescale


class ClipPlan:
    """The byte layout of one clip; ``read`` and ``iter_chunks`` block on file reads."""

    def __init__(
        self,
        pieces: list[Piece],
        start_us: int,
        end_us: int,
        truncated_at_us: int | None,
    ) -> None:
        self._pieces = [piece for piece in pieces if piece.size > 0]
        self._starts: list[int] = []
        total = 0
        for piece in self._pieces:
            self._starts.append(total)
            total += piece.size
        self.size = total
        self.start_us = start_us  # wall time of the first keyframe
        self.end_us = end_us  # wall time where the last kept video sample ends
        self.truncated_at_us = (
            truncated_at_us  # set when a codec change ended the clip early
        )

    def read(self, offset: int, length: int) -> bytes:
        """The clip's bytes ``[offset, offset + length)``, clipped to its size. Blocking."""
        if offset < 0 or length < 0:
            raise ValueError(f"negative offset or length: {offset}, {length}")
        end = min(self.size, offset + length)
        out = []
        index = bisect_right(self._starts, offset) - 1
        while offset < end:
            piece_start = self._starts[index]
            piece = self._pieces[index]
            stop = min(end, piece_start + piece.size)
            out.append(piece.read(offset - piece_start, stop - offset))
            offset = stop
            index += 1
        return b"".join(out)

    def iter_chunks(
        self, offset: int = 0, end: int | None = None, chunk_size: int = 256 * 1024
    ) -> Iterator[bytes]:
        """The bytes ``[offset, end)`` in chunks of at most ``chunk_size``. Blocking."""
        stop = self.size if end is None else min(end, self.size)
        while offset < stop:
            length = min(chunk_size, stop - offset)
            yield self.read(offset, length)
            offset += length


@dataclass(frozen=True)
class _Pick:
    """The fragments of one source that meet the range: keyframe indexes first..last."""

    source: ClipSource
    first: int
    last: int


@dataclass(frozen=True)
class _Selection:
    """A picked source with what planning read of it."""

    source: ClipSource
    first: int
    last: int
    init: InitSegment
    span_end: int  # file offset where the last selected fragment ends
    first_decode_times: dict[int, int]  # tfdt per track of the first selected fragment
    last_span: list[FragmentBoxes]  # the fragments of the last selected keyframe


def plan_clip(sources: Sequence[ClipSource], start_us: int, end_us: int) -> ClipPlan:
    """Plans the clip of ``[start_us, end_us)``. Blocking: reads each used segment's moov
    and the moofs at the edges of its selected fragments.

    The clip starts at the last keyframe at or before ``start_us`` and ends with the
    last sample decoded before ``end_us``. Raises NotFound when no fragment overlaps.
    """
    if end_us <= start_us:
        raise BadRange(f"end {end_us} is not after start {start_us}")
    picks = _select(sources, start_us, end_us)
    if not picks:
        raise NotFound("no recording in the requested range")

    head, selections, truncated_at_us = _scan(picks)
    if not selections:
        raise NotFound("no recording in the requested range")
    return _assemble(selections, head, end_us, truncated_at_us)


def _select(sources: Sequence[ClipSource], start_us: int, end_us: int) -> list[_Pick]:
    """Per source, the fragments whose wall interval meets the range, in time order."""
    selections: list[_Pick] = []
    previous_end_us = None
    for source in sorted(sources, key=lambda s: s.start_us):
        if (
            not source.keyframes
            or source.end_us <= start_us
            or source.start_us >= end_us
        ):
            continue
        if (
            previous_end_us is not None
            and source.start_us < previous_end_us - JOIN_TOLERANCE_US
        ):
            # Limitation: overlapping segments (a duplicate recording) are skipped whole;
            # the index should never hold two segments of one stream at one instant.
            log.warning("clip skips overlapping segment %s", fields(path=source.path))
            continue
        indexes = range(len(source.keyframes))
        first = bisect_right(indexes, start_us, key=source.keyframe_wall_us) - 1
        last = bisect_left(indexes, end_us, key=source.keyframe_wall_us) - 1
        first = max(first, 0)
        if last < first:
            continue
        selections.append(_Pick(source, first, last))
        previous_end_us = source.end_us
    return selections


def _scan(picks: list[_Pick]) -> tuple[bytes, list[_Selection], int | None]:
    """Reads what planning needs from each source; stops before a codec change.

    Returns the first source's raw boxes up to its moov end, the usable selections, and
    the wall time where an incompatible source cut the clip short (or None).
    """
    inits: dict[bytes, InitSegment] = {}
    head = b""
    usable: list[_Selection] = []
    for pick in picks:
        with open_segment(pick.source.path) as f:
            file_size = f.seek(0, os.SEEK_END)
            moov_offset, moov = read_moov(f, file_size)
            init = inits.get(moov)
            if init is None:
                init = parse_init(moov, moov_offset)
                inits[moov] = init
            if not usable:
                head = read_at(f, 0, moov_offset) + moov
            elif not init.compatible_with(usable[0].init):
                # Limitation: one MP4 has one sample description per track, so a
                # resolution or SPS change ends the clip; the caller may ask for the rest
                # as a second clip starting at truncated_at_us.
                log.info("clip cut at codec change %s", fields(path=pick.source.path))
                return head, usable, pick.source.start_us
            usable.append(_scan_fragments(f, pick, init, file_size))
    return head, usable, None


def _scan_fragments(
    f: BinaryIO, pick: _Pick, init: InitSegment, file_size: int
) -> _Selection:
    """Reads the first selected moof and every fragment of the last selected span."""
    source = pick.source
    if init.tracks[init.video_track_id].timescale != source.timescale:
        raise MediaError(f"{source.path}: video timescale differs from the index's")

    last_offset = source.keyframes[pick.last][1]
    has_next = pick.last + 1 < len(source.keyframes)
    limit = source.keyframes[pick.last + 1][1] if has_next else file_size
    last_span = []
    for item in iter_fragment_boxes(f, init.trex, last_offset, limit):
        if not isinstance(item, FragmentBoxes):
            break
        last_span.append(item)
    if not last_span:
        raise MediaError(f"{source.path}: no complete fragment at byte {last_offset}")
    span_end = last_span[-1].end
    if has_next and span_end != limit:
        raise MediaError(
            f"{source.path}: fragments at {last_offset} do not end at {limit}"
        )

    if pick.first == pick.last:
        first_decode_times = {
            t.track_id: t.decode_time for t in last_span[0].moof.trafs
        }
    else:
        first_decode_times = _read_decode_times(
            f, source.keyframes[pick.first][1], file_size
        )
    return _Selection(
        source=source,
        first=pick.first,
        last=pick.last,
        init=init,
        span_end=span_end,
        first_decode_times=first_decode_times,
        last_span=last_span,
    )


def _read_decode_times(f: BinaryIO, offset: int, file_size: int) -> dict[int, int]:
    """The tfdt per track of the moof at ``offset``."""
    header = read_header(f, offset, file_size)
    if header is None or header.type != "moof" or header.end > file_size:
        raise MediaError(f"no complete moof at byte {offset}")
    return read_decode_times(read_exact(f, offset, header.size))


def _assemble(
    selections: list[_Selection], head: bytes, end_us: int, truncated_at_us: int | None
) -> ClipPlan:
    init = selections[0].init
    video = init.video_track_id
    timescales = {track_id: track.timescale for track_id, track in init.tracks.items()}
    origin_us = selections[0].source.keyframe_wall_us(selections[0].first)

    pieces: list[Piece] = []
    track_ends = dict.fromkeys(
        timescales, 0
    )  # output ticks where each track ends so far
    sequence = 1
    previous: _Selection | None = None
    for index, selection in enumerate(selections):
        shifts = _shifts(selection, previous, origin_us, track_ends, timescales, video)
        is_last = index == len(selections) - 1
        keep = _keep_counts(selection, end_us) if is_last else []
        source_pieces, sequence, ends = _source_pieces(
            selection, shifts, sequence, keep
        )
        pieces.extend(source_pieces)
        for track_id, media_end in ends.items():
            track_ends[track_id] = media_end + shifts[track_id]
        previous = selection

    moov = _clip_moov(head, init, track_ends)
    pieces.insert(0, BytesPiece(moov))
    clip_end_us = origin_us + track_ends[video] * US_PER_S // timescales[video]
    return ClipPlan(pieces, origin_us, clip_end_us, truncated_at_us)


def _shifts(
    selection: _Selection,
    previous: _Selection | None,
    origin_us: int,
    track_ends: dict[int, int],
    timescales: dict[int, int],
    video: int,
) -> dict[int, int]:
    """Ticks to add to each track's tfdt so the source lands at its place in the clip.

    Video is placed at the source's wall offset from the clip start, or exactly at the
    previous source's end when both belong to one run; other tracks follow video's
    placement but never start before their own previous end (decode time must not go
    back, ISO/IEC 14496-12 §8.8.12).
    """
    first = selection.first_decode_times
    if previous is None:
        video_zero = -first.get(video, 0)
    else:
        abut = track_ends[video] - first.get(video, 0)
        offset_us = selection.source.start_us - origin_us
        at_wall = offset_us * timescales[video] // US_PER_S
        joined = selection.source.start_us - previous.source.end_us <= JOIN_TOLERANCE_US
        video_zero = abut if joined else max(at_wall, abut)

    # Limitation: a segment whose audio outlasts its video by more than a frame pushes
    # the next segment's audio that much late, and the lag adds up over many segments;
    # the fix is to drop the overlapping audio samples instead of delaying them.
    shifts = {video: video_zero}
    for track_id, timescale in timescales.items():
        if track_id != video:
            follow = video_zero * timescale // timescales[video]
            shifts[track_id] = max(
                follow, track_ends[track_id] - first.get(track_id, 0)
            )
    return shifts


def _keep_counts(selection: _Selection, end_us: int) -> list[dict[int, int]]:
    """Per fragment of the last span, how many samples per track decode before ``end_us``."""
    source = selection.source
    counts = []
    for boxes in selection.last_span:
        keep = {}
        for traf in boxes.moof.trafs:
            timescale = selection.init.tracks[traf.track_id].timescale
            cut = -(-(end_us - source.start_us) * timescale // US_PER_S)
            keep[traf.track_id] = bisect_left(traf.sample_decode_times(), cut)
        counts.append(keep)
    return counts


def _source_pieces(
    selection: _Selection,
    shifts: dict[int, int],
    sequence: int,
    keep: list[dict[int, int]],
) -> tuple[list[Piece], int, dict[int, int]]:
    """The pieces of one source, the next sequence number, and each track's media end."""
    source = selection.source
    offsets = [
        offset for _, offset in source.keyframes[selection.first : selection.last + 1]
    ]
    trims = keep and any(
        counts[traf.track_id] < traf.sample_count
        for boxes, counts in zip(selection.last_span, keep, strict=True)
        for traf in boxes.moof.trafs
    )
    shift_items = tuple(sorted(shifts.items()))
    if not trims:
        piece = SpansPiece(
            source.path, (*offsets, selection.span_end), sequence, shift_items
        )
        ends = _media_ends(selection.last_span, None)
        return [piece], sequence + len(offsets), ends

    pieces: list[Piece] = []
    if len(offsets) > 1:
        pieces.append(SpansPiece(source.path, tuple(offsets), sequence, shift_items))
        sequence += len(offsets) - 1
    for boxes, counts in zip(selection.last_span, keep, strict=True):
        if not any(counts.values()):
            break
        pieces.extend(_fragment_pieces(source.path, boxes, counts, shifts, sequence))
        sequence += 1
    return pieces, sequence, _media_ends(selection.last_span, keep)


def _fragment_pieces(
    path: SegmentLocation,
    boxes: FragmentBoxes,
    counts: dict[int, int],
    shifts: dict[int, int],
    sequence: int,
) -> list[Piece]:
    """One fragment of the last span: patched whole, or rebuilt with fewer samples."""
    moof = boxes.moof
    if all(counts[traf.track_id] == traf.sample_count for traf in moof.trafs):
        patched = patch_moof(boxes.moof_bytes, sequence, shifts)
        mdat_start = moof.offset + moof.size
        return [
            BytesPiece(patched),
            FileRangePiece(path, mdat_start, boxes.end - mdat_start),
        ]
    decode_times = {
        traf.track_id: traf.decode_time + shifts[traf.track_id] for traf in moof.trafs
    }
    head, ranges = build_trimmed_fragment(moof, sequence, counts, decode_times)
    pieces: list[Piece] = [BytesPiece(head)]
    pieces.extend(FileRangePiece(path, offset, length) for offset, length in ranges)
    return pieces


def _media_ends(
    span: list[FragmentBoxes], keep: list[dict[int, int]] | None
) -> dict[int, int]:
    """Each track's media end (decode time after its last kept sample) in the span."""
    ends: dict[int, int] = {}
    for index, boxes in enumerate(span):
        for traf in boxes.moof.trafs:
            count = traf.sample_count if keep is None else keep[index][traf.track_id]
            if count == 0:
                continue
            durations = [d for run in traf.runs for d in run.durations][:count]
            ends[traf.track_id] = traf.decode_time + sum(durations)
    return ends


def _clip_moov(head: bytes, init: InitSegment, track_ends: dict[int, int]) -> bytes:
    """The first source's ftyp and moov, with the clip's durations written in."""
    movie_timescale = init.movie_timescale
    track_durations = {
        track_id: end * movie_timescale // init.tracks[track_id].timescale
        for track_id, end in track_ends.items()
    }
    moov_start = init.moov_offset
    moov = rewrite_moov(
        head[moov_start:], max(track_durations.values()), track_durations
    )
    return head[:moov_start] + moov
