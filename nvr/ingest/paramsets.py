"""In-band parameter sets (H.264 SPS/PPS, H.265 VPS/SPS/PPS) of an Annex B packet.

A camera that changes resolution or encoder settings mid-stream sends new parameter sets
with its next keyframe; the SDP and the run's MP4 sample description still describe the
old ones. The recorder compares them keyframe to keyframe to notice the change.
"""

_H264_PARAMETER_TYPES = frozenset({7, 8})  # SPS, PPS (ITU-T H.264 table 7-1)
_H265_PARAMETER_TYPES = frozenset({32, 33, 34})  # VPS, SPS, PPS (ITU-T H.265 table 7-1)


def _nal_units(data: bytes) -> list[bytes]:
    """The NAL units of an Annex B byte stream (3- or 4-byte start codes)."""
    units = []
    start = data.find(b"\x00\x00\x01")
    while start != -1:
        begin = start + 3
        end = data.find(b"\x00\x00\x01", begin)
        unit = data[begin:] if end == -1 else data[begin:end]
        units.append(unit.rstrip(b"\x00"))  # the zero byte of a following 4-byte code
        start = end
    return units


def parameter_sets(data: bytes, codec: str) -> bytes:
    """The parameter-set NAL units in ``data``, joined; b"" if it has none.

    ``codec`` is the FFmpeg codec name, "h264" or "hevc"; other codecs give b"".
    """
    found = []
    for unit in _nal_units(data):
        if not unit:
            continue
        if codec == "h264" and unit[0] & 0x1F in _H264_PARAMETER_TYPES:
            found.append(unit)
        elif codec == "hevc" and (unit[0] >> 1) & 0x3F in _H265_PARAMETER_TYPES:
            found.append(unit)
    return b"".join(found)
