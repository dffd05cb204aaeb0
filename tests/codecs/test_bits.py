"""Bit reading and Exp-Golomb codes as ITU-T H.264 §7.2 and §9.1 define them."""

import pytest

from nvr.codecs.bits import BitReader, unescape_rbsp
from nvr.errors import CameraProtocolError
from tests.codecs.support import from_bits


def test_bit_reader_u_reads_msb_first_across_bytes() -> None:
    bits = BitReader(from_bits("101 1001101 010101"), "test")

    assert (bits.u(3), bits.u(7), bits.u(6)) == (0b101, 0b1001101, 0b010101)


def test_bit_reader_u_zero_bits_reads_nothing() -> None:
    bits = BitReader(b"\x80", "test")

    assert bits.u(0) == 0
    assert bits.flag() is True
    assert bits.flag() is False


def test_bit_reader_u_32_bits_whole_word() -> None:
    assert BitReader(b"\xde\xad\xbe\xef", "test").u(32) == 0xDEADBEEF


def test_bit_reader_skip_long_run_then_reads_next_bit() -> None:
    data = bytes(9) + b"\x01"  # 79 zeros, then a one

    bits = BitReader(data, "test")
    bits.skip(79)

    assert bits.u(1) == 1


def test_bit_reader_past_end_raises_protocol_error_naming_what() -> None:
    bits = BitReader(b"\xff", "H.264 SPS")
    bits.u(5)

    with pytest.raises(CameraProtocolError, match=r"H\.264 SPS is truncated"):
        bits.u(4)


def test_bit_reader_skip_past_end_raises_protocol_error() -> None:
    with pytest.raises(CameraProtocolError, match="truncated"):
        BitReader(bytes(8), "test").skip(65)


# ITU-T H.264 table 9-2: bit string -> codeNum
UE_CODES = [
    ("1", 0),
    ("010", 1),
    ("011", 2),
    ("00100", 3),
    ("00101", 4),
    ("00110", 5),
    ("00111", 6),
    ("0001000", 7),
    ("0001111", 14),
    ("000010000", 15),
    ("00000000111111111", 2**8 - 1 + 0xFF),
]


@pytest.mark.parametrize(("code", "value"), UE_CODES)
def test_bit_reader_ue_table_9_2(code: str, value: int) -> None:
    assert BitReader(from_bits(code), "test").ue() == value


def test_bit_reader_ue_codes_back_to_back() -> None:
    bits = BitReader(from_bits(" ".join(code for code, _ in UE_CODES)), "test")

    assert [bits.ue() for _ in UE_CODES] == [value for _, value in UE_CODES]


def test_bit_reader_ue_largest_32_bit_value() -> None:
    # 31 leading zeros: the longest code H.264 allows, codeNum up to 2**32 - 2
    bits = BitReader(from_bits("0" * 31 + "1" + "1" * 31), "test")

    assert bits.ue() == 2**32 - 2


def test_bit_reader_ue_32_leading_zeros_raises_protocol_error() -> None:
    with pytest.raises(CameraProtocolError, match="invalid Exp-Golomb"):
        BitReader(bytes(4) + b"\xff" * 4, "test").ue()


def test_bit_reader_ue_cut_off_raises_protocol_error() -> None:
    with pytest.raises(CameraProtocolError, match="truncated"):
        BitReader(from_bits("0000", fill="0"), "test").ue()


# ITU-T H.264 table 9-3: codeNum k -> (-1)**(k+1) * ceil(k / 2)
@pytest.mark.parametrize(
    ("code", "value"),
    [("1", 0), ("010", 1), ("011", -1), ("00100", 2), ("00101", -2), ("00110", 3)],
)
def test_bit_reader_se_table_9_3(code: str, value: int) -> None:
    assert BitReader(from_bits(code), "test").se() == value


@pytest.mark.parametrize(
    ("escaped", "rbsp"),
    [
        (b"\x00\x00\x03\x01", b"\x00\x00\x01"),
        (b"\x00\x00\x03\x00\x00\x03\x02", b"\x00\x00\x00\x00\x02"),
        (b"\x00\x00\x03\x03", b"\x00\x00\x03"),  # the second 03 follows no zeros
        (b"\x67\x00\x00\x03", b"\x67\x00\x00"),  # cabac_zero_word at the end
        (b"\x00\x03\x00\x00\x03", b"\x00\x03\x00\x00"),
        (b"\x00\x00\x04\x00\x03", b"\x00\x00\x04\x00\x03"),
    ],
)
def test_unescape_rbsp_removes_emulation_prevention_bytes(
    escaped: bytes, rbsp: bytes
) -> None:
    assert unescape_rbsp(escaped) == rbsp


def test_unescape_rbsp_without_escapes_returns_input() -> None:
    data = b"\x64\x00\x1f\xac\xd9\x40\x50"

    assert unescape_rbsp(data) is data
