"""H.265 parameter sets: picture size from the SPS, and the hvcC record MP4 stores.

References: ITU-T H.265 §7.3.2.2 (SPS syntax), §7.3.3 (profile_tier_level) and
ISO/IEC 14496-15 §8.3.3.1 (HEVCDecoderConfigurationRecord).
"""

from dataclasses import dataclass

from nvr.codecs.bits import BitReader, unescape_rbsp
from nvr.errors import CameraProtocolError

NAL_VPS = 32
NAL_SPS = 33
NAL_PPS = 34


@dataclass(frozen=True)
class H265Sps:
    general_profile: bytes  # the 12 general_* bytes of profile_tier_level, verbatim
    max_sub_layers: int
    temporal_id_nested: bool
    chroma_format_idc: int
    bit_depth_luma: int
    bit_depth_chroma: int
    width: int
    height: int


def nal_type(nal: bytes) -> int:
    return (nal[0] >> 1) & 0x3F


def parse_sps(nal: bytes) -> H265Sps:
    """The fields nvr needs from one SPS NAL unit (its 2-byte header included)."""
    if len(nal) < 16 or nal_type(nal) != NAL_SPS:
        raise CameraProtocolError("not an H.265 SPS")
    rbsp = unescape_rbsp(nal[2:])
    bits = BitReader(rbsp, "H.265 SPS")
    bits.skip(4)  # sps_video_parameter_set_id
    sub_layers_minus1 = bits.u(3)
    nested = bits.flag()
    general_profile = rbsp[1:13]
    bits.skip(96)
    _skip_sub_layers(bits, sub_layers_minus1)
    bits.ue()  # sps_seq_parameter_set_id
    chroma_format_idc = bits.ue()
    separate_planes = bits.flag() if chroma_format_idc == 3 else False
    width, height = bits.ue(), bits.ue()
    if bits.flag():  # conformance_window_flag
        left, right, top, bottom = bits.ue(), bits.ue(), bits.ue(), bits.ue()
        chroma = 0 if separate_planes else chroma_format_idc
        sub_width = 2 if chroma in (1, 2) else 1
        sub_height = 2 if chroma == 1 else 1
        width -= sub_width * (left + right)
        height -= sub_height * (top + bottom)
    depth_luma, depth_chroma = bits.ue() + 8, bits.ue() + 8
    if width <= 0 or height <= 0:
        raise CameraProtocolError(f"H.265 SPS gives an empty picture {width}x{height}")
    return H265Sps(
        general_profile,
        sub_layers_minus1 + 1,
        nested,
        chroma_format_idc,
        depth_luma,
        depth_chroma,
        width,
        height,
    )


def _skip_sub_layers(bits: BitReader, sub_layers_minus1: int) -> None:
    """The sub-layer part of profile_tier_level (H.265 §7.3.3)."""
    present = [(bits.flag(), bits.flag()) for _ in range(sub_layers_minus1)]
    if sub_layers_minus1 > 0:
        bits.skip(2 * (8 - sub_layers_minus1))  # reserved_zero_2bits
    for profile_present, level_present in present:
        if profile_present:
            bits.skip(88)
        if level_present:
            bits.skip(8)


def hvcc_record(vps: list[bytes], sps: list[bytes], pps: list[bytes]) -> bytes:
    """The HEVCDecoderConfigurationRecord (hvcC payload) for these parameter sets."""
    if not vps or not sps or not pps:
        raise CameraProtocolError("H.265 needs a VPS, an SPS and a PPS")
    info = parse_sps(sps[0])
    out = bytearray((1,))
    out += info.general_profile  # profile space, tier, profile, flags, level
    out += bytes((0xF0, 0x00))  # min_spatial_segmentation_idc unknown (0)
    out.append(0xFC)  # parallelismType unknown (0)
    out.append(0xFC | info.chroma_format_idc)
    out.append(0xF8 | (info.bit_depth_luma - 8))
    out.append(0xF8 | (info.bit_depth_chroma - 8))
    out += bytes((0, 0))  # avgFrameRate unknown
    out.append(
        (min(info.max_sub_layers, 7) << 3)
        | (0x04 if info.temporal_id_nested else 0)
        | 3
    )
    arrays = [(NAL_VPS, vps), (NAL_SPS, sps), (NAL_PPS, pps)]
    out.append(len(arrays))
    for kind, units in arrays:
        out.append(0x80 | kind)  # array_completeness: every set is in the sample entry
        out += len(units).to_bytes(2, "big")
        for unit in units:
            out += len(unit).to_bytes(2, "big") + unit
    return bytes(out)
