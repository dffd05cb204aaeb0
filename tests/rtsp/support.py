"""RTP packets and interleaved frames built by hand from RFC 3550 §5.1 and RFC 2326
§10.12, independently of the code under test."""

import random
import struct

H264_STAP_A = 24
H264_FU_A = 28
H265_AP = 48
H265_FU = 49

_NOISE = random.Random(2326)


def noise(size: int) -> bytes:
    """Payload bytes: arbitrary, but the same on every run."""
    return _NOISE.randbytes(size)


def rtp_packet(
    seq: int,
    ts: int,
    payload: bytes,
    *,
    marker: bool = False,
    payload_type: int = 96,
    ssrc: int = 0x1234_5678,
    csrcs: tuple[int, ...] = (),
    extension: bytes | None = None,
    padding: int = 0,
) -> bytes:
    """One RTP packet; ``extension`` is its data (whole 32-bit words), ``padding`` the
    number of padding bytes including the count byte that ends them."""
    flags = 0x80 | len(csrcs)
    if padding:
        flags |= 0x20
    if extension is not None:
        flags |= 0x10
    header = struct.pack(
        "!BBHII",
        flags,
        (0x80 if marker else 0) | payload_type,
        seq & 0xFFFF,
        ts & 0xFFFFFFFF,
        ssrc,
    )
    header += b"".join(struct.pack("!I", csrc) for csrc in csrcs)
    if extension is not None:
        assert len(extension) % 4 == 0
        header += struct.pack("!HH", 0xBEDE, len(extension) // 4) + extension
    pad = b"\x00" * (padding - 1) + bytes((padding,)) if padding else b""
    return header + payload + pad


def interleaved(channel: int, packet: bytes) -> bytes:
    """One RFC 2326 §10.12 frame: ``$``, channel, 16-bit length, then the packet."""
    return b"$" + bytes((channel,)) + struct.pack("!H", len(packet)) + packet


def length_prefixed(nals: list[bytes]) -> bytes:
    """NAL units as an MP4 sample with 4-byte lengths (ISO/IEC 14496-15 §5.3.2)."""
    return b"".join(len(nal).to_bytes(4, "big") + nal for nal in nals)


# H.264 (RFC 6184)


def h264_nal(kind: int, body: bytes, nri: int = 3) -> bytes:
    return bytes(((nri << 5) | kind,)) + body


def h264_stap_a(nals: list[bytes]) -> bytes:
    """A STAP-A payload (RFC 6184 §5.7.1): its NRI is the highest of its units'."""
    nri = max(nal[0] & 0x60 for nal in nals)
    sizes = b"".join(struct.pack("!H", len(nal)) + nal for nal in nals)
    return bytes((nri | H264_STAP_A,)) + sizes


def h264_fu_a(nal: bytes, pieces: int) -> list[bytes]:
    """``nal`` cut into ``pieces`` FU-A payloads (RFC 6184 §5.8)."""
    indicator = (nal[0] & 0xE0) | H264_FU_A
    body = nal[1:]
    step = -(-len(body) // pieces)
    chunks = [body[i : i + step] for i in range(0, len(body), step)]
    assert len(chunks) == pieces
    payloads = []
    for index, chunk in enumerate(chunks):
        header = nal[0] & 0x1F
        if index == 0:
            header |= 0x80
        if index == len(chunks) - 1:
            header |= 0x40
        payloads.append(bytes((indicator, header)) + chunk)
    return payloads


# H.265 (RFC 7798)


def h265_nal(kind: int, body: bytes, layer_id: int = 0, tid: int = 1) -> bytes:
    """A NAL unit with its 2-byte header (H.265 §7.3.1.2)."""
    header = (kind << 9) | (layer_id << 3) | tid
    return struct.pack("!H", header) + body


def h265_ap(nals: list[bytes]) -> bytes:
    """An aggregation packet (RFC 7798 §4.4.2) without DONL."""
    header = h265_nal(H265_AP, b"")
    return header + b"".join(struct.pack("!H", len(nal)) + nal for nal in nals)


def h265_fu(nal: bytes, pieces: int) -> list[bytes]:
    """``nal`` cut into ``pieces`` FU payloads (RFC 7798 §4.4.3)."""
    kind = (nal[0] >> 1) & 0x3F
    payload_header = bytes(((nal[0] & 0x81) | (H265_FU << 1), nal[1]))
    body = nal[2:]
    step = -(-len(body) // pieces)
    chunks = [body[i : i + step] for i in range(0, len(body), step)]
    assert len(chunks) == pieces
    payloads = []
    for index, chunk in enumerate(chunks):
        header = kind
        if index == 0:
            header |= 0x80
        if index == len(chunks) - 1:
            header |= 0x40
        payloads.append(payload_header + bytes((header,)) + chunk)
    return payloads


# AAC (RFC 3640)


def aac_payload(
    frames: list[bytes],
    size_bits: int = 13,
    index_bits: int = 3,
    sizes: list[int] | None = None,
) -> bytes:
    """AU-headers-length, the AU headers (size then index 0), padded to a byte, then the
    frames (RFC 3640 §3.2.1). ``sizes`` overrides the sizes the headers announce."""
    announced = sizes if sizes is not None else [len(frame) for frame in frames]
    bits = "".join(
        format(size, f"0{size_bits}b") + "0" * index_bits for size in announced
    )
    header_bits = len(bits)
    bits += "0" * (-len(bits) % 8)
    headers = int(bits, 2).to_bytes(len(bits) // 8, "big") if bits else b""
    return struct.pack("!H", header_bits) + headers + b"".join(frames)
