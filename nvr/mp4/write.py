"""Writing fragmented MP4 (ISO/IEC 14496-12): the init segment and one fragment at a time.

The native recorder (nvr.ingest.native) builds its segment files with these functions;
their shape is the one docs/design.md describes and nvr.mp4.layout reads: ftyp, a moov
with empty sample tables and an mvex, then one moof+mdat per fragment, each fragment
starting on a video keyframe, ``tfdt`` carrying the decode time and ``default-base-is-moof``
data offsets (§8.8.7). Pure functions: bytes in, bytes out.
"""

import struct
from dataclasses import dataclass
from typing import Literal

from nvr.mp4.boxes import make_box, make_full_box, make_mdat_header
from nvr.mp4.moof import (
    TFHD_DEFAULT_BASE_IS_MOOF,
    TRUN_CTS,
    TRUN_DATA_OFFSET,
    TRUN_DURATION,
    TRUN_FLAGS,
    TRUN_SIZE,
)

# sample flags (§8.8.3.1): a sync sample depends on nothing; others depend, and are not sync
SYNC_SAMPLE_FLAGS = 0x02000000
NON_SYNC_SAMPLE_FLAGS = 0x01010000

_UNITY_MATRIX = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
_LANGUAGE_UND = 0x55C4  # ISO 639-2 "und", packed as three 5-bit letters
_MOVIE_TIMESCALE = 1000
_SAMPLE = struct.Struct(">IIIi")
_AUDIO_SAMPLE = struct.Struct(">III")


@dataclass(frozen=True)
class TrackSpec:
    """One track of a segment file; ``config`` is the avcC, hvcC or esds payload."""

    track_id: int
    kind: Literal["video", "audio"]
    codec: Literal["avc1", "hvc1", "mp4a"]
    timescale: int  # media ticks per second (the RTP clock rate)
    config: bytes
    width: int = 0
    height: int = 0
    channels: int = 0
    sample_rate: int = 0


@dataclass(slots=True)
class TrackFragment:
    """One track's samples in one fragment, in decode order.

    ``cts_offsets`` (video only) are presentation minus decode time per sample.
    """

    track_id: int
    decode_time: int
    durations: list[int]
    sizes: list[int]
    flags: list[int]
    cts_offsets: list[int] | None
    data: list[bytes]  # the sample bytes, concatenated in the mdat in this order


def init_segment(tracks: list[TrackSpec]) -> bytes:
    """ftyp and moov for a fragmented file holding ``tracks``."""
    ftyp = make_box("ftyp", b"isom" + struct.pack(">I", 0x200) + b"isomiso6mp41")
    mvhd = make_full_box(
        "mvhd",
        0,
        0,
        struct.pack(">IIII", 0, 0, _MOVIE_TIMESCALE, 0)
        + struct.pack(">IH", 0x10000, 0x100)
        + bytes(10)
        + _UNITY_MATRIX
        + bytes(24)
        + struct.pack(">I", max(t.track_id for t in tracks) + 1),
    )
    traks = b"".join(_trak(track) for track in tracks)
    trex = b"".join(
        make_full_box("trex", 0, 0, struct.pack(">IIIII", t.track_id, 1, 0, 0, 0))
        for t in tracks
    )
    return ftyp + make_box("moov", mvhd + traks + make_box("mvex", trex))


def _trak(track: TrackSpec) -> bytes:
    video = track.kind == "video"
    tkhd = make_full_box(
        "tkhd",
        0,
        3,  # enabled, in movie
        struct.pack(">IIIII", 0, 0, track.track_id, 0, 0)
        + bytes(8)
        + struct.pack(">hhhH", 0, 0, 0 if video else 0x100, 0)
        + _UNITY_MATRIX
        + struct.pack(">II", track.width << 16, track.height << 16),
    )
    mdhd = make_full_box(
        "mdhd", 0, 0, struct.pack(">IIIIHH", 0, 0, track.timescale, 0, _LANGUAGE_UND, 0)
    )
    handler, name = (
        (b"vide", b"VideoHandler\0") if video else (b"soun", b"SoundHandler\0")
    )
    hdlr = make_full_box("hdlr", 0, 0, bytes(4) + handler + bytes(12) + name)
    header = (
        make_full_box("vmhd", 0, 1, bytes(8))
        if video
        else make_full_box("smhd", 0, 0, bytes(4))
    )
    dref = make_full_box(
        "dref", 0, 0, struct.pack(">I", 1) + make_full_box("url ", 0, 1, b"")
    )
    stbl = make_box(
        "stbl",
        make_full_box("stsd", 0, 0, struct.pack(">I", 1) + _sample_entry(track))
        + make_full_box("stts", 0, 0, bytes(4))
        + make_full_box("stsc", 0, 0, bytes(4))
        + make_full_box("stsz", 0, 0, bytes(8))
        + make_full_box("stco", 0, 0, bytes(4)),
    )
    minf = make_box("minf", header + make_box("dinf", dref) + stbl)
    return make_box("trak", tkhd + make_box("mdia", mdhd + hdlr + minf))


def _sample_entry(track: TrackSpec) -> bytes:
    if track.kind == "video":
        config_box = "avcC" if track.codec == "avc1" else "hvcC"
        return make_box(
            track.codec,
            bytes(6)
            + struct.pack(">H", 1)  # data_reference_index
            + bytes(16)
            + struct.pack(">HH", track.width, track.height)
            + struct.pack(">III", 0x480000, 0x480000, 0)  # 72 dpi
            + struct.pack(">H", 1)  # frame_count
            + bytes(32)  # compressorname
            + struct.pack(">Hh", 0x18, -1)
            + make_box(config_box, track.config),
        )
    return make_box(
        "mp4a",
        bytes(6)
        + struct.pack(">H", 1)
        + bytes(8)
        + struct.pack(">HHHH", track.channels or 2, 16, 0, 0)
        + struct.pack(">I", min(track.sample_rate, 0xFFFF) << 16)
        + make_full_box("esds", 0, 0, track.config),
    )


def fragment(sequence: int, tracks: list[TrackFragment]) -> list[bytes]:
    """One moof+mdat as chunks to write in order (the sample bytes are not copied)."""
    moof_size = 8 + 16 + sum(_traf_size(track) for track in tracks)  # header, mfhd
    data_offset = moof_size + 8  # past the mdat header (fragments are far below 4 GiB)
    trafs = []
    for track in tracks:
        trafs.append(_traf(track, data_offset))
        data_offset += sum(track.sizes)
    mfhd = make_full_box("mfhd", 0, 0, struct.pack(">I", sequence))
    moof = make_box("moof", mfhd + b"".join(trafs))
    payload_size = sum(sum(track.sizes) for track in tracks)
    chunks = [moof, make_mdat_header(payload_size)]
    for track in tracks:
        chunks.extend(track.data)
    return chunks


def _traf_size(track: TrackFragment) -> int:
    per_sample = 16 if track.cts_offsets is not None else 12
    # traf header, tfhd (16), tfdt v1 (20), trun header with count and data offset (20)
    return 8 + 16 + 20 + 20 + per_sample * len(track.sizes)


def _traf(track: TrackFragment, data_offset: int) -> bytes:
    """One track's traf; ``data_offset`` is where its samples start, from the moof."""
    tfhd = make_full_box(
        "tfhd", 0, TFHD_DEFAULT_BASE_IS_MOOF, struct.pack(">I", track.track_id)
    )
    tfdt = make_full_box("tfdt", 1, 0, struct.pack(">Q", track.decode_time))
    flags = TRUN_DATA_OFFSET | TRUN_DURATION | TRUN_SIZE | TRUN_FLAGS
    version = 0
    if track.cts_offsets is not None:
        flags |= TRUN_CTS
        # version 1 makes the offsets signed; only needed when one is negative
        version = 1 if min(track.cts_offsets, default=0) < 0 else 0
        rows = map(
            _SAMPLE.pack, track.durations, track.sizes, track.flags, track.cts_offsets
        )
    else:
        rows = map(_AUDIO_SAMPLE.pack, track.durations, track.sizes, track.flags)
    head = struct.pack(">Ii", len(track.sizes), data_offset)
    trun = make_full_box("trun", version, flags, head + b"".join(rows))
    return make_box("traf", tfhd + tfdt + trun)
