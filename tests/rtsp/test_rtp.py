"""RTP depacketizers: H.264 (RFC 6184), H.265 (RFC 7798) and AAC (RFC 3640), fed
packets built by hand from those RFCs."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nvr.rtsp.rtp import (
    AacDepacketizer,
    AccessUnit,
    Depacketizer,
    H264Depacketizer,
    H265Depacketizer,
)
from tests.rtsp.support import (
    aac_payload,
    h264_fu_a,
    h264_nal,
    h264_stap_a,
    h265_ap,
    h265_fu,
    h265_nal,
    length_prefixed,
    noise,
    rtp_packet,
)

FRAME_TICKS = 3600  # 90 kHz ticks of one frame at 25 fps
TS0 = 1_000_000

SPS = h264_nal(7, bytes.fromhex("640028ac2b40f00449"))
PPS = h264_nal(8, bytes.fromhex("ee3cb0"))
IDR = h264_nal(5, noise(3000))
SLICE = h264_nal(1, noise(900), nri=2)

VPS = h265_nal(32, bytes.fromhex("0c01ffff016000000300"))
H265_SPS = h265_nal(33, bytes.fromhex("0101600000030090000003"))
H265_PPS = h265_nal(34, bytes.fromhex("c172b462"))
H265_IDR = h265_nal(19, noise(2500))  # IDR_W_RADL
H265_TRAIL = h265_nal(1, noise(700))  # TRAIL_R


class Collector:
    """A depacketizer fed numbered packets; what it emits is kept in ``units``."""

    def __init__(self, kind: type[Depacketizer], **kwargs: int) -> None:
        self.units: list[AccessUnit] = []
        self.depacketizer = kind(self.units.append, **kwargs)
        self.seq = 40_000

    def send(self, ts: int, payload: bytes, marker: bool = False) -> None:
        packet = rtp_packet(self.seq, ts, payload, marker=marker)
        self.depacketizer.packet(packet, 0, len(packet))
        self.seq += 1

    def skip(self, count: int = 1) -> None:
        """Packets the network lost: their sequence numbers never arrive."""
        self.seq += count

    def samples(self) -> list[bytes]:
        return [b"".join(unit.data) for unit in self.units]


def send_frame(
    feed: Collector, ts: int, payloads: list[bytes], marker: bool = True
) -> None:
    for index, payload in enumerate(payloads):
        feed.send(ts, payload, marker and index == len(payloads) - 1)


# the RTP layer


def test_depacketizer_packet_inside_larger_buffer_reads_only_its_range() -> None:
    feed = Collector(H264Depacketizer)
    packet = rtp_packet(1, TS0, SLICE, marker=True)
    buf = bytearray(b"\xff" * 7 + packet + b"\xee" * 5)

    feed.depacketizer.packet(buf, 7, 7 + len(packet))

    assert feed.samples() == [length_prefixed([SLICE])]
    assert feed.depacketizer.stats.bytes == len(packet)


def test_depacketizer_emitted_data_survives_buffer_reuse() -> None:
    # the connection parses in place and then reuses its buffer: units must own copies
    feed = Collector(H264Depacketizer)
    buf = bytearray(rtp_packet(1, TS0, SLICE, marker=True))

    feed.depacketizer.packet(buf, 0, len(buf))
    buf[:] = b"\x00" * len(buf)

    assert feed.samples() == [length_prefixed([SLICE])]


def test_depacketizer_csrcs_extension_and_padding_skipped() -> None:
    feed = Collector(H264Depacketizer)
    packet = rtp_packet(
        1,
        TS0,
        SLICE,
        marker=True,
        csrcs=(11, 22),
        extension=b"\x10\xaa\x00\x00" * 2,
        padding=5,
    )

    feed.depacketizer.packet(packet, 0, len(packet))

    assert feed.samples() == [length_prefixed([SLICE])]
    assert feed.depacketizer.stats.malformed == 0


@pytest.mark.parametrize(
    "packet",
    [
        pytest.param(b"", id="empty"),
        pytest.param(rtp_packet(1, TS0, b"")[:11], id="shorter-than-header"),
        pytest.param(rtp_packet(1, TS0, b""), id="no-payload"),
        pytest.param(bytes((0x40,)) + rtp_packet(1, TS0, SLICE)[1:], id="version-1"),
        pytest.param(
            bytes((0x90,)) + rtp_packet(1, TS0, b"\x00\x01")[1:], id="extension-cut"
        ),
        pytest.param(
            bytes((0x90,)) + rtp_packet(1, TS0, b"\xbe\xde\x00\x09" + b"\x65" * 8)[1:],
            id="extension-overruns",
        ),
        pytest.param(bytes((0x8F,)) + rtp_packet(1, TS0, SLICE[:20])[1:], id="csrcs"),
        pytest.param(
            bytes((0xA0,)) + rtp_packet(1, TS0, SLICE[:20] + b"\xff")[1:],
            id="padding-overruns",
        ),
        pytest.param(rtp_packet(1, TS0, b"", padding=2), id="only-padding"),
    ],
)
def test_depacketizer_malformed_header_counted_not_raised(packet: bytes) -> None:
    feed = Collector(H264Depacketizer)

    feed.depacketizer.packet(packet, 0, len(packet))

    stats = feed.depacketizer.stats
    assert (stats.malformed, stats.packets, stats.bytes) == (1, 0, 0)
    assert feed.units == []


def test_depacketizer_counts_packets_and_bytes() -> None:
    feed = Collector(H264Depacketizer)
    packets = [rtp_packet(seq, TS0, SLICE) for seq in range(3)]
    for packet in packets:
        feed.depacketizer.packet(packet, 0, len(packet))

    stats = feed.depacketizer.stats
    assert (stats.packets, stats.bytes) == (3, sum(len(p) for p in packets))
    assert (stats.lost, stats.malformed) == (0, 0)


def test_depacketizer_sequence_wraps_past_65535_without_loss() -> None:
    feed = Collector(H264Depacketizer)
    feed.seq = 65534
    for frame in range(4):
        feed.send(TS0 + frame * FRAME_TICKS, SLICE, marker=True)

    assert feed.depacketizer.stats.lost == 0
    assert len(feed.units) == 4


def test_depacketizer_sequence_gap_across_wrap_counts_each_lost_packet() -> None:
    feed = Collector(H264Depacketizer)
    feed.seq = 65533
    feed.send(TS0, SLICE, marker=True)  # 65533
    feed.skip(5)  # 65534, 65535, 0, 1, 2
    feed.send(TS0 + FRAME_TICKS, SLICE, marker=True)  # 3

    assert feed.depacketizer.stats.lost == 5


def test_depacketizer_timestamp_wraps_past_2_32_keeps_counting() -> None:
    feed = Collector(H264Depacketizer)
    first = 2**32 - FRAME_TICKS
    for frame in range(3):
        feed.send((first + frame * FRAME_TICKS) % 2**32, SLICE, marker=True)

    times = [unit.rtp_time for unit in feed.units]
    assert times == [first, first + FRAME_TICKS, first + 2 * FRAME_TICKS]


def test_depacketizer_timestamp_stepping_back_goes_back() -> None:
    # presentation order differs from decode order with B-frames: the RTP timestamp of
    # a later packet may be earlier, also across the 2**32 wrap
    feed = Collector(H264Depacketizer)
    feed.send(FRAME_TICKS, SLICE, marker=True)
    feed.send(3 * FRAME_TICKS, SLICE, marker=True)
    feed.send(2 * FRAME_TICKS, SLICE, marker=True)
    feed.send(2**32 - FRAME_TICKS, SLICE, marker=True)

    times = [unit.rtp_time for unit in feed.units]
    assert times == [FRAME_TICKS, 3 * FRAME_TICKS, 2 * FRAME_TICKS, -FRAME_TICKS]


# H.264


def test_h264_single_nal_units_marker_ends_keyframe() -> None:
    feed = Collector(H264Depacketizer)

    send_frame(feed, TS0, [SPS, PPS, IDR])

    (unit,) = feed.units
    assert b"".join(unit.data) == length_prefixed([SPS, PPS, IDR])
    assert unit.size == len(length_prefixed([SPS, PPS, IDR]))
    assert (unit.rtp_time, unit.keyframe) == (TS0, True)


def test_h264_non_idr_slice_is_not_keyframe() -> None:
    feed = Collector(H264Depacketizer)

    send_frame(feed, TS0, [SLICE])

    assert [unit.keyframe for unit in feed.units] == [False]


def test_h264_without_marker_unit_waits() -> None:
    feed = Collector(H264Depacketizer)

    send_frame(feed, TS0, [SPS, PPS, IDR], marker=False)

    assert feed.units == []


def test_h264_marker_lost_timestamp_change_ends_unit() -> None:
    feed = Collector(H264Depacketizer)

    send_frame(feed, TS0, [IDR], marker=False)
    send_frame(feed, TS0 + FRAME_TICKS, [SLICE], marker=False)
    send_frame(feed, TS0 + 2 * FRAME_TICKS, [SLICE], marker=True)

    assert [unit.rtp_time for unit in feed.units] == [
        TS0,
        TS0 + FRAME_TICKS,
        TS0 + 2 * FRAME_TICKS,
    ]
    assert feed.samples()[0] == length_prefixed([IDR])
    assert feed.depacketizer.stats.dropped_units == 0


def test_h264_stap_a_splits_into_nal_units() -> None:
    feed = Collector(H264Depacketizer)

    send_frame(feed, TS0, [h264_stap_a([SPS, PPS]), IDR])

    assert feed.samples() == [length_prefixed([SPS, PPS, IDR])]
    assert feed.units[0].keyframe


def test_h264_stap_a_with_idr_marks_keyframe() -> None:
    feed = Collector(H264Depacketizer)
    small_idr = h264_nal(5, b"\x88\x84\x21\xa0")

    send_frame(feed, TS0, [h264_stap_a([SPS, PPS, small_idr])])

    assert feed.samples() == [length_prefixed([SPS, PPS, small_idr])]
    assert feed.units[0].keyframe


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(h264_stap_a([SPS, PPS])[:-2], id="size-overruns"),
        pytest.param(bytes((0x78,)) + b"\x00\x00" + SPS, id="zero-size"),
    ],
)
def test_h264_stap_a_malformed_counted_and_unit_dropped(payload: bytes) -> None:
    feed = Collector(H264Depacketizer)

    send_frame(feed, TS0, [payload, IDR])
    send_frame(feed, TS0 + FRAME_TICKS, [SLICE])

    stats = feed.depacketizer.stats
    assert (stats.malformed, stats.dropped_units) == (1, 1)
    assert feed.samples() == [length_prefixed([SLICE])]


@pytest.mark.parametrize("pieces", [2, 3, 7])
def test_h264_fu_a_fragments_reassemble_nal_unit(pieces: int) -> None:
    feed = Collector(H264Depacketizer)

    send_frame(feed, TS0, [SPS, PPS, *h264_fu_a(IDR, pieces)])

    assert feed.samples() == [length_prefixed([SPS, PPS, IDR])]
    assert feed.units[0].keyframe


def test_h264_fu_a_rebuilds_nal_header_from_indicator_and_fu_header() -> None:
    feed = Collector(H264Depacketizer)
    nal = h264_nal(1, noise(500), nri=1)  # NRI 1: the header byte is 0x21

    send_frame(feed, TS0, h264_fu_a(nal, 2))

    sample = feed.samples()[0]
    assert sample[4] == 0x21
    assert sample == length_prefixed([nal])


def test_h264_fu_a_two_slices_in_one_unit_both_kept() -> None:
    feed = Collector(H264Depacketizer)
    second = h264_nal(5, noise(1800))

    send_frame(feed, TS0, [*h264_fu_a(IDR, 3), *h264_fu_a(second, 2)])

    assert feed.samples() == [length_prefixed([IDR, second])]


def test_h264_fu_a_lost_middle_fragment_drops_unit_only() -> None:
    feed = Collector(H264Depacketizer)
    start, _, end = h264_fu_a(IDR, 3)
    send_frame(feed, TS0, [SLICE])

    feed.send(TS0 + FRAME_TICKS, start)
    feed.skip()  # the middle fragment
    feed.send(TS0 + FRAME_TICKS, end, marker=True)
    send_frame(feed, TS0 + 2 * FRAME_TICKS, [SLICE])

    stats = feed.depacketizer.stats
    assert [unit.rtp_time for unit in feed.units] == [TS0, TS0 + 2 * FRAME_TICKS]
    assert (stats.lost, stats.dropped_units) == (1, 1)


def test_h264_fu_a_lost_end_fragment_drops_unit_at_next_timestamp() -> None:
    feed = Collector(H264Depacketizer)
    start, middle, _ = h264_fu_a(IDR, 3)

    feed.send(TS0, start)
    feed.send(TS0, middle)
    feed.skip()  # the end fragment, which carried the marker
    send_frame(feed, TS0 + FRAME_TICKS, [SLICE])

    stats = feed.depacketizer.stats
    assert feed.samples() == [length_prefixed([SLICE])]
    assert (stats.lost, stats.dropped_units) == (1, 1)


def test_h264_fu_a_start_never_ended_drops_unit() -> None:
    # no sequence gap: the camera itself sent a start fragment without its end
    feed = Collector(H264Depacketizer)
    start, _, _ = h264_fu_a(IDR, 3)

    send_frame(feed, TS0, [start])
    send_frame(feed, TS0 + FRAME_TICKS, [SLICE])

    assert feed.samples() == [length_prefixed([SLICE])]
    assert feed.depacketizer.stats.dropped_units == 1


def test_h264_fu_a_continuation_without_start_drops_unit() -> None:
    # the stream begins inside a fragmented NAL unit, so no sequence gap shows that
    # its start is missing: the rest of that frame must not be stored as complete
    feed = Collector(H264Depacketizer)
    _, middle, end = h264_fu_a(IDR, 3)
    tail = h264_nal(5, noise(200))

    send_frame(feed, TS0, [middle, end, tail])
    send_frame(feed, TS0 + FRAME_TICKS, [SLICE])

    assert feed.samples() == [length_prefixed([SLICE])]
    assert feed.depacketizer.stats.dropped_units == 1


def test_h264_fu_a_too_short_counted_malformed() -> None:
    feed = Collector(H264Depacketizer)

    send_frame(feed, TS0, [bytes((0x7C, 0x85))])
    send_frame(feed, TS0 + FRAME_TICKS, [SLICE])

    stats = feed.depacketizer.stats
    assert (stats.malformed, stats.dropped_units) == (1, 1)
    assert feed.samples() == [length_prefixed([SLICE])]


def test_h264_lost_packet_inside_unit_drops_that_unit_only() -> None:
    feed = Collector(H264Depacketizer)

    feed.send(TS0, SPS)
    feed.skip()  # the PPS
    feed.send(TS0, IDR, marker=True)
    send_frame(feed, TS0 + FRAME_TICKS, [SLICE])

    stats = feed.depacketizer.stats
    assert [unit.rtp_time for unit in feed.units] == [TS0 + FRAME_TICKS]
    assert (stats.lost, stats.dropped_units) == (1, 1)


def test_h264_whole_units_lost_between_markers_next_unit_kept() -> None:
    feed = Collector(H264Depacketizer)

    send_frame(feed, TS0, [SLICE])
    feed.skip(2)  # two frames of one packet each
    send_frame(feed, TS0 + 3 * FRAME_TICKS, [SLICE])

    stats = feed.depacketizer.stats
    assert [unit.rtp_time for unit in feed.units] == [TS0, TS0 + 3 * FRAME_TICKS]
    assert (stats.lost, stats.dropped_units) == (2, 0)


@pytest.mark.parametrize(
    ("kind", "name"),
    [(0, "undefined"), (25, "STAP-B"), (26, "MTAP16"), (27, "MTAP24"), (29, "FU-B")],
)
def test_h264_unsupported_packet_type_counted_malformed(kind: int, name: str) -> None:
    feed = Collector(H264Depacketizer)

    send_frame(feed, TS0, [SLICE, bytes((0x60 | kind,)) + b"\x00\x10\x00\x00"])
    send_frame(feed, TS0 + FRAME_TICKS, [SLICE])

    stats = feed.depacketizer.stats
    assert (stats.malformed, stats.dropped_units) == (1, 1), name
    assert [unit.rtp_time for unit in feed.units] == [TS0 + FRAME_TICKS]


# H.265


def test_h265_single_nal_units_marker_ends_keyframe() -> None:
    feed = Collector(H265Depacketizer)

    send_frame(feed, TS0, [VPS, H265_SPS, H265_PPS, H265_IDR])

    assert feed.samples() == [length_prefixed([VPS, H265_SPS, H265_PPS, H265_IDR])]
    assert feed.units[0].keyframe
    assert feed.units[0].rtp_time == TS0


@pytest.mark.parametrize(
    ("kind", "keyframe"),
    [(1, False), (9, False), (16, True), (19, True), (20, True), (21, True)],
)
def test_h265_keyframe_is_irap_picture(kind: int, keyframe: bool) -> None:
    # H.265 table 7-1: 16..21 are BLA, IDR and CRA pictures (IRAP)
    feed = Collector(H265Depacketizer)

    send_frame(feed, TS0, [h265_nal(kind, noise(40))])

    assert [unit.keyframe for unit in feed.units] == [keyframe]


def test_h265_aggregation_packet_splits_into_nal_units() -> None:
    feed = Collector(H265Depacketizer)

    send_frame(feed, TS0, [h265_ap([VPS, H265_SPS, H265_PPS]), H265_IDR])

    assert feed.samples() == [length_prefixed([VPS, H265_SPS, H265_PPS, H265_IDR])]
    assert feed.units[0].keyframe


@pytest.mark.parametrize("pieces", [2, 5])
def test_h265_fragmentation_units_reassemble_nal_unit(pieces: int) -> None:
    feed = Collector(H265Depacketizer)

    send_frame(
        feed, TS0, [h265_ap([VPS, H265_SPS, H265_PPS]), *h265_fu(H265_IDR, pieces)]
    )

    assert feed.samples() == [length_prefixed([VPS, H265_SPS, H265_PPS, H265_IDR])]
    assert feed.units[0].keyframe


def test_h265_fu_keeps_layer_id_and_temporal_id() -> None:
    feed = Collector(H265Depacketizer)
    nal = h265_nal(1, noise(600), layer_id=33, tid=3)  # layer id spans both bytes

    send_frame(feed, TS0, h265_fu(nal, 3))

    assert feed.samples() == [length_prefixed([nal])]


def test_h265_fu_lost_fragment_drops_unit_only() -> None:
    feed = Collector(H265Depacketizer)
    start, _, end = h265_fu(H265_IDR, 3)

    feed.send(TS0, start)
    feed.skip()
    feed.send(TS0, end, marker=True)
    send_frame(feed, TS0 + FRAME_TICKS, [H265_TRAIL])

    stats = feed.depacketizer.stats
    assert feed.samples() == [length_prefixed([H265_TRAIL])]
    assert (stats.lost, stats.dropped_units) == (1, 1)


def test_h265_fu_continuation_without_start_drops_unit() -> None:
    feed = Collector(H265Depacketizer)
    _, middle, end = h265_fu(H265_IDR, 3)

    send_frame(feed, TS0, [middle, end])
    send_frame(feed, TS0 + FRAME_TICKS, [H265_TRAIL])

    assert feed.samples() == [length_prefixed([H265_TRAIL])]
    assert feed.depacketizer.stats.dropped_units == 1


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(h265_ap([VPS, H265_SPS])[:-3], id="ap-size-overruns"),
        pytest.param(h265_nal(48, b"\x00\x01\x40"), id="ap-unit-below-header"),
        pytest.param(h265_nal(50, b"\x00\x00\x00"), id="paci"),
        pytest.param(h265_nal(55, b"\x00\x00\x00"), id="reserved"),
        pytest.param(b"\x26\x01", id="shorter-than-3"),
    ],
)
def test_h265_malformed_payload_counted_and_unit_dropped(payload: bytes) -> None:
    feed = Collector(H265Depacketizer)

    send_frame(feed, TS0, [H265_TRAIL, payload])
    send_frame(feed, TS0 + FRAME_TICKS, [H265_TRAIL])
    send_frame(feed, TS0 + 2 * FRAME_TICKS, [H265_TRAIL])

    stats = feed.depacketizer.stats
    assert (stats.malformed, stats.dropped_units) == (1, 1)
    assert [unit.rtp_time for unit in feed.units] == [
        TS0 + FRAME_TICKS,
        TS0 + 2 * FRAME_TICKS,
    ]


# AAC


def test_aac_one_frame_per_packet_emitted_as_is() -> None:
    feed = Collector(AacDepacketizer)
    frame = noise(371)

    feed.send(TS0, aac_payload([frame]), marker=True)

    (unit,) = feed.units
    assert (unit.data, unit.size, unit.rtp_time, unit.keyframe) == (
        [frame],
        371,
        TS0,
        True,
    )


def test_aac_several_frames_in_one_packet_spaced_1024_ticks() -> None:
    feed = Collector(AacDepacketizer)
    frames = [noise(size) for size in (200, 1, 8191)]  # 8191: 13 bits' largest

    feed.send(TS0, aac_payload(frames), marker=True)

    assert [unit.data for unit in feed.units] == [[frame] for frame in frames]
    assert [unit.rtp_time for unit in feed.units] == [TS0, TS0 + 1024, TS0 + 2048]


def test_aac_frame_ticks_set_spacing() -> None:
    feed = Collector(AacDepacketizer, frame_ticks=2048)  # HE-AAC: 2048 samples

    feed.send(TS0, aac_payload([b"a", b"b"]), marker=True)

    assert [unit.rtp_time for unit in feed.units] == [TS0, TS0 + 2048]


def test_aac_low_bit_rate_headers_read_with_their_widths() -> None:
    # RFC 3640 §3.3.5 AAC-lbr: sizeLength=6, indexLength=2, one byte per AU header
    feed = Collector(AacDepacketizer, size_bits=6, index_bits=2)
    frames = [noise(size) for size in (63, 10, 1)]

    feed.send(TS0, aac_payload(frames, size_bits=6, index_bits=2), marker=True)

    assert [unit.data for unit in feed.units] == [[frame] for frame in frames]


def test_aac_headers_not_byte_aligned_padding_ignored() -> None:
    # 10 + 2 bits per header: one header is 12 bits, padded to 2 bytes (§3.2.1)
    feed = Collector(AacDepacketizer, size_bits=10, index_bits=2)
    frame = noise(700)

    feed.send(TS0, aac_payload([frame], size_bits=10, index_bits=2), marker=True)

    assert [unit.data for unit in feed.units] == [[frame]]


def test_aac_frame_fragmented_over_packets_joined() -> None:
    feed = Collector(AacDepacketizer)
    frame = noise(3000)

    feed.send(TS0, aac_payload([frame[:1400]], sizes=[3000]))
    feed.send(TS0, aac_payload([frame[1400:2800]], sizes=[3000]))
    feed.send(TS0, aac_payload([frame[2800:]], sizes=[3000]), marker=True)

    assert [(unit.data, unit.rtp_time) for unit in feed.units] == [([frame], TS0)]


def test_aac_lost_fragment_drops_frame_and_next_one_kept() -> None:
    feed = Collector(AacDepacketizer)
    frame = noise(3000)
    following = noise(300)

    feed.send(TS0, aac_payload([frame[:1400]], sizes=[3000]))
    feed.skip()
    feed.send(TS0 + 1024, aac_payload([following]), marker=True)

    stats = feed.depacketizer.stats
    assert [unit.data for unit in feed.units] == [[following]]
    assert (stats.lost, stats.dropped_units) == (1, 1)


def test_aac_fragments_shorter_than_announced_dropped() -> None:
    feed = Collector(AacDepacketizer)
    frame = noise(3000)

    feed.send(TS0, aac_payload([frame[:1400]], sizes=[3000]))
    feed.send(TS0, aac_payload([frame[1400:2000]], sizes=[3000]), marker=True)

    assert feed.units == []
    assert feed.depacketizer.stats.dropped_units == 1


def test_aac_several_frames_overrunning_packet_counted_malformed() -> None:
    feed = Collector(AacDepacketizer)
    frames = [noise(100), noise(100)]

    feed.send(TS0, aac_payload(frames, sizes=[100, 150]), marker=True)

    assert [unit.data for unit in feed.units] == [[frames[0]]]
    assert feed.depacketizer.stats.malformed == 1


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b"\x00", id="shorter-than-length"),
        pytest.param(b"\x00\x20\x01\x40", id="headers-overrun"),
    ],
)
def test_aac_malformed_payload_counted_not_raised(payload: bytes) -> None:
    feed = Collector(AacDepacketizer)

    feed.send(TS0, payload, marker=True)

    assert feed.units == []
    assert feed.depacketizer.stats.malformed == 1


# any input


def check_units(units: list[AccessUnit], video: bool) -> None:
    """What every emitted unit must be, whatever the input: sizes that add up, and for
    video, NAL units whose 4-byte lengths are right."""
    for unit in units:
        assert unit.size == sum(len(chunk) for chunk in unit.data)
        if video:
            assert len(unit.data) % 2 == 0
            for prefix, nal in zip(unit.data[::2], unit.data[1::2], strict=True):
                assert int.from_bytes(prefix, "big") == len(nal) > 0


DEPACKETIZERS = [H264Depacketizer, H265Depacketizer, AacDepacketizer]

# an RTP header that parses, and a payload of anything: exercises the payload formats
rtp_packets = st.builds(
    lambda seq, ts, marker, payload: rtp_packet(seq, ts, payload, marker=marker),
    st.integers(0, 0xFFFF),
    st.integers(0, 2**32 - 1),
    st.booleans(),
    st.binary(min_size=1, max_size=64),
)

# payload heads that look like fragments and aggregates: FU start, middle and end,
# then STAP-A / AP, then a single NAL unit
FRAGMENT_HEADS = {
    H264Depacketizer: [b"\x7c\x85", b"\x7c\x05", b"\x7c\x45", b"\x78\x00\x03", b"\x65"],
    H265Depacketizer: [
        b"\x62\x01\x93",
        b"\x62\x01\x13",
        b"\x62\x01\x53",
        b"\x60\x01\x00\x03",
        b"\x26\x01",
    ],
}


@pytest.mark.parametrize("kind", DEPACKETIZERS)
@settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
@given(packets=st.lists(st.binary(max_size=80) | rtp_packets, max_size=30))
def test_depacketizer_random_packets_never_raise(
    kind: type[Depacketizer], packets: list[bytes]
) -> None:
    units: list[AccessUnit] = []
    depacketizer = kind(units.append)

    for packet in packets:
        depacketizer.packet(packet, 0, len(packet))

    check_units(units, video=kind is not AacDepacketizer)
    stats = depacketizer.stats
    assert stats.packets <= len(packets) and stats.malformed <= len(packets)


@pytest.mark.parametrize("kind", [H264Depacketizer, H265Depacketizer])
@settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
@given(data=st.data())
def test_depacketizer_fragments_in_any_order_never_raise(
    kind: type[Depacketizer], data: st.DataObject
) -> None:
    # fragment-shaped payloads with repeats, losses and early markers
    steps = data.draw(
        st.lists(
            st.tuples(
                st.integers(0, 2),  # sequence step: 1 in order, 0 a repeat, 2 a loss
                st.integers(0, 1),  # timestamp step in frames
                st.booleans(),  # marker
                st.sampled_from(FRAGMENT_HEADS[kind]),
                st.binary(max_size=40),
            ),
            max_size=40,
        )
    )
    units: list[AccessUnit] = []
    depacketizer = kind(units.append)
    seq, ts = 100, TS0
    for seq_step, ts_step, marker, head, rest in steps:
        seq, ts = seq + seq_step, ts + ts_step * FRAME_TICKS
        packet = rtp_packet(seq, ts, head + rest, marker=marker)
        depacketizer.packet(packet, 0, len(packet))

    check_units(units, video=True)
    assert len(units) <= depacketizer.stats.packets
