"""H.265 SPS parsing (ITU-T H.265 §7.3.2.2) and the hvcC record (ISO/IEC 14496-15
§8.3.3.1), on SPSs libx265 wrote."""

from collections.abc import Callable

import pytest

from nvr.codecs import h265
from nvr.errors import CameraProtocolError
from tests.codecs.support import Encoded

EncodeVideo = Callable[..., Encoded]
RecordOf = Callable[[Encoded, str], bytes]

# general_profile_idc per profile name (H.265 annex A.3), as ffprobe names them
PROFILE_IDC = {"Main": 1, "Main 10": 2, "Rext": 4}
CHROMA_FORMAT_IDC = {"yuv420p": 1, "yuv420p10le": 1, "yuv422p": 2, "yuv444p": 3}

ENCODINGS = [
    # libx265 codes whole 8x8 blocks: 650x362 needs a conformance window on two sides
    pytest.param("650x362", "yuv420p", (), id="main-cropped"),
    pytest.param("650x362", "yuv420p10le", (), id="main10-cropped"),
    pytest.param("650x362", "yuv444p", (), id="rext-444-cropped"),
    pytest.param("350x202", "yuv422p", (), id="rext-422-cropped"),
    pytest.param("1920x1080", "yuv420p", (), id="main-1080p"),
    pytest.param(
        "640x360",
        "yuv420p",
        ("-x265-params", "log-level=error:temporal-layers=1"),
        id="temporal-sub-layers",
    ),
]


def sps_of(encoded: Encoded) -> bytes:
    (sps,) = set(encoded.of_type(h265.NAL_SPS))
    return sps


def temporal_layers(encoded: Encoded) -> int:
    """How many temporal sub-layers the pictures use: nuh_temporal_id_plus1 is the
    low 3 bits of a NAL unit's second header byte (H.265 §7.3.1.2)."""
    return max(nal[1] & 0x07 for nal in encoded.nals)


@pytest.mark.parametrize(("size", "pix_fmt", "args"), ENCODINGS)
def test_parse_sps_libx265_stream_gives_encoded_size(
    encode_video: EncodeVideo, size: str, pix_fmt: str, args: tuple[str, ...]
) -> None:
    encoded = encode_video("hevc", size, pix_fmt, *args, frames=4)

    sps = h265.parse_sps(sps_of(encoded))

    width, height = (int(n) for n in size.split("x"))
    assert (sps.width, sps.height) == (width, height)
    assert (sps.width, sps.height) == (encoded.probe["width"], encoded.probe["height"])


@pytest.mark.parametrize(("size", "pix_fmt", "args"), ENCODINGS)
def test_parse_sps_libx265_stream_profile_level_chroma_depth_match_ffprobe(
    encode_video: EncodeVideo, size: str, pix_fmt: str, args: tuple[str, ...]
) -> None:
    encoded = encode_video("hevc", size, pix_fmt, *args, frames=4)

    sps = h265.parse_sps(sps_of(encoded))

    # profile_tier_level's general part: space(2) tier(1) profile(5) ... level(8)
    assert len(sps.general_profile) == 12
    assert sps.general_profile[0] & 0x1F == PROFILE_IDC[str(encoded.probe["profile"])]
    assert sps.general_profile[11] == encoded.probe["level"]
    assert sps.chroma_format_idc == CHROMA_FORMAT_IDC[pix_fmt]
    depth = 10 if pix_fmt.endswith("10le") else 8
    assert (sps.bit_depth_luma, sps.bit_depth_chroma) == (depth, depth)


@pytest.mark.parametrize(("size", "pix_fmt", "args"), ENCODINGS)
def test_parse_sps_libx265_stream_sub_layers_match_pictures(
    encode_video: EncodeVideo, size: str, pix_fmt: str, args: tuple[str, ...]
) -> None:
    encoded = encode_video("hevc", size, pix_fmt, *args, frames=4)

    sps = h265.parse_sps(sps_of(encoded))

    assert sps.max_sub_layers == temporal_layers(encoded)
    if sps.max_sub_layers == 1:
        assert sps.temporal_id_nested  # H.265 §7.4.3.2.1: required with one layer


def test_parse_sps_temporal_layers_stream_has_two(encode_video: EncodeVideo) -> None:
    # the sub-layer branch of profile_tier_level is taken, and the size still right
    encoded = encode_video(
        "hevc",
        "640x360",
        "yuv420p",
        "-x265-params",
        "log-level=error:temporal-layers=1",
        frames=4,
    )

    assert temporal_layers(encoded) == 2
    assert h265.parse_sps(sps_of(encoded)).max_sub_layers == 2


@pytest.mark.parametrize(("size", "pix_fmt", "args"), ENCODINGS)
def test_hvcc_record_equals_ffmpeg_mp4_muxer_record(
    encode_video: EncodeVideo,
    ffmpeg_record: RecordOf,
    size: str,
    pix_fmt: str,
    args: tuple[str, ...],
) -> None:
    encoded = encode_video("hevc", size, pix_fmt, *args, frames=4)
    vps, sps, pps = (
        encoded.of_type(kind)[:1] for kind in (h265.NAL_VPS, h265.NAL_SPS, h265.NAL_PPS)
    )

    assert h265.hvcc_record(vps, sps, pps) == ffmpeg_record(encoded, "hvcC")


@pytest.mark.parametrize(
    ("vps", "sps", "pps"),
    [([], [b"\x42\x01"], [b"\x44\x01"]), ([b"\x40\x01"], [], [b"\x44\x01"])],
)
def test_hvcc_record_missing_parameter_set_raises_protocol_error(
    vps: list[bytes], sps: list[bytes], pps: list[bytes]
) -> None:
    with pytest.raises(CameraProtocolError, match="a VPS, an SPS and a PPS"):
        h265.hvcc_record(vps, sps, pps)


def test_parse_sps_not_an_sps_raises_protocol_error(encode_video: EncodeVideo) -> None:
    encoded = encode_video("hevc", "650x362", "yuv420p", frames=4)
    (vps,) = set(encoded.of_type(h265.NAL_VPS))

    with pytest.raises(CameraProtocolError, match=r"not an H\.265 SPS"):
        h265.parse_sps(vps)
    with pytest.raises(CameraProtocolError, match=r"not an H\.265 SPS"):
        h265.parse_sps(sps_of(encoded)[:15])


def test_parse_sps_cut_short_raises_protocol_error(encode_video: EncodeVideo) -> None:
    sps = sps_of(encode_video("hevc", "650x362", "yuv420p", frames=4))

    for end in range(16, 22):
        with pytest.raises(CameraProtocolError, match="truncated"):
            h265.parse_sps(sps[:end])
