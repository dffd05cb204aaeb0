"""Movie fragments (moof, ISO/IEC 14496-12 §8.8): sample tables, tfdt shifting, end trimming.

A moof describes the samples of its mdat: per track a traf with tfhd (§8.8.7),
tfdt (§8.8.12) and one or more trun (§8.8.8). Sample durations, sizes and flags come
from the trun, else from the tfhd defaults, else from the moov's trex (§8.8.3).
"""

import struct
from collections.abc import Mapping
from dataclasses import dataclass

from nvr.errors import MediaError
from nvr.mp4.boxes import (
    BoxHeader,
    full_box_version_flags,
    iter_children,
    make_box,
    make_full_box,
    make_mdat_header,
    u32,
    u64,
)
from nvr.mp4.moov import TrexDefaults

# tfhd flags (§8.8.7.1)
TFHD_BASE_DATA_OFFSET = 0x1
TFHD_SAMPLE_DESCRIPTION_INDEX = 0x2
TFHD_DEFAULT_DURATION = 0x8
TFHD_DEFAULT_SIZE = 0x10
TFHD_DEFAULT_FLAGS = 0x20
TFHD_DEFAULT_BASE_IS_MOOF = 0x20000

# trun flags (§8.8.8.1)
TRUN_DATA_OFFSET = 0x1
TRUN_FIRST_SAMPLE_FLAGS = 0x4
TRUN_DURATION = 0x100
TRUN_SIZE = 0x200
TRUN_FLAGS = 0x400
TRUN_CTS = 0x800

# sample_is_non_sync_sample in the sample flags word (§8.8.3.1)
SAMPLE_NON_SYNC = 0x10000

_MAX_U32 = 0xFFFFFFFF


@dataclass(slots=True)
class Run:
    """One trun with every per-sample value resolved; ``data_pos`` is absolute."""

    version: int
    flags: int
    data_pos: int
    durations: list[int]
    sizes: list[int]
    sample_flags: list[int]
    cts: list[int] | None

    @property
    def data_size(self) -> int:
        return sum(self.sizes)


@dataclass(slots=True)
class Traf:
    """One track's part of a fragment."""

    track_id: int
    decode_time: int  # tfdt baseMediaDecodeTime, in the track's timescale
    tfhd_flags: int
    tfhd_fields: dict[int, int]  # raw optional tfhd fields by flag
    runs: list[Run]
    other_boxes: list[bytes]  # children nvr does not interpret, kept verbatim

    @property
    def duration(self) -> int:
        return sum(sum(run.durations) for run in self.runs)

    @property
    def sample_count(self) -> int:
        return sum(len(run.durations) for run in self.runs)

    @property
    def starts_with_sync_sample(self) -> bool:
        for run in self.runs:
            if run.sample_flags:
                return not run.sample_flags[0] & SAMPLE_NON_SYNC
        return False

    def sample_decode_times(self) -> list[int]:
        """Decode time of every sample, in decode order."""
        times = []
        now = self.decode_time
        for run in self.runs:
            for duration in run.durations:
                times.append(now)
                now += duration
        return times


@dataclass(slots=True)
class Moof:
    """A parsed moof; ``offset`` and ``size`` locate the moof box itself."""

    offset: int
    size: int
    sequence: int
    trafs: list[Traf]

    def traf(self, track_id: int) -> Traf | None:
        for traf in self.trafs:
            if traf.track_id == track_id:
                return traf
        return None


def parse_moof(buf: bytes, offset: int, trex: Mapping[int, TrexDefaults]) -> Moof:
    """Parses a whole moof box held in ``buf``; ``offset`` is where it sits in its file."""
    root = BoxHeader("moof", 0, len(buf), 8)
    sequence = 0
    trafs: list[Traf] = []
    data_end = offset  # where the previous traf's data ended (base when no flag says otherwise)
    for child in iter_children(buf, root.payload_offset, root.end):
        if child.type == "mfhd":
            sequence = u32(buf, child.payload_offset + 4)
        elif child.type == "traf":
            traf = _parse_traf(buf, child, offset, data_end, first=not trafs, trex=trex)
            trafs.append(traf)
            if traf.runs:
                data_end = traf.runs[-1].data_pos + traf.runs[-1].data_size
    return Moof(offset=offset, size=len(buf), sequence=sequence, trafs=trafs)


def _parse_traf(
    buf: bytes,
    traf_box: BoxHeader,
    moof_offset: int,
    previous_data_end: int,
    first: bool,
    trex: Mapping[int, TrexDefaults],
) -> Traf:
    children = list(iter_children(buf, traf_box.payload_offset, traf_box.end))
    tfhd = next((c for c in children if c.type == "tfhd"), None)
    tfdt = next((c for c in children if c.type == "tfdt"), None)
    if tfhd is None or tfdt is None:
        raise MediaError(f"traf at moof byte {traf_box.offset} lacks tfhd or tfdt")

    track_id, tfhd_flags, fields = _parse_tfhd(buf, tfhd)
    defaults = trex.get(track_id, TrexDefaults(1, 0, 0, 0))
    default_duration = fields.get(TFHD_DEFAULT_DURATION, defaults.sample_duration)
    default_size = fields.get(TFHD_DEFAULT_SIZE, defaults.sample_size)
    default_flags = fields.get(TFHD_DEFAULT_FLAGS, defaults.sample_flags)

    # the base of trun data offsets (§8.8.7.1)
    if tfhd_flags & TFHD_BASE_DATA_OFFSET:
        base = fields[TFHD_BASE_DATA_OFFSET]
    elif tfhd_flags & TFHD_DEFAULT_BASE_IS_MOOF or first:
        base = moof_offset
    else:
        base = previous_data_end

    tfdt_version, _ = full_box_version_flags(buf, tfdt)
    decode_time = (u64 if tfdt_version == 1 else u32)(buf, tfdt.payload_offset + 4)

    runs: list[Run] = []
    other: list[bytes] = []
    for child in children:
        if child.type == "trun":
            next_pos = runs[-1].data_pos + runs[-1].data_size if runs else base
            run = _parse_trun(
                buf, child, base, next_pos, default_duration, default_size
            )
            if not run.flags & TRUN_FLAGS:
                _fill_flags(run, default_flags)
            runs.append(run)
        elif child.type not in ("tfhd", "tfdt"):
            other.append(buf[child.offset : child.end])
    return Traf(track_id, decode_time, tfhd_flags, fields, runs, other)


def _parse_tfhd(buf: bytes, tfhd: BoxHeader) -> tuple[int, int, dict[int, int]]:
    _, flags = full_box_version_flags(buf, tfhd)
    pos = tfhd.payload_offset + 4
    track_id = u32(buf, pos)
    pos += 4
    fields: dict[int, int] = {}
    if flags & TFHD_BASE_DATA_OFFSET:
        fields[TFHD_BASE_DATA_OFFSET] = u64(buf, pos)
        pos += 8
    for flag in (
        TFHD_SAMPLE_DESCRIPTION_INDEX,
        TFHD_DEFAULT_DURATION,
        TFHD_DEFAULT_SIZE,
        TFHD_DEFAULT_FLAGS,
    ):
        if flags & flag:
            fields[flag] = u32(buf, pos)
            pos += 4
    return track_id, flags, fields


def _parse_trun(
    buf: bytes,
    trun: BoxHeader,
    base: int,
    next_pos: int,
    default_duration: int,
    default_size: int,
) -> Run:
    version, flags = full_box_version_flags(buf, trun)
    pos = trun.payload_offset + 4
    count = u32(buf, pos)
    pos += 4
    data_pos = next_pos
    if flags & TRUN_DATA_OFFSET:
        (data_offset,) = struct.unpack_from(">i", buf, pos)
        data_pos = base + data_offset
        pos += 4
    first_flags = None
    if flags & TRUN_FIRST_SAMPLE_FLAGS:
        first_flags = u32(buf, pos)
        pos += 4

    per_sample = [
        f for f in (TRUN_DURATION, TRUN_SIZE, TRUN_FLAGS, TRUN_CTS) if flags & f
    ]
    width = len(per_sample)
    if pos + 4 * width * count > trun.end:
        raise MediaError(
            f"trun at moof byte {trun.offset} is shorter than its sample count"
        )
    columns: dict[int, list[int]] = {}
    if width:
        values = struct.unpack_from(f">{width * count}I", buf, pos)
        for index, flag in enumerate(per_sample):
            columns[flag] = list(values[index::width])
    cts = columns.get(TRUN_CTS)
    if cts is not None and version == 1:
        cts = [value - (1 << 32) if value & 0x80000000 else value for value in cts]

    sample_flags = columns.get(TRUN_FLAGS, [])
    if first_flags is not None and count:
        sample_flags = [first_flags]
    return Run(
        version=version,
        flags=flags,
        data_pos=data_pos,
        durations=columns.get(TRUN_DURATION, [default_duration] * count),
        sizes=columns.get(TRUN_SIZE, [default_size] * count),
        sample_flags=sample_flags,
        cts=cts,
    )


def _fill_flags(run: Run, default_flags: int) -> None:
    """Completes the flags of a run without per-sample flags (first one may be explicit)."""
    count = len(run.durations)
    first = run.sample_flags[:1]
    run.sample_flags = first + [default_flags] * (count - len(first))


def read_decode_times(buf: bytes) -> dict[int, int]:
    """Each traf's tfdt by track id, without parsing sample tables (cheap)."""
    times = {}
    root = BoxHeader("moof", 0, len(buf), 8)
    for traf in iter_children(buf, root.payload_offset, root.end):
        if traf.type != "traf":
            continue
        track_id = None
        for child in iter_children(buf, traf.payload_offset, traf.end):
            if child.type == "tfhd":
                track_id = u32(buf, child.payload_offset + 4)
            elif child.type == "tfdt" and track_id is not None:
                version, _ = full_box_version_flags(buf, child)
                read = u64 if version == 1 else u32
                times[track_id] = read(buf, child.payload_offset + 4)
                break
    return times


def patch_moof(buf: bytes, sequence: int, shifts: Mapping[int, int]) -> bytes:
    """The moof with a new mfhd sequence number and each tfdt moved by ``shifts[track_id]``.

    Sizes are unchanged, so trun data offsets stay valid. Raises MediaError when a
    version 0 tfdt cannot hold the shifted time.
    """
    out = bytearray(buf)
    root = BoxHeader("moof", 0, len(buf), 8)
    for child in iter_children(buf, root.payload_offset, root.end):
        if child.type == "mfhd":
            struct.pack_into(">I", out, child.payload_offset + 4, sequence)
        elif child.type == "traf":
            _patch_traf(buf, out, child, shifts)
    return bytes(out)


def _patch_traf(
    buf: bytes, out: bytearray, traf: BoxHeader, shifts: Mapping[int, int]
) -> None:
    track_id = None
    for child in iter_children(buf, traf.payload_offset, traf.end):
        if child.type == "tfhd":
            track_id = u32(buf, child.payload_offset + 4)
        elif child.type == "tfdt" and track_id is not None:
            version, _ = full_box_version_flags(buf, child)
            pos = child.payload_offset + 4
            shift = shifts.get(track_id, 0)
            if version == 1:
                struct.pack_into(">Q", out, pos, u64(buf, pos) + shift)
                continue
            value = u32(buf, pos) + shift
            if not 0 <= value <= _MAX_U32:
                # Limitation: a version 0 tfdt overflows after ~13 h at 90 kHz; the fix is
                # to widen it to version 1 and move every trun data offset by 4 bytes.
                raise MediaError(
                    f"track {track_id}: shifted tfdt {value} needs version 1"
                )
            struct.pack_into(">I", out, pos, value)


def build_trimmed_fragment(
    moof: Moof, sequence: int, keep: Mapping[int, int], decode_times: Mapping[int, int]
) -> tuple[bytes, list[tuple[int, int]]]:
    """A new moof + mdat header holding the first ``keep[track_id]`` samples of each traf.

    ``decode_times`` gives each kept traf's new tfdt. Returns the bytes of moof and mdat
    header, and the (file offset, length) ranges whose concatenation is the mdat payload.
    Trafs keeping no sample are dropped.
    """
    kept: list[tuple[Traf, list[Run]]] = []
    for traf in moof.trafs:
        runs = _prefix_runs(traf.runs, keep.get(traf.track_id, traf.sample_count))
        if runs:
            kept.append((traf, runs))

    def serialize(data_start: int) -> bytes:
        trafs = []
        position = data_start
        for traf, runs in kept:
            parts = [
                _make_tfhd(traf),
                make_full_box(
                    "tfdt", 1, 0, struct.pack(">Q", decode_times[traf.track_id])
                ),
            ]
            for run in runs:
                parts.append(_make_trun(run, position))
                position += run.data_size
            parts.extend(traf.other_boxes)
            trafs.append(make_box("traf", b"".join(parts)))
        mfhd = make_full_box("mfhd", 0, 0, struct.pack(">I", sequence))
        return make_box("moof", mfhd + b"".join(trafs))

    payload_size = sum(run.data_size for _, runs in kept for run in runs)
    mdat_header = make_mdat_header(payload_size)
    moof_size = len(serialize(0))
    moof_bytes = serialize(moof_size + len(mdat_header))
    ranges = [(run.data_pos, run.data_size) for _, runs in kept for run in runs]
    return moof_bytes + mdat_header, ranges


def _prefix_runs(runs: list[Run], count: int) -> list[Run]:
    """The runs cut down to their first ``count`` samples in decode order."""
    out = []
    for run in runs:
        if count <= 0:
            break
        take = min(count, len(run.durations))
        out.append(
            Run(
                version=run.version,
                flags=run.flags,
                data_pos=run.data_pos,
                durations=run.durations[:take],
                sizes=run.sizes[:take],
                sample_flags=run.sample_flags[:take],
                cts=run.cts[:take] if run.cts is not None else None,
            )
        )
        count -= take
    return out


def _make_tfhd(traf: Traf) -> bytes:
    # Note: the trimmed moof's data offsets count from the moof, whatever the source said.
    flags = (traf.tfhd_flags & ~TFHD_BASE_DATA_OFFSET) | TFHD_DEFAULT_BASE_IS_MOOF
    payload = [struct.pack(">I", traf.track_id)]
    for flag in (
        TFHD_SAMPLE_DESCRIPTION_INDEX,
        TFHD_DEFAULT_DURATION,
        TFHD_DEFAULT_SIZE,
        TFHD_DEFAULT_FLAGS,
    ):
        if flags & flag:
            payload.append(struct.pack(">I", traf.tfhd_fields[flag]))
    return make_full_box("tfhd", 0, flags, b"".join(payload))


def _make_trun(run: Run, data_offset: int) -> bytes:
    flags = run.flags | TRUN_DATA_OFFSET
    count = len(run.durations)
    head = [struct.pack(">Ii", count, data_offset)]
    if flags & TRUN_FIRST_SAMPLE_FLAGS:
        head.append(struct.pack(">I", run.sample_flags[0]))
    columns = []
    if flags & TRUN_DURATION:
        columns.append(run.durations)
    if flags & TRUN_SIZE:
        columns.append(run.sizes)
    if flags & TRUN_FLAGS:
        columns.append(run.sample_flags)
    if flags & TRUN_CTS and run.cts is not None:
        columns.append([value & _MAX_U32 for value in run.cts])
    values = [value for row in zip(*columns, strict=True) for value in row]
    body = struct.pack(f">{len(values)}I", *values)
    return make_full_box("trun", run.version, flags, b"".join(head) + body)
