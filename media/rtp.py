"""RTP packets (RFC 3550): parse and build, plus sequence/timestamp arithmetic.

An RTP packet is a 12-byte fixed header, an optional list of contributing
sources (CSRC), an optional header extension, the payload, and optional
padding whose last byte counts the padding bytes. This module turns bytes
into an immutable ``RtpPacket`` and back, rejecting anything malformed with
``RtpError`` so one bad datagram never harms a call.

Sequence numbers (16 bit) and timestamps (32 bit) wrap around. The helpers
here compare them modulo their width (``seq_distance``, ``ts_distance``)
and turn them into ever-increasing integers (``Unwrapper``), which is what
jitter buffers and loss statistics need.
"""

from __future__ import annotations

import struct
from dataclasses import KW_ONLY, dataclass

__all__ = [
    "RTP_HEADER_SIZE",
    "RtpError",
    "RtpExtension",
    "RtpPacket",
    "Unwrapper",
    "looks_like_rtcp",
    "seq_distance",
    "seq_newer",
    "ts_distance",
]

RTP_VERSION = 2
RTP_HEADER_SIZE = 12
_FIXED = struct.Struct("!BBHII")
_EXTENSION_HEADER = struct.Struct("!HH")


class RtpError(ValueError):
    """A datagram is not a well-formed RTP packet, or a packet field is out of range."""


@dataclass(frozen=True, slots=True)
class RtpExtension:
    """The one header extension RFC 3550 allows: a 16-bit profile tag and 32-bit words."""

    profile: int
    data: bytes = b""

    def __post_init__(self) -> None:
        if not 0 <= self.profile <= 0xFFFF:
            raise RtpError(f"extension profile {self.profile} does not fit 16 bits")
        if len(self.data) % 4:
            raise RtpError(f"extension data must be whole 32-bit words, got {len(self.data)} bytes")
        if len(self.data) // 4 > 0xFFFF:
            raise RtpError("extension data is too long")


@dataclass(frozen=True, slots=True)
class RtpPacket:
    """One RTP packet.

    ``padding`` is the number of padding bytes after the payload (including
    the final count byte), 0 for none; ``build`` writes zero filler bytes,
    which is what senders do in practice.
    """

    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    # Keyword-only from here: ``RtpPacket(pt, seq, ts, ssrc, payload=..., marker=...)``
    # can never mix up the bytes and the flag.
    _: KW_ONLY
    marker: bool = False
    payload: bytes = b""
    csrc: tuple[int, ...] = ()
    extension: RtpExtension | None = None
    padding: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.payload_type <= 127:
            raise RtpError(f"payload type {self.payload_type} does not fit 7 bits")
        if not 0 <= self.sequence <= 0xFFFF:
            raise RtpError(f"sequence number {self.sequence} does not fit 16 bits")
        if not 0 <= self.timestamp <= 0xFFFFFFFF:
            raise RtpError(f"timestamp {self.timestamp} does not fit 32 bits")
        if not 0 <= self.ssrc <= 0xFFFFFFFF:
            raise RtpError(f"SSRC {self.ssrc} does not fit 32 bits")
        if len(self.csrc) > 15:
            raise RtpError(f"at most 15 CSRCs fit in a packet, got {len(self.csrc)}")
        if any(not 0 <= c <= 0xFFFFFFFF for c in self.csrc):
            raise RtpError("every CSRC must fit 32 bits")
        if not 0 <= self.padding <= 255:
            raise RtpError(f"padding {self.padding} must be 0..255 bytes")

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview) -> RtpPacket:
        """Parse one datagram; raises ``RtpError`` when it is not valid RTP."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise RtpError(f"RTP data must be bytes, got {type(data).__name__}")
        data = bytes(data)
        if len(data) < RTP_HEADER_SIZE:
            raise RtpError(f"packet of {len(data)} bytes is shorter than the RTP header")
        first, second, sequence, timestamp, ssrc = _FIXED.unpack_from(data)
        version = first >> 6
        if version != RTP_VERSION:
            raise RtpError(f"RTP version {version}, expected {RTP_VERSION}")
        has_padding = bool(first & 0x20)
        has_extension = bool(first & 0x10)
        csrc_count = first & 0x0F
        offset = RTP_HEADER_SIZE + 4 * csrc_count
        if offset > len(data):
            raise RtpError(f"packet too short for its {csrc_count} CSRCs")
        csrc = struct.unpack_from(f"!{csrc_count}I", data, RTP_HEADER_SIZE)

        extension = None
        if has_extension:
            if offset + 4 > len(data):
                raise RtpError("packet too short for its header extension")
            profile, words = _EXTENSION_HEADER.unpack_from(data, offset)
            end = offset + 4 + 4 * words
            if end > len(data):
                raise RtpError(f"header extension of {words} words runs past the packet end")
            extension = RtpExtension(profile, data[offset + 4 : end])
            offset = end

        end = len(data)
        padding = 0
        if has_padding:
            padding = data[-1]
            if padding == 0:
                raise RtpError("padding bit set but the padding count is zero")
            if offset + padding > len(data):
                raise RtpError(f"padding of {padding} bytes runs into the header")
            end -= padding
        return cls(
            payload_type=second & 0x7F,
            sequence=sequence,
            timestamp=timestamp,
            ssrc=ssrc,
            payload=data[offset:end],
            marker=bool(second & 0x80),
            csrc=tuple(csrc),
            extension=extension,
            padding=padding,
        )

    def build(self) -> bytes:
        """Serialise to wire format."""
        first = (
            (RTP_VERSION << 6)
            | (0x20 if self.padding else 0)
            | (0x10 if self.extension is not None else 0)
            | len(self.csrc)
        )
        second = (0x80 if self.marker else 0) | self.payload_type
        parts = [_FIXED.pack(first, second, self.sequence, self.timestamp, self.ssrc)]
        if self.csrc:
            parts.append(struct.pack(f"!{len(self.csrc)}I", *self.csrc))
        if self.extension is not None:
            ext = self.extension
            parts.append(_EXTENSION_HEADER.pack(ext.profile, len(ext.data) // 4))
            parts.append(ext.data)
        parts.append(bytes(self.payload))
        if self.padding:
            parts.append(bytes(self.padding - 1) + bytes((self.padding,)))
        return b"".join(parts)


def looks_like_rtcp(data: bytes | bytearray | memoryview) -> bool:
    """True for RTCP sharing the RTP port (RFC 5761): packet types 192..223 in byte 1."""
    return len(data) >= 2 and (data[0] >> 6) == RTP_VERSION and 192 <= data[1] <= 223


def seq_distance(a: int, b: int) -> int:
    """Signed steps from sequence number ``a`` to ``b`` (shortest way round 2**16)."""
    return ((b - a + 0x8000) & 0xFFFF) - 0x8000


def seq_newer(a: int, b: int) -> bool:
    """True when ``b`` comes after ``a`` in sequence order, across wraparound."""
    return seq_distance(a, b) > 0


def ts_distance(a: int, b: int) -> int:
    """Signed timestamp units from ``a`` to ``b`` (shortest way round 2**32)."""
    return ((b - a + 0x8000_0000) & 0xFFFF_FFFF) - 0x8000_0000


class Unwrapper:
    """Turns wrapping counters into ever-increasing integers.

    Each value is placed at the extended position nearest to the previous
    one, so late (reordered) values just before a wrap land before it and
    the count carries on past 65535 (or 2**32 - 1) without jumping back.
    The first value is returned as is; a late value from before a wrap at
    the very start of a stream comes out negative, which still orders right.
    """

    def __init__(self, bits: int) -> None:
        if bits not in (16, 32):
            raise ValueError("Unwrapper counts 16-bit sequence numbers or 32-bit timestamps")
        self._modulus = 1 << bits
        self._half = 1 << (bits - 1)
        self._last: int | None = None

    def unwrap(self, value: int) -> int:
        if not 0 <= value < self._modulus:
            raise RtpError(f"{value} does not fit the counter width")
        if self._last is None:
            self._last = value
            return value
        step = ((value - self._last + self._half) % self._modulus) - self._half
        extended = self._last + step
        # Only move forward: a late value must not drag later values back a cycle.
        self._last = max(self._last, extended)
        return extended

    def reset(self) -> None:
        self._last = None
