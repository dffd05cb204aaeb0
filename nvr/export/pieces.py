"""The parts a clip is assembled from: bytes in memory, file ranges, and fragment spans
whose moofs are patched as they are read."""

import functools
from bisect import bisect_right
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from nvr.errors import MediaError
from nvr.mp4.boxes import iter_file_boxes, read_at
from nvr.mp4.moof import patch_moof


class Piece(Protocol):
    """A run of output bytes of known size."""

    @property
    def size(self) -> int: ...

    def read(self, offset: int, length: int) -> bytes:
        """``length`` bytes from ``offset`` inside the piece (both within its size). Blocking."""
        ...


@dataclass(frozen=True, slots=True)
class BytesPiece:
    """Bytes built while planning: the init segment, a rewritten moof."""

    data: bytes

    @property
    def size(self) -> int:
        return len(self.data)

    def read(self, offset: int, length: int) -> bytes:
        return self.data[offset : offset + length]


@dataclass(frozen=True, slots=True)
class FileRangePiece:
    """Bytes copied unchanged from a segment file (sample data)."""

    path: Path
    offset: int
    length: int

    @property
    def size(self) -> int:
        return self.length

    def read(self, offset: int, length: int) -> bytes:
        with open(self.path, "rb") as f:
            return read_exact(f, self.offset + offset, length)


@dataclass(frozen=True, slots=True)
class SpansPiece:
    """Consecutive fragments of one segment file, copied with their moofs patched lazily.

    Span ``i`` is ``boundaries[i]:boundaries[i + 1]`` in the file (one keyframe's
    fragment); its moof gets sequence number ``first_sequence + i`` and each tfdt moves
    by the shift of its track. Patching keeps sizes, so the piece size is known upfront.
    """

    path: Path
    boundaries: tuple[int, ...]
    first_sequence: int
    shifts: tuple[tuple[int, int], ...]  # (track id, ticks added to its tfdt)

    @property
    def size(self) -> int:
        return self.boundaries[-1] - self.boundaries[0]

    def read(self, offset: int, length: int) -> bytes:
        out = []
        position = self.boundaries[0] + offset
        end = position + length
        with open(self.path, "rb") as f:
            index = bisect_right(self.boundaries, position) - 1
            while position < end:
                span_end = self.boundaries[index + 1]
                regions = _patched_span(
                    self.path, self.boundaries[index], span_end,
                    self.first_sequence + index, self.shifts,
                )
                stop = min(end, span_end)
                out.append(_read_regions(f, regions, position, stop))
                position = stop
                index += 1
        return b"".join(out)


# A region of a span: (file start, file end, patched bytes or None for "copy the file").
_Region = tuple[int, int, bytes | None]


@functools.lru_cache(maxsize=32)
def _patched_span(
    path: Path, start: int, end: int, sequence: int, shifts: tuple[tuple[int, int], ...]
) -> tuple[_Region, ...]:
    """The span's top-level boxes, each moof patched; cached because a span is usually
    served by several consecutive reads of one HTTP response."""
    regions: list[_Region] = []
    shift_by_track = dict(shifts)
    with open(path, "rb") as f:
        position = start
        for header in iter_file_boxes(f, start, end):
            if header.end > end:
                break
            data = None
            if header.type == "moof":
                moof = read_exact(f, header.offset, header.size)
                # Note: FFmpeg's frag_keyframe writes one moof per span; a span holding
                # more (fragments not starting on a keyframe) repeats the sequence number.
                data = patch_moof(moof, sequence, shift_by_track)
            regions.append((header.offset, header.end, data))
            position = header.end
    if position != end:
        raise MediaError(f"{path}: boxes from byte {start} do not end at byte {end}")
    return tuple(regions)


def _read_regions(f: BinaryIO, regions: tuple[_Region, ...], start: int, end: int) -> bytes:
    out = []
    for region_start, region_end, data in regions:
        if region_end <= start or region_start >= end:
            continue
        lo = max(start, region_start)
        hi = min(end, region_end)
        if data is None:
            out.append(read_exact(f, lo, hi - lo))
        else:
            out.append(data[lo - region_start : hi - region_start])
    return b"".join(out)


def read_exact(f: BinaryIO, offset: int, length: int) -> bytes:
    """Exactly ``length`` bytes at ``offset``; a shorter file means it changed under us."""
    data = read_at(f, offset, length)
    if len(data) != length:
        raise MediaError(f"segment file shrank while a clip was read (offset {offset})")
    return data
