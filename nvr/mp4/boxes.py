"""ISO BMFF box headers (ISO/IEC 14496-12 §4.2): reading them from files and buffers, writing boxes.

Files are read by offset with ``os.pread`` so that several threads may read one file
object at once and no segment is ever loaded whole.
"""

import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from nvr.errors import MediaError

_HEADER = struct.Struct(">I4s")
_LARGESIZE = struct.Struct(">Q")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")

# Boxes whose payload is nothing but child boxes (§8.1-8.8), as far as nvr descends.
CONTAINER_TYPES = frozenset(
    {
        "moov",
        "trak",
        "mdia",
        "minf",
        "stbl",
        "mvex",
        "moof",
        "traf",
        "edts",
        "dinf",
        "mfra",
    }
)


@dataclass(frozen=True, slots=True)
class BoxHeader:
    """Where one box sits: ``offset`` is absolute (file or buffer), ``size`` includes the header."""

    type: str
    offset: int
    size: int
    header_size: int

    @property
    def end(self) -> int:
        return self.offset + self.size

    @property
    def payload_offset(self) -> int:
        return self.offset + self.header_size


def read_at(f: BinaryIO, offset: int, length: int) -> bytes:
    """Up to ``length`` bytes at ``offset``; fewer only at the end of the file."""
    try:
        fd = f.fileno()
    except OSError:
        # Not an OS file (a segment read by ranges from S3, nvr.export.pieces): seek+read.
        f.seek(offset)
        return f.read(length)
    chunks = []
    while length > 0:
        chunk = os.pread(fd, length, offset)
        if not chunk:
            break
        chunks.append(chunk)
        offset += len(chunk)
        length -= len(chunk)
    return b"".join(chunks)


def parse_header(buf: bytes, pos: int, limit: int, base: int = 0) -> BoxHeader | None:
    """The box header at ``buf[pos:]``, or None when fewer header bytes than needed remain.

    ``limit`` is where the enclosing space ends (in ``buf`` coordinates), used for
    size 0 ("extends to the end"); ``base`` is added to report absolute offsets.
    """
    if limit - pos < 8 or len(buf) - pos < 8:
        return None
    size, raw_type = _HEADER.unpack_from(buf, pos)
    header_size = 8
    if size == 1:
        if len(buf) - pos < 16:
            return None
        (size,) = _LARGESIZE.unpack_from(buf, pos + 8)
        header_size = 16
    elif size == 0:
        size = limit - pos
    if size < header_size:
        raise MediaError(f"box at byte {base + pos} has impossible size {size}")
    return BoxHeader(raw_type.decode("latin-1"), base + pos, size, header_size)


def read_header(f: BinaryIO, offset: int, file_size: int) -> BoxHeader | None:
    """The box header at ``offset`` in a file, or None when it is cut off by the file's end."""
    buf = read_at(f, offset, 16)
    return parse_header(buf, 0, file_size - offset, base=offset)


def iter_file_boxes(f: BinaryIO, start: int, end: int) -> Iterator[BoxHeader]:
    """Top-level box headers from ``start`` to ``end``; the last one may reach past ``end``."""
    pos = start
    while pos < end:
        header = read_header(f, pos, end)
        if header is None:
            return
        yield header
        pos = header.end


def iter_children(buf: bytes, start: int, end: int) -> Iterator[BoxHeader]:
    """Child boxes inside ``buf[start:end]`` (offsets in ``buf``); overflowing is an error."""
    pos = start
    while pos < end:
        header = parse_header(buf, pos, end)
        if header is None or header.end > end:
            raise MediaError(f"box at byte {pos} overflows its parent ending at {end}")
        yield header
        pos = header.end


def find_child(buf: bytes, parent: BoxHeader, box_type: str) -> BoxHeader | None:
    """The first child of ``parent`` with the given type."""
    for child in iter_children(buf, parent.payload_offset, parent.end):
        if child.type == box_type:
            return child
    return None


def full_box_version_flags(buf: bytes, header: BoxHeader) -> tuple[int, int]:
    """Version and flags of a FullBox (§4.2.2)."""
    (word,) = _U32.unpack_from(buf, header.payload_offset)
    return word >> 24, word & 0xFFFFFF


def make_box(box_type: str, payload: bytes) -> bytes:
    """A box with a 32-bit size, or a 64-bit largesize when the payload needs it."""
    raw_type = box_type.encode("latin-1")
    size = 8 + len(payload)
    if size <= 0xFFFFFFFF:
        return _HEADER.pack(size, raw_type) + payload
    return _HEADER.pack(1, raw_type) + _LARGESIZE.pack(size + 8) + payload


def make_full_box(box_type: str, version: int, flags: int, payload: bytes) -> bytes:
    """A FullBox: version and flags, then the payload."""
    return make_box(box_type, _U32.pack((version << 24) | flags) + payload)


def make_mdat_header(payload_size: int) -> bytes:
    """The header of an mdat holding ``payload_size`` bytes (written separately, streamed)."""
    if payload_size + 8 <= 0xFFFFFFFF:
        return _HEADER.pack(payload_size + 8, b"mdat")
    return _HEADER.pack(1, b"mdat") + _LARGESIZE.pack(payload_size + 16)


def u32(buf: bytes, pos: int) -> int:
    """The big-endian unsigned 32-bit integer at ``pos``."""
    value: int = _U32.unpack_from(buf, pos)[0]
    return value


def u64(buf: bytes, pos: int) -> int:
    """The big-endian unsigned 64-bit integer at ``pos``."""
    value: int = _U64.unpack_from(buf, pos)[0]
    return value
