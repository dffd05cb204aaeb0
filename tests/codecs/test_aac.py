"""AAC AudioSpecificConfig (ISO/IEC 14496-3 §1.6.2.1) and the esds descriptors
(ISO/IEC 14496-1 §7.2.6) nvr wraps it in."""

from collections.abc import Callable

import pytest

from nvr.codecs.aac import AacConfig, esds_payload, parse_config
from nvr.errors import CameraProtocolError
from tests.codecs.support import from_bits

# ISO/IEC 14496-3 table 1.18: samplingFrequencyIndex
SAMPLE_RATE_INDEX = {
    96000: 0, 88200: 1, 64000: 2, 48000: 3, 44100: 4, 32000: 5, 24000: 6,
    22050: 7, 16000: 8, 12000: 9, 11025: 10, 8000: 11, 7350: 12,
}  # fmt: skip


def config_bits(object_type: int, rate: int, channels: int) -> str:
    """audioObjectType(5, escape 31 + 6), samplingFrequencyIndex(4, escape 15 + 24),
    channelConfiguration(4)."""
    if object_type < 31:
        bits = format(object_type, "05b")
    else:
        bits = "11111" + format(object_type - 32, "06b")
    if rate in SAMPLE_RATE_INDEX:
        bits += format(SAMPLE_RATE_INDEX[rate], "04b")
    else:
        bits += "1111" + format(rate, "024b")
    return bits + format(channels, "04b")


@pytest.mark.parametrize(
    ("hex_config", "fields"),
    [
        ("1190", (2, 48000, 2)),  # AAC LC, 48 kHz, stereo
        ("1210", (2, 44100, 2)),
        ("1408", (2, 16000, 1)),  # a common camera's microphone
        ("1588", (2, 8000, 1)),
        ("2b8a0800", (5, 22050, 1)),  # SBR (HE-AAC), written in short form
    ],
)
def test_parse_config_well_known_configs(
    hex_config: str, fields: tuple[int, int, int]
) -> None:
    config = parse_config(hex_config)

    assert (config.object_type, config.sample_rate, config.channels) == fields
    assert config.audio_specific_config == bytes.fromhex(hex_config)


@pytest.mark.parametrize(
    ("object_type", "rate", "channels"),
    [
        (2, 48000, 2),
        (2, 7350, 1),
        (2, 12345, 2),  # not in the table: the explicit 24-bit rate
        (42, 48000, 2),  # USAC: the escaped object type
        (39, 96000, 7),
        (1, 32000, 0),  # channel configuration 0: defined in a program_config
    ],
)
def test_parse_config_fields_written_bit_by_bit(
    object_type: int, rate: int, channels: int
) -> None:
    raw = from_bits(config_bits(object_type, rate, channels), fill="0")

    config = parse_config(raw.hex())

    assert config == AacConfig(raw, object_type, rate, channels)


@pytest.mark.parametrize(
    ("sample_rate", "channels"), [(48000, 2), (44100, 1), (16000, 1), (8000, 1)]
)
def test_parse_config_ffmpeg_aac_encoder_config(
    encode_aac: Callable[[int, int], bytes], sample_rate: int, channels: int
) -> None:
    raw = encode_aac(sample_rate, channels)

    config = parse_config(raw.hex())

    assert (config.object_type, config.sample_rate, config.channels) == (
        2,  # ffprobe: profile LC
        sample_rate,
        channels,
    )


def test_parse_config_upper_case_hex_accepted() -> None:
    assert parse_config("1190") == parse_config("1190".upper())
    assert parse_config("2B8A0800").object_type == 5


@pytest.mark.parametrize(
    ("hex_config", "match"),
    [
        ("", "too short"),
        ("11", "too short"),
        ("11z0", "not hex"),
        ("119", "not hex"),
        (from_bits("00010 1101 0010", fill="0").hex(), "reserved sample rate index 13"),
        (from_bits("00010 1110 0010", fill="0").hex(), "reserved sample rate index 14"),
        (from_bits("00010 1111 0000", fill="0").hex(), "truncated"),  # 24-bit rate cut
        (from_bits("11111 0000", fill="0").hex(), "truncated"),
    ],
)
def test_parse_config_invalid_raises_protocol_error(
    hex_config: str, match: str
) -> None:
    with pytest.raises(CameraProtocolError, match=match):
        parse_config(hex_config)


def descriptor(data: bytes, pos: int) -> tuple[int, bytes, int]:
    """(tag, payload, end) of the descriptor at ``pos`` (ISO/IEC 14496-1 §8.3.3): the
    size is 7 bits per byte while the top bit is set."""
    tag = data[pos]
    pos += 1
    size = 0
    while True:
        byte = data[pos]
        pos += 1
        size = (size << 7) | (byte & 0x7F)
        if not byte & 0x80:
            break
    return tag, data[pos : pos + size], pos + size


@pytest.mark.parametrize("hex_config", ["1190", "1408", "2b8a0800"])
def test_esds_payload_nests_config_in_mpeg4_descriptors(hex_config: str) -> None:
    config = parse_config(hex_config)

    payload = esds_payload(config, track_id=2)

    tag, es, end = descriptor(payload, 0)
    assert (tag, end) == (0x03, len(payload))  # ES_Descriptor, and nothing after it
    assert es[:3] == b"\x00\x02\x00"  # ES_ID = track id; no dependency, URL or OCR
    tag, decoder_config, after = descriptor(es, 3)
    assert tag == 0x04  # DecoderConfigDescriptor
    # MPEG-4 audio (0x40); streamType 5 (audio) << 2, upStream 0, reserved 1
    assert decoder_config[:2] == b"\x40\x15"
    tag, specific, specific_end = descriptor(decoder_config, 13)
    assert (tag, specific) == (0x05, bytes.fromhex(hex_config))  # DecoderSpecificInfo
    assert specific_end == len(decoder_config)
    tag, sl_config, sl_end = descriptor(es, after)
    assert (tag, sl_config, sl_end) == (0x06, b"\x02", len(es))  # SLConfig: MP4


def test_esds_payload_sizes_use_four_byte_form() -> None:
    payload = esds_payload(parse_config("1190"), track_id=1)

    # 0x80 0x80 0x80 size: the long form every size field here takes
    assert payload[1:4] == b"\x80\x80\x80"
    assert payload[4] == len(payload) - 5
