"""RTP packets (RFC 3550) into access units: H.264 (RFC 6184), H.265 (RFC 7798), AAC
(RFC 3640).

This is the recorder's hot path: every packet of every camera passes here, so a packet
is parsed in place in the connection's buffer (``buf[start:end]``) and only its payload
is copied. A depacketizer emits one ``AccessUnit`` per frame, with its NAL units already
length-prefixed as MP4 samples want them (ISO/IEC 14496-15 §5.3.2), and counts what it
had to drop: a sequence gap discards the frame being assembled, never the run.
"""

import struct
from collections.abc import Callable
from dataclasses import dataclass

_HEADER = struct.Struct("!BBHI")
_U16 = struct.Struct("!H")

_H264_STAP_A = 24
_H264_FU_A = 28
_H264_IDR = 5
_H265_AP = 48
_H265_FU = 49
_H265_IRAP = range(16, 22)  # BLA, IDR and CRA pictures (ITU-T H.265 table 7-1)


@dataclass(slots=True)
class AccessUnit:
    """One frame: ``data`` joined is the MP4 sample (length-prefixed NAL units for
    video, the raw frame for audio). ``rtp_time`` is the RTP timestamp unwrapped past
    2**32, starting from the first packet's 32-bit value."""

    rtp_time: int
    data: list[bytes]
    size: int
    keyframe: bool


@dataclass(slots=True)
class RtpStats:
    packets: int = 0
    bytes: int = 0
    lost: int = 0  # sequence numbers that never arrived
    dropped_units: int = 0  # frames discarded because a packet of them was lost
    malformed: int = 0  # packets whose payload broke the payload format


class Depacketizer:
    """The RTP layer shared by every payload format: header, sequence and time."""

    def __init__(self, emit: Callable[[AccessUnit], None]) -> None:
        self._emit = emit
        self.stats = RtpStats()
        self._next_seq: int | None = None
        self._last_ts32: int | None = None
        self._ext_ts = 0

    def packet(self, buf: bytes | bytearray, start: int, end: int) -> None:
        """Takes one RTP packet occupying ``buf[start:end]``."""
        if end - start < 12:
            self.stats.malformed += 1
            return
        b0, b1, seq, ts32 = _HEADER.unpack_from(buf, start)
        if b0 >> 6 != 2:
            self.stats.malformed += 1
            return
        payload = start + 12 + 4 * (b0 & 0x0F)
        if b0 & 0x10:  # header extension (RFC 3550 §5.3.1)
            if payload + 4 > end:
                self.stats.malformed += 1
                return
            payload += 4 + 4 * _U16.unpack_from(buf, payload + 2)[0]
        if b0 & 0x20:  # padding: the last byte counts it
            end -= buf[end - 1]
        if payload >= end:
            self.stats.malformed += 1
            return
        stats = self.stats
        stats.packets += 1
        stats.bytes += end - start
        expected = self._next_seq
        self._next_seq = (seq + 1) & 0xFFFF
        if expected is not None and seq != expected:
            stats.lost += (seq - expected) & 0xFFFF
            self._lost()
        if ts32 != self._last_ts32:
            if self._last_ts32 is None:
                self._ext_ts = ts32
            else:
                delta = (ts32 - self._last_ts32) & 0xFFFFFFFF
                self._ext_ts += delta - (1 << 32) if delta >= 1 << 31 else delta
            self._last_ts32 = ts32
        self._payload(buf, payload, end, b1 & 0x80, self._ext_ts)

    def _payload(
        self, buf: bytes | bytearray, start: int, end: int, marker: int, ts: int
    ) -> None:
        raise NotImplementedError

    def _lost(self) -> None:
        """A packet went missing: drop whatever frame it belonged to."""
        raise NotImplementedError


class _VideoDepacketizer(Depacketizer):
    """Frame assembly common to H.264 and H.265: NAL units grouped by timestamp."""

    def __init__(self, emit: Callable[[AccessUnit], None]) -> None:
        super().__init__(emit)
        self._chunks: list[bytes] = []
        self._size = 0
        self._unit_ts: int | None = None
        self._keyframe = False
        self._damaged = False
        self._fragments: list[bytes] | None = None  # the FU being reassembled

    def _start_unit(self, ts: int) -> None:
        if self._unit_ts is not None and ts != self._unit_ts:
            self._finish_unit()  # its marker packet was lost or never sent
        self._unit_ts = ts

    def _add_nal(self, nal: bytes, keyframe: bool) -> None:
        self._chunks.append(len(nal).to_bytes(4, "big"))
        self._chunks.append(nal)
        self._size += 4 + len(nal)
        if keyframe:
            self._keyframe = True

    def _finish_unit(self) -> None:
        if self._fragments is not None:
            self._fragments = None
            self._damaged = True  # a fragmented NAL unit never got its end
        if self._chunks and not self._damaged and self._unit_ts is not None:
            self._emit(
                AccessUnit(self._unit_ts, self._chunks, self._size, self._keyframe)
            )
        elif self._chunks or self._damaged:
            self.stats.dropped_units += 1
        self._chunks = []
        self._size = 0
        self._keyframe = False
        self._damaged = False
        self._unit_ts = None

    def _lost(self) -> None:
        self._damaged = self._unit_ts is not None or self._fragments is not None
        self._fragments = None


class H264Depacketizer(_VideoDepacketizer):
    """RFC 6184 non-interleaved mode: single NAL units, STAP-A and FU-A."""

    def _payload(
        self, buf: bytes | bytearray, start: int, end: int, marker: int, ts: int
    ) -> None:
        self._start_unit(ts)
        kind = buf[start] & 0x1F
        if kind == _H264_FU_A:
            self._fu_a(buf, start, end)
        elif 0 < kind < _H264_STAP_A:
            self._add_nal(bytes(buf[start:end]), kind == _H264_IDR)
        elif kind == _H264_STAP_A:
            self._stap_a(buf, start + 1, end)
        else:
            self.stats.malformed += 1  # interleaved-mode packets (STAP-B, MTAP, FU-B)
            self._damaged = True
        if marker:
            self._finish_unit()

    def _fu_a(self, buf: bytes | bytearray, start: int, end: int) -> None:
        if end - start < 3:
            self.stats.malformed += 1
            self._damaged = True
            return
        fu = buf[start + 1]
        if fu & 0x80:  # start bit: rebuild the NAL header from indicator and FU header
            self._fragments = [bytes(((buf[start] & 0xE0) | (fu & 0x1F),))]
        elif self._fragments is None:
            # the start of this NAL unit is missing: lost (then _lost() saw a gap), or
            # sent before the stream began, which no gap shows; either way the frame
            # is incomplete
            self._damaged = True
            return
        self._fragments.append(bytes(buf[start + 2 : end]))
        if fu & 0x40:
            nal = b"".join(self._fragments)
            self._fragments = None
            self._add_nal(nal, fu & 0x1F == _H264_IDR)

    def _stap_a(self, buf: bytes | bytearray, pos: int, end: int) -> None:
        while pos + 2 <= end:
            size = _U16.unpack_from(buf, pos)[0]
            pos += 2
            if size == 0 or pos + size > end:
                self.stats.malformed += 1
                self._damaged = True
                return
            self._add_nal(bytes(buf[pos : pos + size]), buf[pos] & 0x1F == _H264_IDR)
            pos += size


class H265Depacketizer(_VideoDepacketizer):
    """RFC 7798 without DONL: single NAL units, aggregation packets and FUs."""

    def _payload(
        self, buf: bytes | bytearray, start: int, end: int, marker: int, ts: int
    ) -> None:
        self._start_unit(ts)
        if end - start < 3:
            self.stats.malformed += 1
            self._damaged = True
            return
        kind = (buf[start] >> 1) & 0x3F
        if kind == _H265_FU:
            self._fu(buf, start, end)
        elif kind < _H265_AP:
            self._add_nal(bytes(buf[start:end]), kind in _H265_IRAP)
        elif kind == _H265_AP:
            self._aggregation(buf, start + 2, end)
        else:
            self.stats.malformed += 1  # PACI and reserved types
            self._damaged = True
        if marker:
            self._finish_unit()

    def _fu(self, buf: bytes | bytearray, start: int, end: int) -> None:
        fu = buf[start + 2]
        kind = fu & 0x3F
        if fu & 0x80:
            header = bytes(((buf[start] & 0x81) | (kind << 1), buf[start + 1]))
            self._fragments = [header]
        elif self._fragments is None:
            self._damaged = True  # the start of this NAL unit is missing, as in H.264
            return
        self._fragments.append(bytes(buf[start + 3 : end]))
        if fu & 0x40:
            nal = b"".join(self._fragments)
            self._fragments = None
            self._add_nal(nal, kind in _H265_IRAP)

    def _aggregation(self, buf: bytes | bytearray, pos: int, end: int) -> None:
        while pos + 2 <= end:
            size = _U16.unpack_from(buf, pos)[0]
            pos += 2
            if size < 2 or pos + size > end:
                self.stats.malformed += 1
                self._damaged = True
                return
            kind = (buf[pos] >> 1) & 0x3F
            self._add_nal(bytes(buf[pos : pos + size]), kind in _H265_IRAP)
            pos += size


class AacDepacketizer(Depacketizer):
    """RFC 3640 AAC-hbr (and AAC-lbr): AU headers, then the access units they size.

    ``frame_ticks`` is the RTP duration of one AAC frame (1024 samples at the clock
    rate); several frames in one packet follow each other at that spacing.
    """

    def __init__(
        self,
        emit: Callable[[AccessUnit], None],
        size_bits: int = 13,
        index_bits: int = 3,
        frame_ticks: int = 1024,
    ) -> None:
        super().__init__(emit)
        self._size_bits = size_bits
        self._index_bits = index_bits
        self._frame_ticks = frame_ticks
        self._partial: list[bytes] | None = None  # one AU split over packets
        self._partial_size = 0
        self._partial_ts = 0

    def _payload(
        self, buf: bytes | bytearray, start: int, end: int, marker: int, ts: int
    ) -> None:
        if end - start < 2:
            self.stats.malformed += 1
            return
        header_bits = _U16.unpack_from(buf, start)[0]
        data = start + 2 + (header_bits + 7) // 8
        if data > end:
            self.stats.malformed += 1
            return
        sizes = self._au_sizes(buf, start + 2, header_bits)
        if self._partial is not None:
            self._continue_partial(buf, data, end, marker)
            return
        for index, size in enumerate(sizes):
            available = end - data
            if size > available and len(sizes) == 1:
                self._partial = [bytes(buf[data:end])]
                self._partial_size, self._partial_ts = size, ts
                return
            if size > available:
                self.stats.malformed += 1
                return
            frame = bytes(buf[data : data + size])
            unit_ts = ts + index * self._frame_ticks
            self._emit(AccessUnit(unit_ts, [frame], size, True))
            data += size

    def _au_sizes(
        self, buf: bytes | bytearray, pos: int, header_bits: int
    ) -> list[int]:
        per_header = self._size_bits + self._index_bits
        if per_header == 0:
            return []
        value = int.from_bytes(buf[pos : pos + (header_bits + 7) // 8], "big")
        value >>= (8 - header_bits % 8) % 8
        count = header_bits // per_header
        sizes = []
        for index in range(count):
            shift = (count - 1 - index) * per_header + self._index_bits
            sizes.append((value >> shift) & ((1 << self._size_bits) - 1))
        return sizes

    def _continue_partial(
        self, buf: bytes | bytearray, data: int, end: int, marker: int
    ) -> None:
        assert self._partial is not None
        self._partial.append(bytes(buf[data:end]))
        received = sum(len(chunk) for chunk in self._partial)
        if received < self._partial_size and not marker:
            return
        frame = b"".join(self._partial)
        self._partial = None
        if len(frame) != self._partial_size:
            self.stats.dropped_units += 1
            return
        self._emit(AccessUnit(self._partial_ts, [frame], len(frame), True))

    def _lost(self) -> None:
        if self._partial is not None:
            self._partial = None
            self.stats.dropped_units += 1
