"""H.264 SPS parsing (ITU-T H.264 §7.3.2.1.1) and the avcC record (ISO/IEC 14496-15
§5.3.3.1), on SPSs libx264 wrote and on SPSs written here bit by bit."""

from collections.abc import Callable

import pytest

from nvr.codecs import h264
from nvr.errors import CameraProtocolError
from tests.codecs.support import Encoded, from_bits

EncodeVideo = Callable[..., Encoded]
RecordOf = Callable[[Encoded, str], bytes]

# profile_idc per profile name (H.264 annex A.2), as ffprobe names them
PROFILE_IDC = {
    "Constrained Baseline": 66,
    "Main": 77,
    "High": 100,
    "High 4:2:2": 122,
    "High 4:4:4 Predictive": 244,
}
CHROMA_FORMAT_IDC = {"gray": 0, "yuv420p": 1, "yuv422p10le": 2, "yuv444p": 3}

ENCODINGS = [
    pytest.param("640x360", "yuv420p", ("-profile:v", "baseline"), id="baseline"),
    pytest.param("640x360", "yuv420p", ("-profile:v", "main"), id="main"),
    pytest.param("1280x720", "yuv420p", ("-profile:v", "high"), id="high-720p"),
    pytest.param("176x144", "yuv420p", (), id="qcif"),
    pytest.param("350x202", "yuv420p", (), id="cropped-both-ways"),
    pytest.param("350x202", "yuv444p", (), id="cropped-444"),
    pytest.param("350x202", "gray", (), id="cropped-monochrome"),
    pytest.param("1920x1080", "yuv422p10le", (), id="422-10-bit"),
    pytest.param("640x360", "yuv420p", ("-flags", "+ildct+ilme"), id="interlaced"),
]


def sps_of(encoded: Encoded) -> bytes:
    (sps,) = set(encoded.of_type(h264.NAL_SPS))
    return sps


@pytest.mark.parametrize(("size", "pix_fmt", "args"), ENCODINGS)
def test_parse_sps_libx264_stream_gives_encoded_size(
    encode_video: EncodeVideo, size: str, pix_fmt: str, args: tuple[str, ...]
) -> None:
    encoded = encode_video("h264", size, pix_fmt, *args, frames=2)

    sps = h264.parse_sps(sps_of(encoded))

    width, height = (int(n) for n in size.split("x"))
    assert (sps.width, sps.height) == (width, height)
    assert (sps.width, sps.height) == (encoded.probe["width"], encoded.probe["height"])


@pytest.mark.parametrize(("size", "pix_fmt", "args"), ENCODINGS)
def test_parse_sps_libx264_stream_profile_level_chroma_depth_match_ffprobe(
    encode_video: EncodeVideo, size: str, pix_fmt: str, args: tuple[str, ...]
) -> None:
    encoded = encode_video("h264", size, pix_fmt, *args, frames=2)

    sps = h264.parse_sps(sps_of(encoded))

    assert sps.profile_idc == PROFILE_IDC[str(encoded.probe["profile"])]
    assert sps.level_idc == encoded.probe["level"]
    assert sps.chroma_format_idc == CHROMA_FORMAT_IDC[pix_fmt]
    depth = 10 if pix_fmt.endswith("10le") else 8
    assert (sps.bit_depth_luma, sps.bit_depth_chroma) == (depth, depth)


def test_parse_sps_interlaced_stream_is_field_coded(encode_video: EncodeVideo) -> None:
    encoded = encode_video(
        "h264", "640x360", "yuv420p", "-flags", "+ildct+ilme", frames=2
    )

    # ffprobe sees fields; the height still counts frame lines
    assert encoded.probe["field_order"] in ("tt", "bb", "tb", "bt")
    assert h264.parse_sps(sps_of(encoded)).height == 360


@pytest.mark.parametrize(
    ("size", "pix_fmt", "args"),
    [ENCODINGS[0], ENCODINGS[2], ENCODINGS[5], ENCODINGS[7], ENCODINGS[8]],
)
def test_avcc_record_equals_ffmpeg_mp4_muxer_record(
    encode_video: EncodeVideo,
    ffmpeg_record: RecordOf,
    size: str,
    pix_fmt: str,
    args: tuple[str, ...],
) -> None:
    encoded = encode_video("h264", size, pix_fmt, *args, frames=2)
    sps, pps = encoded.of_type(h264.NAL_SPS)[:1], encoded.of_type(h264.NAL_PPS)[:1]

    assert h264.avcc_record(sps, pps) == ffmpeg_record(encoded, "avcC")


def test_avcc_record_lists_every_parameter_set(encode_video: EncodeVideo) -> None:
    encoded = encode_video("h264", "640x360", "yuv420p", "-profile:v", "baseline")
    sps, pps = sps_of(encoded), encoded.of_type(h264.NAL_PPS)[0]
    other_pps = pps + b"\x80"

    record = h264.avcc_record([sps], [pps, other_pps])

    # version, profile, compatibility, level, 0xFF: 4-byte NAL lengths, 0xE1: one SPS
    assert record[:6] == bytes((1, sps[1], sps[2], sps[3], 0xFF, 0xE1))
    rest = record[6:]
    assert rest[:2] == len(sps).to_bytes(2, "big") and rest[2 : 2 + len(sps)] == sps
    rest = rest[2 + len(sps) :]
    assert rest == (
        b"\x02"
        + len(pps).to_bytes(2, "big")
        + pps
        + len(other_pps).to_bytes(2, "big")
        + other_pps
    )  # baseline: no chroma and depth extension


@pytest.mark.parametrize(("sps", "pps"), [([], [b"\x68\xce"]), ([b"\x67"], [])])
def test_avcc_record_missing_parameter_set_raises_protocol_error(
    sps: list[bytes], pps: list[bytes]
) -> None:
    with pytest.raises(CameraProtocolError, match="at least one SPS and one PPS"):
        h264.avcc_record(sps, pps)


# SPSs written field by field


class BitWriter:
    """Writes u(n), ue(v) and se(v) fields (H.264 §9.1) as a string of bits."""

    def __init__(self) -> None:
        self.bits = ""

    def u(self, count: int, value: int) -> None:
        self.bits += format(value, f"0{count}b") if count else ""

    def ue(self, value: int) -> None:
        code = format(value + 1, "b")
        self.bits += "0" * (len(code) - 1) + code

    def se(self, value: int) -> None:
        self.ue(2 * value - 1 if value > 0 else -2 * value)

    def rbsp(self) -> bytes:
        """The bits with rbsp_trailing_bits: a one, then zeros to a byte."""
        return from_bits(self.bits + "1", fill="0")


def escape(rbsp: bytes) -> bytes:
    """Inserts emulation-prevention bytes (H.264 §7.4.1.1): 00 00 0x, x <= 3."""
    out = bytearray()
    zeros = 0
    for byte in rbsp:
        if zeros >= 2 and byte <= 3:
            out.append(3)
            zeros = 0
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    return bytes(out)


def write_sps(
    width_mbs: int,
    height_map_units: int,
    *,
    profile_idc: int = 66,
    constraint_flags: int = 0xC0,
    level_idc: int = 40,
    chroma_format_idc: int = 1,
    separate_colour_planes: bool = False,
    bit_depths: tuple[int, int] = (8, 8),
    scaling_lists: dict[int, list[int] | None] | None = None,
    poc_type: int = 0,
    frame_mbs_only: bool = True,
    crop: tuple[int, int, int, int] | None = None,
) -> bytes:
    """An SPS NAL unit; ``scaling_lists`` maps a list index to its values (None: the
    default list, signalled by a first delta that makes next_scale 0)."""
    w = BitWriter()
    w.u(8, profile_idc)
    w.u(8, constraint_flags)
    w.u(8, level_idc)
    w.ue(0)  # seq_parameter_set_id
    if profile_idc in (100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135):
        w.ue(chroma_format_idc)
        if chroma_format_idc == 3:
            w.u(1, separate_colour_planes)
        w.ue(bit_depths[0] - 8)
        w.ue(bit_depths[1] - 8)
        w.u(1, 0)  # qpprime_y_zero_transform_bypass_flag
        w.u(1, scaling_lists is not None)
        if scaling_lists is not None:
            for index in range(8 if chroma_format_idc != 3 else 12):
                write_scaling_list(w, index, scaling_lists)
    w.ue(0)  # log2_max_frame_num_minus4
    w.ue(poc_type)
    if poc_type == 0:
        w.ue(2)  # log2_max_pic_order_cnt_lsb_minus4
    elif poc_type == 1:
        w.u(1, 1)  # delta_pic_order_always_zero_flag
        w.se(-3)  # offset_for_non_ref_pic
        w.se(7)  # offset_for_top_to_bottom_field
        w.ue(3)  # num_ref_frames_in_pic_order_cnt_cycle
        for offset in (1, -200, 4000):
            w.se(offset)
    w.ue(4)  # max_num_ref_frames
    w.u(1, 0)  # gaps_in_frame_num_value_allowed_flag
    w.ue(width_mbs - 1)
    w.ue(height_map_units - 1)
    w.u(1, frame_mbs_only)
    if not frame_mbs_only:
        w.u(1, 1)  # mb_adaptive_frame_field_flag
    w.u(1, 1)  # direct_8x8_inference_flag
    w.u(1, crop is not None)
    for offset in crop or ():
        w.ue(offset)
    w.u(1, 0)  # vui_parameters_present_flag
    return b"\x67" + escape(w.rbsp())


def write_scaling_list(
    w: BitWriter, index: int, lists: dict[int, list[int] | None]
) -> None:
    """scaling_list() of H.264 §7.3.2.1.1.1 for one list index."""
    w.u(1, index in lists)
    if index not in lists:
        return
    values = lists[index]
    if values is None:
        w.se(-8)  # from last_scale 8 to next_scale 0: use the default list
        return
    assert len(values) == (16 if index < 6 else 64)
    last = 8
    for value in values:
        delta = (value - last + 128) % 256 - 128
        w.se(delta)
        last = value


def test_write_sps_round_trips_through_libx264_reference(
    encode_video: EncodeVideo,
) -> None:
    # the writer itself checked against libx264: its 640x360 baseline SPS fields
    written = write_sps(40, 23, level_idc=30, crop=(0, 0, 0, 4))

    assert h264.parse_sps(written) == h264.parse_sps(
        sps_of(encode_video("h264", "640x360", "yuv420p", "-profile:v", "baseline"))
    )


@pytest.mark.parametrize(
    ("sps", "size"),
    [
        # 1080p, 4:2:0 frames: 120x68 macroblocks, 8 lines cropped (unit: 2 lines)
        (write_sps(120, 68, crop=(0, 0, 0, 4)), (1920, 1080)),
        # 1080i: 34 map units of field pairs; a crop unit is 2 x 2 = 4 lines
        (write_sps(120, 34, frame_mbs_only=False, crop=(0, 0, 0, 2)), (1920, 1080)),
        # all four sides, 4:2:0: 2 columns and 2 lines per unit
        (write_sps(45, 26, crop=(1, 2, 3, 1)), (720 - 6, 416 - 8)),
        # 4:2:2: a crop unit is 2 columns by 1 line
        (
            write_sps(120, 68, profile_idc=122, chroma_format_idc=2, crop=(0, 0, 0, 8)),
            (1920, 1080),
        ),
        # 4:4:4: 1 by 1
        (
            write_sps(40, 23, profile_idc=244, chroma_format_idc=3, crop=(0, 3, 0, 8)),
            (637, 360),
        ),
        # 4:4:4 as separate planes: ChromaArrayType 0, also 1 by 1
        (
            write_sps(
                40,
                23,
                profile_idc=244,
                chroma_format_idc=3,
                separate_colour_planes=True,
                crop=(1, 0, 0, 8),
            ),
            (639, 360),
        ),
        # monochrome: ChromaArrayType 0, interlaced: 1 column by 2 lines
        (
            write_sps(
                40,
                12,
                profile_idc=100,
                chroma_format_idc=0,
                frame_mbs_only=False,
                crop=(0, 1, 0, 3),
            ),
            (639, 378),
        ),
    ],
)
def test_parse_sps_cropping_window_per_chroma_format(
    sps: bytes, size: tuple[int, int]
) -> None:
    parsed = h264.parse_sps(sps)

    assert (parsed.width, parsed.height) == size


def test_parse_sps_high_profile_fields_read() -> None:
    sps = write_sps(
        80,
        45,
        profile_idc=110,
        constraint_flags=0x10,
        level_idc=51,
        bit_depths=(10, 9),
    )

    assert h264.parse_sps(sps) == h264.H264Sps(110, 0x10, 51, 1, 10, 9, 1280, 720)


def test_parse_sps_scaling_lists_skipped() -> None:
    lists: dict[int, list[int] | None] = {
        0: [6, 13, 20, 28, 13, 20, 28, 32, 20, 28, 32, 37, 28, 32, 37, 42],
        2: None,
        3: [255, 1] * 8,  # deltas that wrap around 256
        6: [(7 * i) % 200 + 1 for i in range(64)],
        7: None,
    }

    sps = write_sps(120, 68, profile_idc=100, scaling_lists=lists, crop=(0, 0, 0, 4))

    assert (h264.parse_sps(sps).width, h264.parse_sps(sps).height) == (1920, 1080)


def test_parse_sps_444_has_twelve_scaling_lists() -> None:
    lists: dict[int, list[int] | None] = {11: list(range(1, 65)), 9: None}

    sps = write_sps(40, 23, profile_idc=244, chroma_format_idc=3, scaling_lists=lists)

    assert (h264.parse_sps(sps).width, h264.parse_sps(sps).height) == (640, 368)


@pytest.mark.parametrize("poc_type", [0, 1, 2])
def test_parse_sps_every_pic_order_count_type(poc_type: int) -> None:
    sps = write_sps(40, 23, poc_type=poc_type, crop=(0, 0, 0, 4))

    assert (h264.parse_sps(sps).width, h264.parse_sps(sps).height) == (640, 360)


def test_parse_sps_emulation_prevention_removed_before_parsing() -> None:
    # profile 0, no constraint flags, level 3: "00 00 03" must be sent as
    # "00 00 03 03", and the reader must see level 3 again
    sps = write_sps(40, 23, profile_idc=0, constraint_flags=0, level_idc=3)
    assert sps[1:5] == b"\x00\x00\x03\x03"

    parsed = h264.parse_sps(sps)

    assert (parsed.profile_idc, parsed.level_idc) == (0, 3)
    assert (parsed.width, parsed.height) == (640, 368)


@pytest.mark.parametrize(
    ("nal", "match"),
    [
        (b"\x68\xce\x38\x80", "not an H.264 SPS"),  # a PPS
        (b"\x67\x42\xc0", "not an H.264 SPS"),  # shorter than its fixed fields
        (write_sps(120, 68)[:6], "truncated"),
        (write_sps(2, 2, crop=(8, 8, 0, 0)), "empty picture"),
    ],
)
def test_parse_sps_invalid_raises_protocol_error(nal: bytes, match: str) -> None:
    with pytest.raises(CameraProtocolError, match=match):
        h264.parse_sps(nal)


def test_parse_sps_libx264_sps_cut_short_raises_protocol_error(
    encode_video: EncodeVideo,
) -> None:
    sps = sps_of(encode_video("h264", "1280x720", "yuv420p", "-profile:v", "high"))

    for end in range(4, 9):
        with pytest.raises(CameraProtocolError, match="truncated"):
            h264.parse_sps(sps[:end])
