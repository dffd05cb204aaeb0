"""Box headers as ISO/IEC 14496-12 §4.2 lays them out."""

import struct

import pytest

from nvr.errors import MediaError
from nvr.mp4.boxes import iter_children, make_box, make_mdat_header, parse_header


def test_parse_header_largesize_reads_64_bit_size() -> None:
    raw = struct.pack(">I4sQ", 1, b"mdat", 5_000_000_000)

    header = parse_header(raw, 0, 10**12)

    assert header is not None
    assert (header.type, header.size, header.header_size) == ("mdat", 5_000_000_000, 16)


def test_parse_header_size_zero_extends_to_limit() -> None:
    header = parse_header(struct.pack(">I4s", 0, b"mdat"), 0, 1234, base=100)

    assert header is not None
    assert (header.offset, header.size, header.end) == (100, 1234, 1334)


def test_parse_header_cut_off_returns_none() -> None:
    assert parse_header(b"\x00\x00\x00", 0, 3) is None
    assert parse_header(struct.pack(">I4s", 1, b"mdat") + b"\x00", 0, 100) is None


def test_parse_header_size_below_header_raises_media_error() -> None:
    with pytest.raises(MediaError, match="impossible size 4"):
        parse_header(struct.pack(">I4s", 4, b"free"), 0, 100)


def test_iter_children_made_boxes_round_trip() -> None:
    payload = make_box("free", b"abc") + make_box("skip", b"")
    parent = make_box("moov", payload)

    children = list(iter_children(parent, 8, len(parent)))

    assert [(c.type, c.size) for c in children] == [("free", 11), ("skip", 8)]


def test_iter_children_overflowing_child_raises_media_error() -> None:
    parent = make_box("moov", struct.pack(">I4s", 64, b"trak"))

    with pytest.raises(MediaError, match="overflows"):
        list(iter_children(parent, 8, len(parent)))


def test_make_mdat_header_counts_header_in_size() -> None:
    assert make_mdat_header(10) == struct.pack(">I4s", 18, b"mdat")
    assert make_mdat_header(2**32) == struct.pack(">I4sQ", 1, b"mdat", 2**32 + 16)
