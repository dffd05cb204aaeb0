"""Helpers for the codec tests: bit strings and encoded streams."""

from dataclasses import dataclass
from pathlib import Path


def from_bits(text: str, fill: str = "1") -> bytes:
    """``"1 010 011"`` as bytes, the last one filled with ``fill`` bits."""
    bits = text.replace(" ", "")
    bits += fill * (-len(bits) % 8)
    return int(bits, 2).to_bytes(len(bits) // 8, "big")


@dataclass(frozen=True)
class Encoded:
    """One encoded stream: its NAL units (Annex B split), and ffprobe's view."""

    nals: list[bytes]
    probe: dict[str, object]
    path: Path

    def of_type(self, kind: int) -> list[bytes]:
        if self.probe["codec_name"] == "h264":
            return [nal for nal in self.nals if nal[0] & 0x1F == kind]
        return [nal for nal in self.nals if (nal[0] >> 1) & 0x3F == kind]


def split_annex_b(stream: bytes) -> list[bytes]:
    """NAL units between start codes (ITU-T H.264 Annex B); the zero byte of a 4-byte
    start code and trailing_zero_8bits are not part of any unit."""
    return [unit.rstrip(b"\x00") for unit in stream.split(b"\x00\x00\x01")[1:]]
