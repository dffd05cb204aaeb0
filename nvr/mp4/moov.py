"""The init segment of a fragmented MP4 (ftyp + moov): track table, fragment defaults, rewriting.

Field layouts follow ISO/IEC 14496-12: mvhd §8.2.2, tkhd §8.3.2, mdhd §8.4.2,
hdlr §8.4.3, stsd §8.5.2, mehd §8.8.2, trex §8.8.3.
"""

import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import BinaryIO

from nvr.errors import MediaError
from nvr.mp4.boxes import (
    CONTAINER_TYPES,
    BoxHeader,
    find_child,
    full_box_version_flags,
    iter_children,
    iter_file_boxes,
    make_box,
    make_full_box,
    read_at,
    u32,
)

_KINDS = {"vide": "video", "soun": "audio"}
_TREX = struct.Struct(">IIIII")
_MAX_U32 = 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class TrackInfo:
    """One track as the moov declares it."""

    kind: str  # "video", "audio", or the raw handler type for anything else
    timescale: int  # media ticks per second
    codec: str  # fourcc of the first sample entry, e.g. "avc1", "hvc1", "mp4a"


@dataclass(frozen=True, slots=True)
class TrexDefaults:
    """Per-track defaults that a tfhd may leave out (§8.8.3)."""

    sample_description_index: int
    sample_duration: int
    sample_size: int
    sample_flags: int


@dataclass(frozen=True)
class InitSegment:
    """What nvr needs from ftyp + moov; ``size`` is where the first fragment may start."""

    size: int
    moov_offset: int
    movie_timescale: int
    tracks: dict[int, TrackInfo]
    trex: dict[int, TrexDefaults]
    stsd: dict[
        int, bytes
    ]  # raw stsd box per track: equal bytes mean a compatible codec setup

    @property
    def video_track_id(self) -> int:
        for track_id, track in sorted(self.tracks.items()):
            if track.kind == "video":
                return track_id
        raise MediaError("the moov has no video track")

    def compatible_with(self, other: "InitSegment") -> bool:
        """Whether fragments written under ``other`` decode under this init segment."""
        return (
            self.tracks == other.tracks
            and self.trex == other.trex
            and self.stsd == other.stsd
        )


def read_init(f: BinaryIO, file_size: int) -> tuple[InitSegment, bytes]:
    """Parses the boxes before the first fragment; returns them and the raw moov bytes.

    Blocking. Raises MediaError when the file has no complete moov before its first moof.
    """
    moov_offset, moov = read_moov(f, file_size)
    return parse_init(moov, moov_offset), moov


def read_moov(f: BinaryIO, file_size: int) -> tuple[int, bytes]:
    """The offset and raw bytes of the moov box. Blocking."""
    for header in iter_file_boxes(f, 0, file_size):
        if header.type == "moof" or header.type == "mdat":
            break
        if header.type != "moov":
            continue
        if header.end > file_size:
            raise MediaError("the moov box is truncated")
        return header.offset, read_at(f, header.offset, header.size)
    raise MediaError("not a fragmented MP4: no moov box before the first fragment")


def parse_init(moov: bytes, moov_offset: int) -> InitSegment:
    """The track table of a moov held in memory; ``moov_offset`` is its place in the file."""
    return _parse_moov(moov, moov_offset)


def _parse_moov(moov: bytes, moov_offset: int) -> InitSegment:
    root = BoxHeader("moov", 0, len(moov), 8)
    mvhd = find_child(moov, root, "mvhd")
    if mvhd is None:
        raise MediaError("the moov has no mvhd")
    version, _ = full_box_version_flags(moov, mvhd)
    movie_timescale = u32(moov, mvhd.payload_offset + (20 if version == 1 else 12))

    tracks: dict[int, TrackInfo] = {}
    stsd: dict[int, bytes] = {}
    trex: dict[int, TrexDefaults] = {}
    for child in iter_children(moov, root.payload_offset, root.end):
        if child.type == "trak":
            track_id, track, stsd_bytes = _parse_trak(moov, child)
            tracks[track_id] = track
            stsd[track_id] = stsd_bytes
        elif child.type == "mvex":
            trex.update(_parse_mvex(moov, child))
    if not tracks:
        raise MediaError("the moov declares no track")
    if not trex:
        raise MediaError("the moov has no mvex/trex: not a fragmented MP4")
    return InitSegment(
        size=moov_offset + len(moov),
        moov_offset=moov_offset,
        movie_timescale=movie_timescale,
        tracks=tracks,
        trex=trex,
        stsd=stsd,
    )


def _parse_trak(moov: bytes, trak: BoxHeader) -> tuple[int, TrackInfo, bytes]:
    tkhd = find_child(moov, trak, "tkhd")
    mdia = find_child(moov, trak, "mdia")
    if tkhd is None or mdia is None:
        raise MediaError(f"trak at byte {trak.offset} lacks tkhd or mdia")
    track_id = _tkhd_track_id(moov, tkhd)

    mdhd = find_child(moov, mdia, "mdhd")
    hdlr = find_child(moov, mdia, "hdlr")
    minf = find_child(moov, mdia, "minf")
    stbl = find_child(moov, minf, "stbl") if minf else None
    stsd = find_child(moov, stbl, "stsd") if stbl else None
    if mdhd is None or hdlr is None or stsd is None:
        raise MediaError(f"track {track_id} lacks mdhd, hdlr or stsd")

    version, _ = full_box_version_flags(moov, mdhd)
    timescale = u32(moov, mdhd.payload_offset + (20 if version == 1 else 12))
    handler = moov[hdlr.payload_offset + 8 : hdlr.payload_offset + 12].decode("latin-1")
    entries = list(iter_children(moov, stsd.payload_offset + 8, stsd.end))
    codec = entries[0].type if entries else ""
    track = TrackInfo(
        kind=_KINDS.get(handler, handler), timescale=timescale, codec=codec
    )
    return track_id, track, moov[stsd.offset : stsd.end]


def _tkhd_track_id(buf: bytes, tkhd: BoxHeader) -> int:
    version, _ = full_box_version_flags(buf, tkhd)
    return u32(buf, tkhd.payload_offset + (20 if version == 1 else 12))


def _parse_mvex(moov: bytes, mvex: BoxHeader) -> dict[int, TrexDefaults]:
    defaults = {}
    for child in iter_children(moov, mvex.payload_offset, mvex.end):
        if child.type == "trex":
            track_id, *values = _TREX.unpack_from(moov, child.payload_offset + 4)
            defaults[track_id] = TrexDefaults(*values)
    return defaults


def rewrite_moov(
    moov: bytes, movie_duration: int, track_durations: Mapping[int, int]
) -> bytes:
    """The moov with its durations set: mvhd, each tkhd (movie timescale) and an mehd.

    The mehd (fragment_duration, §8.8.2) lets players show the length of a
    fragmented file without scanning every moof. Everything else is kept byte for byte.
    """
    root = BoxHeader("moov", 0, len(moov), 8)
    return make_box(
        "moov", _rewrite_children(moov, root, movie_duration, track_durations)
    )


def _rewrite_children(
    buf: bytes,
    parent: BoxHeader,
    movie_duration: int,
    track_durations: Mapping[int, int],
) -> bytes:
    track_id = None
    if parent.type == "trak":
        tkhd = find_child(buf, parent, "tkhd")
        track_id = _tkhd_track_id(buf, tkhd) if tkhd else None

    out = []
    for child in iter_children(buf, parent.payload_offset, parent.end):
        raw = buf[child.offset : child.end]
        if child.type == "mehd":
            continue  # replaced below
        if child.type == "mvhd":
            raw = _patch_duration(raw, 24, 32, movie_duration)
        elif child.type == "tkhd" and track_id is not None:
            raw = _patch_duration(raw, 28, 36, track_durations.get(track_id, 0))
        elif child.type in CONTAINER_TYPES:
            payload = _rewrite_children(buf, child, movie_duration, track_durations)
            raw = make_box(child.type, payload)
        out.append(raw)
    if parent.type == "mvex":
        out.insert(0, make_full_box("mehd", 1, 0, struct.pack(">Q", movie_duration)))
    return b"".join(out)


def _patch_duration(raw: bytes, v0_pos: int, v1_pos: int, duration: int) -> bytes:
    """Sets the duration field of an mvhd or tkhd (positions count from the box start)."""
    patched = bytearray(raw)
    if raw[8] == 1:
        struct.pack_into(">Q", patched, v1_pos, duration)
    else:
        # Note: all ones means "unknown" (§8.2.2) when a version 0 field cannot hold it.
        struct.pack_into(">I", patched, v0_pos, min(duration, _MAX_U32))
    return bytes(patched)
