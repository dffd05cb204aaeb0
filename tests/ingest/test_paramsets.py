"""Finding in-band parameter sets in Annex B packets."""

from nvr.ingest.paramsets import parameter_sets

SPS = b"\x67\x64\x00\x1e\xac"
PPS = b"\x68\xee\x3c\x80"
IDR = b"\x65\x88\x84\x00"


def test_parameter_sets_h264_keyframe_with_sps_pps_returns_both() -> None:
    data = b"\x00\x00\x00\x01" + SPS + b"\x00\x00\x00\x01" + PPS + b"\x00\x00\x01" + IDR
    assert parameter_sets(data, "h264") == SPS + PPS


def test_parameter_sets_h264_keyframe_without_them_returns_empty() -> None:
    assert parameter_sets(b"\x00\x00\x00\x01" + IDR, "h264") == b""


def test_parameter_sets_hevc_vps_sps_pps_found_slices_ignored() -> None:
    vps, sps, pps, idr = (
        b"\x40\x01\x0c",
        b"\x42\x01\x01",
        b"\x44\x01\xc1",
        b"\x26\x01\xaf",
    )
    data = b"".join(b"\x00\x00\x00\x01" + unit for unit in (vps, sps, pps, idr))
    assert parameter_sets(data, "hevc") == vps + sps + pps


def test_parameter_sets_other_codec_returns_empty() -> None:
    assert parameter_sets(b"\x00\x00\x01" + SPS, "mjpeg") == b""
