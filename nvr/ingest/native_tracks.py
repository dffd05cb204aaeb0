"""What the native recorder stores per track: the MP4 sample entry, built from the SDP
and the parameter sets the camera sends in band (RFC 6184 §8.1 sprop-parameter-sets,
RFC 7798 §7.1 sprop-vps/sps/pps, RFC 3640 §4.1 config)."""

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass

from nvr.codecs import aac, h264, h265
from nvr.errors import CameraProtocolError
from nvr.mp4.write import TrackSpec
from nvr.rtsp.sdp import MediaDescription

VIDEO_TRACK_ID = 1
AUDIO_TRACK_ID = 2
AAC_FRAME_SAMPLES = 1024

_H264_PARAMS = frozenset({h264.NAL_SPS, h264.NAL_PPS})
_H265_PARAMS = frozenset({h265.NAL_VPS, h265.NAL_SPS, h265.NAL_PPS})


@dataclass(frozen=True)
class VideoSetup:
    """The video track of one run."""

    codec: str  # "h264" or "hevc", as the index names codecs
    spec: TrackSpec
    parameter_sets: tuple[bytes, ...]  # what the sample entry was built from


@dataclass(frozen=True)
class AudioSetup:
    """The audio track of one run (AAC only: what MP4 stores without transcoding)."""

    spec: TrackSpec
    clock_rate: int
    size_bits: int
    index_bits: int


def codec_of(media: MediaDescription) -> str:
    return "h264" if media.encoding == "H264" else "hevc"


def is_vcl(nal: bytes, codec: str) -> bool:
    """Whether a NAL unit carries picture data (a slice), not parameters or SEI."""
    if codec == "h264":
        return 1 <= nal[0] & 0x1F <= 5
    return (nal[0] >> 1) & 0x3F < 32


def inband_parameter_sets(nals: list[bytes], codec: str) -> tuple[bytes, ...]:
    """The parameter-set NAL units among ``nals``, in order."""
    if codec == "h264":
        return tuple(n for n in nals if n[0] & 0x1F in _H264_PARAMS)
    return tuple(n for n in nals if (n[0] >> 1) & 0x3F in _H265_PARAMS)


def sdp_parameter_sets(media: MediaDescription) -> tuple[bytes, ...]:
    """The parameter sets the SDP announces (may be empty: then they come in band)."""
    fmtp = media.fmtp
    if media.encoding == "H264":
        names = [fmtp.get("sprop-parameter-sets", "")]
    else:
        names = [fmtp.get(key, "") for key in ("sprop-vps", "sprop-sps", "sprop-pps")]
    units = []
    for field in names:
        for item in field.split(","):
            if not item.strip():
                continue
            try:
                units.append(base64.b64decode(item.strip(), validate=False))
            except (binascii.Error, ValueError) as exc:
                raise CameraProtocolError(
                    "the SDP's parameter sets are not base64"
                ) from exc
    return tuple(unit for unit in units if unit)


def video_setup(
    media: MediaDescription, parameter_sets: tuple[bytes, ...]
) -> VideoSetup:
    """The video track for ``parameter_sets`` (in band, else the SDP's)."""
    codec = codec_of(media)
    by_type: dict[int, list[bytes]] = {}
    for unit in parameter_sets:
        kind = unit[0] & 0x1F if codec == "h264" else (unit[0] >> 1) & 0x3F
        if unit not in by_type.setdefault(kind, []):
            by_type[kind].append(unit)
    if codec == "h264":
        sps_list, pps_list = (
            by_type.get(h264.NAL_SPS, []),
            by_type.get(h264.NAL_PPS, []),
        )
        if not sps_list or not pps_list:
            raise CameraProtocolError(
                "no H.264 SPS/PPS in the SDP or before the keyframe"
            )
        sps = h264.parse_sps(sps_list[0])
        config = h264.avcc_record(sps_list, pps_list)
        fourcc, width, height = "avc1", sps.width, sps.height
    else:
        vps = by_type.get(h265.NAL_VPS, [])
        sps_list, pps_list = (
            by_type.get(h265.NAL_SPS, []),
            by_type.get(h265.NAL_PPS, []),
        )
        if not vps or not sps_list or not pps_list:
            raise CameraProtocolError(
                "no H.265 VPS/SPS/PPS in the SDP or before the keyframe"
            )
        info = h265.parse_sps(sps_list[0])
        config = h265.hvcc_record(vps, sps_list, pps_list)
        fourcc, width, height = "hvc1", info.width, info.height
    spec = TrackSpec(
        VIDEO_TRACK_ID,
        "video",
        fourcc,  # type: ignore[arg-type]
        media.clock_rate or 90000,
        config,
        width=width,
        height=height,
    )
    return VideoSetup(codec, spec, parameter_sets)


def audio_setup(media: MediaDescription) -> AudioSetup | None:
    """The AAC track of ``media``, or None when MP4 cannot carry it as sent."""
    fmtp: Mapping[str, str] = media.fmtp
    mode = fmtp.get("mode", "").lower()
    if media.encoding != "MPEG4-GENERIC" or mode not in ("aac-hbr", "aac-lbr"):
        return None
    config = aac.parse_config(fmtp.get("config", ""))
    try:
        size_bits = int(fmtp.get("sizelength", "13"))
        index_bits = int(fmtp.get("indexlength", "3"))
    except ValueError as exc:
        raise CameraProtocolError(
            "the SDP's AAC sizelength/indexlength are not numbers"
        ) from exc
    # RFC 3640 §3.2.1: an AU header is at most a few bytes; these bound every shift
    if not (1 <= size_bits <= 32 and 0 <= index_bits <= 32):
        raise CameraProtocolError(
            f"the SDP's AAC sizelength={size_bits} / indexlength={index_bits} are "
            "out of range"
        )
    rate = media.clock_rate or config.sample_rate
    spec = TrackSpec(
        AUDIO_TRACK_ID,
        "audio",
        "mp4a",
        rate,
        aac.esds_payload(config, AUDIO_TRACK_ID),
        channels=config.channels or media.channels,
        sample_rate=config.sample_rate,
    )
    return AudioSetup(spec, rate, size_bits, index_bits)
