"""Telephone keypad digits sent in RTP (RFC 4733 "telephone-event", ex RFC 2833).

A key press is not one packet but a series: the first (marker bit set)
announces the event, updates every ~50 ms grow its duration, and the end
packet (E bit) is usually sent three times. Every packet of one event
carries the same RTP timestamp — the event's start — which is how a
receiver tells "the same press again" from "a new press of the same key".
``DtmfReceiver`` folds that stream into exactly one ``DtmfDigit`` per
press, surviving lost start/end packets, retransmits and reordering.
"""

from __future__ import annotations

import struct
from collections import deque
from dataclasses import dataclass

from media.rtp import RtpPacket, ts_distance

__all__ = ["DTMF_DIGITS", "DtmfDigit", "DtmfError", "DtmfEvent", "DtmfReceiver", "DtmfStats"]

# Event codes 0-15 are the keypad (RFC 4733 section 3.2); higher codes are tones
# (fax, modem, ...) that are not digits.
DTMF_DIGITS = "0123456789*#ABCD"
_PAYLOAD = struct.Struct("!BBH")
_MAX_DURATION = 0xFFFF
# How many finished events to remember so their repeated end packets are ignored.
_REMEMBERED_EVENTS = 64


class DtmfError(ValueError):
    """A telephone-event payload is malformed or a field is out of range."""


@dataclass(frozen=True, slots=True)
class DtmfEvent:
    """The 4-byte telephone-event payload: event code, end bit, volume, duration.

    ``volume`` is the power level in -dBm0 (0..63); ``duration`` is in RTP
    timestamp units since the event's start (its timestamp).
    """

    event: int
    end: bool = False
    volume: int = 10
    duration: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.event <= 255:
            raise DtmfError(f"event code {self.event} does not fit 8 bits")
        if not 0 <= self.volume <= 63:
            raise DtmfError(f"volume {self.volume} must be 0..63 (-dBm0)")
        if not 0 <= self.duration <= _MAX_DURATION:
            raise DtmfError(f"duration {self.duration} does not fit 16 bits")

    @classmethod
    def parse(cls, payload: bytes | bytearray | memoryview) -> DtmfEvent:
        if not isinstance(payload, (bytes, bytearray, memoryview)):
            raise DtmfError(f"telephone-event payload must be bytes, got {type(payload).__name__}")
        # Exactly one event per payload (redundancy would come wrapped in RFC 2198).
        if len(payload) != _PAYLOAD.size:
            raise DtmfError(f"telephone-event payload must be 4 bytes, got {len(payload)}")
        event, flags, duration = _PAYLOAD.unpack(payload)
        # The R bit (0x40) is reserved: ignored on receipt, as the RFC asks.
        return cls(event=event, end=bool(flags & 0x80), volume=flags & 0x3F, duration=duration)

    @classmethod
    def for_digit(cls, digit: str, **fields: object) -> DtmfEvent:
        code = DTMF_DIGITS.find(digit.upper()) if len(digit) == 1 else -1
        if code < 0:
            raise DtmfError(f"{digit!r} is not a DTMF digit (one of {DTMF_DIGITS})")
        return cls(event=code, **fields)

    def build(self) -> bytes:
        return _PAYLOAD.pack(self.event, (0x80 if self.end else 0) | self.volume, self.duration)

    @property
    def digit(self) -> str | None:
        """The keypad character, or None for non-DTMF tones."""
        return DTMF_DIGITS[self.event] if self.event < len(DTMF_DIGITS) else None


@dataclass(frozen=True, slots=True)
class DtmfDigit:
    """One key press, reported once.

    ``start_ms`` is the press's start relative to the receiver's origin
    timestamp; ``ended`` is False when every end packet was lost and the
    press was closed by a later event, ``expire`` or ``finish`` instead.
    """

    digit: str
    start_ms: int
    duration_ms: int
    timestamp: int
    volume: int
    ended: bool


@dataclass(slots=True)
class DtmfStats:
    packets: int = 0
    digits: int = 0
    repeats: int = 0  # retransmits and repeated end packets of a known event
    late: int = 0  # packets of an event older than the newest one seen
    inconsistent: int = 0  # same timestamp, different event code
    non_digit_events: int = 0


@dataclass(slots=True)
class _Pending:
    timestamp: int  # the event's start; identifies it
    event: int
    volume: int
    segment_timestamp: int  # where the current long-event segment started
    segment_duration: int
    earlier_segments: int = 0  # timestamp units in finished long-event segments

    @property
    def duration(self) -> int:
        return self.earlier_segments + self.segment_duration


class DtmfReceiver:
    """Turns telephone-event RTP packets of one stream into digits.

    Feed it only the packets of the negotiated telephone-event payload type.
    ``origin_timestamp`` is the RTP timestamp that maps to 0 ms — typically
    the first audio packet's timestamp of the same stream; when None, the
    first event's timestamp is used. ``clock_rate`` is the event clock
    (8000 for ``telephone-event/8000``). A new SSRC starts a fresh event
    history; its timestamps have a new random base, so the caller should
    set ``origin_timestamp`` for it too.
    """

    def __init__(
        self,
        clock_rate: int = 8000,
        origin_timestamp: int | None = None,
        end_timeout_ms: int = 1000,
    ) -> None:
        if clock_rate <= 0:
            raise ValueError("clock_rate must be positive")
        self.clock_rate = clock_rate
        self.origin_timestamp = origin_timestamp
        self.end_timeout_ms = end_timeout_ms
        self.stats = DtmfStats()
        self._ssrc: int | None = None
        self._pending: _Pending | None = None
        self._newest: int | None = None  # timestamp of the newest event seen
        self._done: deque[int] = deque(maxlen=_REMEMBERED_EVENTS)

    def push(self, packet: RtpPacket) -> list[DtmfDigit]:
        """Take one packet; returns the digits it completes (usually none or one)."""
        event = DtmfEvent.parse(packet.payload)
        self.stats.packets += 1
        digits: list[DtmfDigit] = []
        if self._ssrc is not None and packet.ssrc != self._ssrc:
            # A new sender: finish what the old one started, forget its events.
            digits += self.finish()
            self._newest = None
            self._done.clear()
        self._ssrc = packet.ssrc
        ts = packet.timestamp
        if self.origin_timestamp is None:
            self.origin_timestamp = ts

        if ts in self._done:
            self.stats.repeats += 1
            return digits
        pending = self._pending
        is_new = False
        if pending is not None and ts == pending.timestamp:
            pass
        elif pending is not None and ts == pending.segment_timestamp:
            ts = pending.timestamp  # a later segment of a long event
        elif pending is not None and self._continues(pending, event, packet):
            pending.earlier_segments += pending.segment_duration
            pending.segment_timestamp, pending.segment_duration = ts, 0
            ts = pending.timestamp
        elif self._newest is not None and ts_distance(self._newest, ts) < 0:
            self.stats.late += 1
            return digits
        else:
            # A new press; if the previous one never got its end packet, it ends here.
            digits += self.finish()
            pending = self._pending = _Pending(ts, event.event, event.volume, ts, 0)
            self._newest = ts
            is_new = True

        if event.event != pending.event:
            self.stats.inconsistent += 1
            return digits
        if event.duration <= pending.segment_duration and not (event.end or is_new):
            self.stats.repeats += 1  # a retransmitted (or reordered) update
        pending.segment_duration = max(pending.segment_duration, event.duration)
        if event.end:
            digits += self._close(ended=True)
        return digits

    def expire(self, timestamp: int) -> list[DtmfDigit]:
        """Close a press whose end packets never came, given the stream's current timestamp."""
        pending = self._pending
        if pending is None:
            return []
        silent_for = ts_distance(pending.segment_timestamp, timestamp) - pending.segment_duration
        if silent_for * 1000 >= self.end_timeout_ms * self.clock_rate:
            return self._close(ended=False)
        return []

    def finish(self) -> list[DtmfDigit]:
        """Close any press still open (end of call or stream)."""
        return self._close(ended=False) if self._pending is not None else []

    @staticmethod
    def _continues(pending: _Pending, event: DtmfEvent, packet: RtpPacket) -> bool:
        # RFC 4733 2.5.2.1: an event longer than the 16-bit duration goes on in a
        # new segment whose timestamp is the old one plus the full duration.
        return (
            not packet.marker
            and event.event == pending.event
            and pending.segment_duration == _MAX_DURATION
            and ts_distance(pending.segment_timestamp, packet.timestamp) == _MAX_DURATION
        )

    def _close(self, ended: bool) -> list[DtmfDigit]:
        pending, self._pending = self._pending, None
        self._done.append(pending.timestamp)
        if pending.segment_timestamp != pending.timestamp:
            self._done.append(pending.segment_timestamp)
        digit = DtmfEvent(pending.event).digit
        if digit is None:
            self.stats.non_digit_events += 1
            return []
        self.stats.digits += 1
        offset = ts_distance(self.origin_timestamp, pending.timestamp)
        return [
            DtmfDigit(
                digit=digit,
                start_ms=offset * 1000 // self.clock_rate,
                duration_ms=pending.duration * 1000 // self.clock_rate,
                timestamp=pending.timestamp,
                volume=pending.volume,
                ended=ended,
            )
        ]
