"""The parts a clip is assembled from: bytes in memory, file ranges, and fragment spans
whose moofs are patched as they are read."""

import functools
import io
from bisect import bisect_right
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable

from nvr.errors import MediaError
from nvr.mp4.boxes import iter_file_boxes, read_at
from nvr.mp4.moof import patch_moof


@runtime_checkable
class RangeReader(Protocol):
    """A segment read by byte ranges instead of as a local file (e.g. an S3 object, see
    nvr.storage.reader). Implementations are hashable: moof patches are cached by them."""

    @property
    def size(self) -> int: ...

    def read_range(self, offset: int, length: int) -> bytes:
        """Up to ``length`` bytes from ``offset``; fewer only at the end. Blocking."""
        ...

    def __hash__(self) -> int: ...


# Where a segment's bytes are: a local file, or a reader of byte ranges.
SegmentLocation = Path | RangeReader

# Reads through a RangeReader are buffered this much, so walking box headers costs one
# ranged request per buffer rather than one per header.
RANGE_BUFFER_BYTES = 64 * 1024


class _RangeRaw(io.RawIOBase):
    """A seekable raw stream over a RangeReader; ``fileno`` is unsupported."""

    def __init__(self, reader: RangeReader) -> None:
        self._reader = reader
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {
            io.SEEK_SET: 0,
            io.SEEK_CUR: self._position,
            io.SEEK_END: self._reader.size,
        }
        self._position = base[whence] + offset
        return self._position

    def readinto(self, buffer: "bytearray | memoryview") -> int:  # type: ignore[override]
        length = min(len(buffer), self._reader.size - self._position)
        if length <= 0:
            return 0
        data = self._reader.read_range(self._position, length)
        buffer[: len(data)] = data
        self._position += len(data)
        return len(data)


def open_segment(location: SegmentLocation) -> BinaryIO:
    """The segment's bytes as a binary file: a local file, or buffered range reads."""
    if isinstance(location, Path):
        return open(location, "rb")
    return io.BufferedReader(_RangeRaw(location), RANGE_BUFFER_BYTES)


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

    path: SegmentLocation
    offset: int
    length: int

    @property
    def size(self) -> int:
        return self.length

    def read(self, offset: int, length: int) -> bytes:
        with open_segment(self.path) as f:
            return read_exact(f, self.offset + offset, length)


@dataclass(frozen=True, slots=True)
class SpansPiece:
    """Consecutive fragments of one segment file, copied with their moofs patched lazily.

    Span ``i`` is ``boundaries[i]:boundaries[i + 1]`` in the file (one keyframe's
    fragment); its moof gets sequence number ``first_sequence + i`` and each tfdt moves
    by the shift of its track. Patching keeps sizes, so the piece size is known upfront.
    """

    path: SegmentLocation
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
        with open_segment(self.path) as f:
            index = bisect_right(self.boundaries, position) - 1
            while position < end:
                span_end = self.boundaries[index + 1]
                regions = _patched_span(
                    self.path,
                    self.boundaries[index],
                    span_end,
                    self.first_sequence + index,
                    self.shifts,
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
    path: SegmentLocation,
    start: int,
    end: int,
    sequence: int,
    shifts: tuple[tuple[int, int], ...],
) -> tuple[_Region, ...]:
    """The span's top-level boxes, each moof patched; cached because a span is usually
    served by several consecutive reads of one HTTP response."""
    regions: list[_Region] = []
    shift_by_track = dict(shifts)
    with open_segment(path) as f:
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


def _read_regions(
    f: BinaryIO, regions: tuple[_Region, ...], start: int, end: int
) -> bytes:
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
