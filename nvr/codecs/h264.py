"""H.264 parameter sets: picture size from the SPS, and the avcC record MP4 stores.

References: ITU-T H.264 §7.3.2.1.1 (SPS syntax), §E.1.1 (VUI) and ISO/IEC 14496-15
§5.3.3.1 (AVCDecoderConfigurationRecord).
"""

from dataclasses import dataclass

from nvr.codecs.bits import BitReader, unescape_rbsp
from nvr.errors import CameraProtocolError

NAL_SPS = 7
NAL_PPS = 8
NAL_IDR = 5

# profiles whose SPS carries chroma format and bit depth (H.264 §7.3.2.1.1)
_HIGH_PROFILES = frozenset(
    {100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135}
)


@dataclass(frozen=True)
class H264Sps:
    profile_idc: int
    constraint_flags: int
    level_idc: int
    chroma_format_idc: int
    bit_depth_luma: int
    bit_depth_chroma: int
    width: int
    height: int


def nal_type(nal: bytes) -> int:
    return nal[0] & 0x1F


def parse_sps(nal: bytes) -> H264Sps:
    """The fields nvr needs from one SPS NAL unit (header byte included)."""
    if len(nal) < 4 or nal_type(nal) != NAL_SPS:
        raise CameraProtocolError("not an H.264 SPS")
    bits = BitReader(unescape_rbsp(nal[1:]), "H.264 SPS")
    profile_idc, constraint_flags, level_idc = bits.u(8), bits.u(8), bits.u(8)
    bits.ue()  # seq_parameter_set_id
    chroma_format_idc, depth_luma, depth_chroma = 1, 8, 8
    separate_planes = False
    if profile_idc in _HIGH_PROFILES:
        chroma_format_idc = bits.ue()
        if chroma_format_idc == 3:
            separate_planes = bits.flag()
        depth_luma, depth_chroma = bits.ue() + 8, bits.ue() + 8
        bits.skip(1)  # qpprime_y_zero_transform_bypass_flag
        if bits.flag():  # seq_scaling_matrix_present_flag
            _skip_scaling_lists(bits, 8 if chroma_format_idc != 3 else 12)
    bits.ue()  # log2_max_frame_num_minus4
    _skip_pic_order_count(bits)
    bits.ue()  # max_num_ref_frames
    bits.skip(1)  # gaps_in_frame_num_value_allowed_flag
    width_mbs, height_map_units = bits.ue() + 1, bits.ue() + 1
    frame_mbs_only = bits.flag()
    if not frame_mbs_only:
        bits.skip(1)  # mb_adaptive_frame_field_flag
    bits.skip(1)  # direct_8x8_inference_flag
    crop = (bits.ue(), bits.ue(), bits.ue(), bits.ue()) if bits.flag() else (0, 0, 0, 0)

    chroma_array_type = 0 if separate_planes else chroma_format_idc
    sub_width = 2 if chroma_array_type in (1, 2) else 1
    sub_height = 2 if chroma_array_type == 1 else 1
    crop_x = sub_width if chroma_array_type else 1
    crop_y = (sub_height if chroma_array_type else 1) * (2 - frame_mbs_only)
    width = width_mbs * 16 - crop_x * (crop[0] + crop[1])
    height = (2 - frame_mbs_only) * height_map_units * 16 - crop_y * (crop[2] + crop[3])
    if width <= 0 or height <= 0:
        raise CameraProtocolError(f"H.264 SPS gives an empty picture {width}x{height}")
    return H264Sps(
        profile_idc,
        constraint_flags,
        level_idc,
        chroma_format_idc,
        depth_luma,
        depth_chroma,
        width,
        height,
    )


def _skip_scaling_lists(bits: BitReader, count: int) -> None:
    for index in range(count):
        if not bits.flag():
            continue
        size = 16 if index < 6 else 64
        last, next_scale = 8, 8
        for _ in range(size):
            if next_scale != 0:
                next_scale = (last + bits.se() + 256) % 256
            last = next_scale if next_scale != 0 else last


def _skip_pic_order_count(bits: BitReader) -> None:
    kind = bits.ue()
    if kind == 0:
        bits.ue()  # log2_max_pic_order_cnt_lsb_minus4
    elif kind == 1:
        bits.skip(1)
        bits.se()
        bits.se()
        for _ in range(bits.ue()):
            bits.se()


def avcc_record(sps_list: list[bytes], pps_list: list[bytes]) -> bytes:
    """The AVCDecoderConfigurationRecord (avcC payload) for these parameter sets."""
    if not sps_list or not pps_list:
        raise CameraProtocolError("H.264 needs at least one SPS and one PPS")
    sps = parse_sps(sps_list[0])
    out = bytearray((1, sps.profile_idc, sps.constraint_flags, sps.level_idc, 0xFC | 3))
    out.append(0xE0 | len(sps_list))
    for unit in sps_list:
        out += len(unit).to_bytes(2, "big") + unit
    out.append(len(pps_list))
    for unit in pps_list:
        out += len(unit).to_bytes(2, "big") + unit
    if sps.profile_idc in _HIGH_PROFILES and sps.profile_idc not in (66, 77, 88):
        # ISO/IEC 14496-15 §5.3.3.1.2: high profiles add chroma and depth fields
        out += bytes(
            (
                0xFC | sps.chroma_format_idc,
                0xF8 | (sps.bit_depth_luma - 8),
                0xF8 | (sps.bit_depth_chroma - 8),
                0,
            )
        )
    return bytes(out)
