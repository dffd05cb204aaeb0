"""Reading H.264/H.265 parameter sets bit by bit (ITU-T H.264 §7.2, H.265 §7.2).

Parameter sets are a few dozen bytes read once per run, so clarity beats speed here.
"""

from nvr.errors import CameraProtocolError


def unescape_rbsp(nal_payload: bytes) -> bytes:
    """Removes emulation-prevention bytes (00 00 03 -> 00 00), H.264 §7.4.1."""
    if b"\x00\x00\x03" not in nal_payload:
        return nal_payload
    out = bytearray()
    zeros = 0
    for byte in nal_payload:
        if zeros >= 2 and byte == 3:
            zeros = 0
            continue
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    return bytes(out)


class BitReader:
    """MSB-first reader with Exp-Golomb codes; running off the end is a protocol error."""

    def __init__(self, data: bytes, what: str) -> None:
        self._value = int.from_bytes(data, "big")
        self._bits = len(data) * 8
        self._pos = 0
        self._what = what

    def u(self, count: int) -> int:
        """An unsigned integer of ``count`` bits."""
        if count == 0:
            return 0
        if self._pos + count > self._bits:
            raise CameraProtocolError(f"{self._what} is truncated")
        shift = self._bits - self._pos - count
        self._pos += count
        return (self._value >> shift) & ((1 << count) - 1)

    def flag(self) -> bool:
        return self.u(1) == 1

    def skip(self, count: int) -> None:
        self.u(count) if count <= 64 else [self.u(1) for _ in range(count)]

    def ue(self) -> int:
        """ue(v): unsigned Exp-Golomb (H.264 §9.1)."""
        zeros = 0
        while self.u(1) == 0:
            zeros += 1
            if zeros > 31:
                raise CameraProtocolError(
                    f"{self._what} has an invalid Exp-Golomb code"
                )
        return (1 << zeros) - 1 + self.u(zeros)

    def se(self) -> int:
        """se(v): signed Exp-Golomb."""
        code = self.ue()
        return (code + 1) // 2 if code & 1 else -(code // 2)
