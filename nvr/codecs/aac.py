"""AAC's AudioSpecificConfig (ISO/IEC 14496-3 §1.6.2.1), as SDP carries it (RFC 3640
``config=``), and the MPEG-4 descriptors an MP4 ``esds`` box wraps it in."""

from dataclasses import dataclass

from nvr.codecs.bits import BitReader
from nvr.errors import CameraProtocolError

_SAMPLE_RATES = (
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050,
    16000, 12000, 11025, 8000, 7350,
)  # fmt: skip


@dataclass(frozen=True)
class AacConfig:
    audio_specific_config: bytes
    object_type: int
    sample_rate: int
    channels: int


def parse_config(hex_config: str) -> AacConfig:
    """The AudioSpecificConfig in an SDP ``config=`` hex string."""
    try:
        raw = bytes.fromhex(hex_config)
    except ValueError as exc:
        raise CameraProtocolError(
            f"AAC config is not hex: {hex_config[:40]!r}"
        ) from exc
    if len(raw) < 2:
        raise CameraProtocolError("AAC config is too short")
    bits = BitReader(raw, "AAC AudioSpecificConfig")
    object_type = bits.u(5)
    if object_type == 31:
        object_type = 32 + bits.u(6)
    index = bits.u(4)
    if index == 15:
        rate = bits.u(24)
    elif index < len(_SAMPLE_RATES):
        rate = _SAMPLE_RATES[index]
    else:
        raise CameraProtocolError(
            f"AAC config has a reserved sample rate index {index}"
        )
    channels = bits.u(4)
    return AacConfig(raw, object_type, rate, channels)


def _descriptor(tag: int, payload: bytes) -> bytes:
    """An MPEG-4 descriptor (ISO/IEC 14496-1 §8.3.3) with a 4-byte size field."""
    size = len(payload)
    length = bytes(
        (
            0x80 | (size >> 21) & 0x7F,
            0x80 | (size >> 14) & 0x7F,
            0x80 | (size >> 7) & 0x7F,
        )
    ) + bytes((size & 0x7F,))
    return bytes((tag,)) + length + payload


def esds_payload(config: AacConfig, track_id: int) -> bytes:
    """The ES_Descriptor inside an ``esds`` box (after its version and flags)."""
    decoder_specific = _descriptor(0x05, config.audio_specific_config)
    decoder_config = _descriptor(
        0x04,
        bytes((0x40, 0x15))  # MPEG-4 audio; audio stream, upstream 0, reserved 1
        + (0).to_bytes(3, "big")  # bufferSizeDB unknown
        + (0).to_bytes(4, "big")  # maxBitrate unknown
        + (0).to_bytes(4, "big")  # avgBitrate unknown (variable)
        + decoder_specific,
    )
    sl_config = _descriptor(0x06, b"\x02")
    return _descriptor(
        0x03, track_id.to_bytes(2, "big") + b"\x00" + decoder_config + sl_config
    )
