"""A bounded jitter buffer: RTP packets in any order in, gap-free PCM frames out.

UDP delivers packets late, twice, out of order or not at all. The buffer
keeps decoded audio keyed by (unwrapped) RTP timestamp and plays it out in
fixed frames, in timestamp order:

* A frame whose samples have all arrived is released at once — a server
  that transcribes and records has no sound card to pace, so in-order audio
  gets no added delay.
* A frame with a hole waits for the missing packet until either audio
  ``depth_ms`` past the frame has arrived (``pop()``), or the caller's clock
  says the frame is ``depth_ms`` overdue (``pop(now_ms)``); then the hole is
  concealed. The very first frame also waits ``depth_ms``, so a stream whose
  first packets arrive out of order starts at the right one.
* Packets for audio already played are dropped as late; duplicates are
  dropped; buffered audio is bounded by ``max_ms`` (oldest audio is played
  out concealed-free or dropped beyond it).

Concealment: ``SILENCE`` (default) fills holes with zeros — the speech
pipeline would rather see a clean gap than invented phonemes. ``REPEAT``
replays the last frame for a wholly missing frame at -6 dB per consecutive
loss and falls to silence after three frames (a cheap packet-loss
concealment for listeners); partial holes are always filled with zeros.

Streams: a new SSRC, or a timestamp jump of more than ``resync_ms``, starts
a new stream (``stats.resets``); the next frame's ``timestamp`` shows the
jump, so callers map each frame to their clock by its own timestamp.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from media.frames import AudioFormatError
from media.g711 import alaw_decode, ulaw_decode
from media.rtp import RtpError, RtpPacket, Unwrapper

__all__ = ["Concealment", "JitterBuffer", "JitterStats", "PlayoutFrame"]

# Static RTP payload types (RFC 3551) we can decode without SDP.
DEFAULT_DECODERS: Mapping[int, Callable[[bytes], np.ndarray]] = {0: ulaw_decode, 8: alaw_decode}
# How far back sequence numbers are remembered to spot duplicates.
_SEEN_WINDOW = 1024


class Concealment(StrEnum):
    SILENCE = "silence"
    REPEAT = "repeat"


@dataclass(frozen=True, slots=True)
class PlayoutFrame:
    """One frame of playout. ``timestamp`` is the unwrapped RTP timestamp of its
    first sample; ``concealed_samples`` counts samples filled in for lost audio."""

    pcm: np.ndarray
    timestamp: int
    concealed_samples: int

    @property
    def concealed(self) -> bool:
        return self.concealed_samples > 0


@dataclass(frozen=True, slots=True)
class JitterStats:
    received: int  # packets pushed with audio, including duplicates and late ones
    lost: int  # sequence numbers never received (RFC 3550 "expected - received")
    late: int  # arrived after their audio was played out; dropped
    reordered: int  # arrived after a packet with a higher sequence number
    duplicates: int  # sequence number already received; dropped
    ignored: int  # payload type without a decoder, or too long to buffer
    overflow_dropped_ms: float  # audio discarded to stay within max_ms
    concealed_frames: int
    resets: int  # SSRC changes and timestamp jumps
    jitter_ms: float  # RFC 3550 A.8 interarrival jitter estimate
    buffered_ms: float


class JitterBuffer:
    """Reorders one RTP stream's audio and plays it out in ``frame_ms`` frames."""

    def __init__(
        self,
        depth_ms: int = 60,
        frame_ms: int = 20,
        sample_rate: int = 8000,
        *,
        max_ms: int | None = None,
        resync_ms: int = 5000,
        concealment: Concealment = Concealment.SILENCE,
        decoders: Mapping[int, Callable[[bytes], np.ndarray]] | None = None,
    ) -> None:
        if sample_rate <= 0 or frame_ms <= 0 or depth_ms < 0:
            raise ValueError("sample_rate and frame_ms must be positive, depth_ms not negative")
        if (sample_rate * frame_ms) % 1000:
            raise ValueError(f"{frame_ms} ms is not a whole number of samples at {sample_rate} Hz")
        max_ms = max(4 * depth_ms, depth_ms + 10 * frame_ms) if max_ms is None else max_ms
        if max_ms < depth_ms + frame_ms:
            raise ValueError("max_ms must hold at least depth_ms plus one frame")
        self.sample_rate = sample_rate
        self.frame_samples = sample_rate * frame_ms // 1000
        self.depth_ms = depth_ms
        self.concealment = Concealment(concealment)
        self._depth = sample_rate * depth_ms // 1000
        self._max = sample_rate * max_ms // 1000
        self._resync = sample_rate * resync_ms // 1000
        self._decoders = dict(DEFAULT_DECODERS) | dict(decoders or {})
        self._counts = dict.fromkeys(
            ("received", "late", "reordered", "duplicates", "ignored", "concealed_frames"), 0
        )
        self._resets = self._lost_before = self._overflow_samples = 0
        self._jitter = 0.0  # in timestamp units, as RFC 3550 keeps it
        self._last_frame: np.ndarray | None = None
        self._lost_run = 0
        self._ssrc: int | None = None
        self._new_stream()

    def _new_stream(self) -> None:
        self._seq = Unwrapper(16)
        self._ts = Unwrapper(32)
        self._audio: dict[int, np.ndarray] = {}  # start timestamp -> samples
        self._starts: list[int] = []  # sorted keys of _audio
        self._play: int | None = None  # timestamp of the next sample to play
        self._newest_end: int | None = None
        self._first_seq: int | None = None
        self._highest_seq: int | None = None
        self._unique = 0
        self._seen: set[int] = set()
        self._transit: float | None = None
        self._min_offset_ms: float | None = None  # earliest (arrival - media time)

    # -- input -------------------------------------------------------------

    def push(
        self,
        item: RtpPacket | tuple[int, int, np.ndarray],
        arrival_ms: float | None = None,
    ) -> bool:
        """Add a packet, or ``(sequence, timestamp, pcm)``; returns whether it was buffered.

        ``arrival_ms`` is when it arrived, on the clock later given to
        ``pop(now_ms)``; by default ``time.monotonic()`` in ms.
        """
        if isinstance(item, RtpPacket):
            decode = self._decoders.get(item.payload_type)
            if decode is None:
                self._counts["ignored"] += 1
                return False
            if self._ssrc is not None and item.ssrc != self._ssrc:
                self._reset()
            self._ssrc = item.ssrc
            seq, ts, pcm = item.sequence, item.timestamp, decode(item.payload)
        else:
            seq, ts, pcm = item
        _check_item(seq, ts, pcm)
        if len(pcm) == 0:
            return False
        if len(pcm) > self._max:
            self._counts["ignored"] += 1
            return False
        arrival_ms = time.monotonic() * 1000 if arrival_ms is None else arrival_ms
        self._counts["received"] += 1

        start = self._ts.unwrap(ts)
        anchor = self._play if self._play is not None else self._newest_end
        if anchor is not None and abs(start - anchor) > self._resync:
            self._reset()
            start = self._ts.unwrap(ts)
        ext_seq = self._seq.unwrap(seq)
        if ext_seq in self._seen:
            self._counts["duplicates"] += 1
            return False
        self._note_sequence(ext_seq)
        self._note_arrival(start, arrival_ms)

        end = start + len(pcm)
        if self._play is not None and end <= self._play:
            self._counts["late"] += 1
            return False
        if self._play is not None and start < self._play:  # partly played: keep the rest
            pcm, start = pcm[self._play - start :], self._play
        if start not in self._audio:
            bisect.insort(self._starts, start)
        self._audio[start] = pcm
        self._newest_end = end if self._newest_end is None else max(self._newest_end, end)
        self._enforce_capacity()
        return True

    def _note_sequence(self, ext_seq: int) -> None:
        self._seen.add(ext_seq)
        if len(self._seen) > 2 * _SEEN_WINDOW:
            floor = self._highest_seq - _SEEN_WINDOW
            self._seen = {s for s in self._seen if s >= floor}
        self._unique += 1
        if self._first_seq is None or ext_seq < self._first_seq:
            self._first_seq = ext_seq
        if self._highest_seq is not None and ext_seq < self._highest_seq:
            self._counts["reordered"] += 1
        else:
            self._highest_seq = ext_seq

    def _note_arrival(self, start: int, arrival_ms: float) -> None:
        # RFC 3550 A.8: J += (|D| - J) / 16, D the change in transit time.
        transit = arrival_ms * self.sample_rate / 1000 - start
        if self._transit is not None:
            self._jitter += (abs(transit - self._transit) - self._jitter) / 16
        self._transit = transit
        offset = arrival_ms - start * 1000 / self.sample_rate
        if self._min_offset_ms is None or offset < self._min_offset_ms:
            self._min_offset_ms = offset

    def _enforce_capacity(self) -> None:
        oldest = self._play if self._play is not None else self._starts[0]
        excess = self._newest_end - oldest - self._max
        if excess > 0:
            self._overflow_samples += excess
            self._play = oldest + excess
            self._discard_before(self._play)

    def _reset(self) -> None:
        self._resets += 1
        self._lost_before += self._lost_now()
        self._new_stream()

    # -- output ------------------------------------------------------------

    def pop(self, now_ms: float | None = None) -> PlayoutFrame | None:
        """The next frame if it is due, else None. Call until None after each push,
        and/or every ``frame_ms`` with ``now_ms`` for a steady clock-paced output."""
        if self._play is None:
            if not self._starts or not self._due(self._starts[0], now_ms):
                return None
            self._play = self._starts[0]
        pcm, covered = self._gather(self._play, self.frame_samples)
        if covered < self.frame_samples and not self._due(self._play, now_ms):
            return None
        return self._emit(pcm, covered)

    def flush(self) -> list[PlayoutFrame]:
        """Everything still buffered, gaps concealed, the last frame padded with silence."""
        frames = []
        while self._starts:
            if self._play is None:
                self._play = self._starts[0]
            frames.append(self._emit(*self._gather(self._play, self.frame_samples)))
        return frames

    def _due(self, frame_start: int, now_ms: float | None) -> bool:
        """Has the wait for missing audio in the frame at ``frame_start`` run out?"""
        frame_end = frame_start + self.frame_samples
        if self._newest_end is not None and self._newest_end >= frame_end + self._depth:
            return True
        if now_ms is None or self._min_offset_ms is None:
            return False
        deadline = self._min_offset_ms + (frame_end * 1000 / self.sample_rate) + self.depth_ms
        return now_ms >= deadline

    def _gather(self, start: int, count: int) -> tuple[np.ndarray, int]:
        out = np.zeros(count, dtype=np.int16)
        have = np.zeros(count, dtype=bool)
        # Keys before ``start`` are only ever packets straddling it (see _discard_before).
        i = 0
        while i < len(self._starts) and self._starts[i] < start + count:
            key = self._starts[i]
            samples = self._audio[key]
            lo, hi = max(key, start), min(key + len(samples), start + count)
            if hi > lo:
                out[lo - start : hi - start] = samples[lo - key : hi - key]
                have[lo - start : hi - start] = True
            i += 1
        return out, int(have.sum())

    def _emit(self, pcm: np.ndarray, covered: int) -> PlayoutFrame:
        start = self._play
        concealed = self.frame_samples - covered
        if covered == 0:
            self._lost_run += 1
            repeat = self.concealment is Concealment.REPEAT and self._last_frame is not None
            if repeat and self._lost_run <= 3:
                pcm = (self._last_frame.astype(np.int32) >> self._lost_run).astype(np.int16)
        else:
            self._lost_run = 0
            self._last_frame = pcm
        if concealed:
            self._counts["concealed_frames"] += 1
        self._play = start + self.frame_samples
        self._discard_before(self._play)
        return PlayoutFrame(pcm=pcm, timestamp=start, concealed_samples=concealed)

    def _discard_before(self, position: int) -> None:
        """Forget audio that ends at or before ``position``; keep what straddles it."""
        cut = bisect.bisect_left(self._starts, position)
        survivors = []
        for key in self._starts[:cut]:
            if key + len(self._audio[key]) > position:
                survivors.append(key)
            else:
                del self._audio[key]
        self._starts[:cut] = survivors

    # -- statistics --------------------------------------------------------

    def _lost_now(self) -> int:
        if self._first_seq is None:
            return 0
        return max(self._highest_seq - self._first_seq + 1 - self._unique, 0)

    @property
    def buffered_ms(self) -> float:
        if self._newest_end is None or not self._starts:
            return 0.0
        start = self._play if self._play is not None else self._starts[0]
        return max(self._newest_end - start, 0) * 1000 / self.sample_rate

    @property
    def stats(self) -> JitterStats:
        return JitterStats(
            **self._counts,
            lost=self._lost_before + self._lost_now(),
            overflow_dropped_ms=self._overflow_samples * 1000 / self.sample_rate,
            resets=self._resets,
            jitter_ms=self._jitter * 1000 / self.sample_rate,
            buffered_ms=self.buffered_ms,
        )


def _check_item(seq: object, ts: object, pcm: object) -> None:
    if not isinstance(seq, int) or not 0 <= seq <= 0xFFFF:
        raise RtpError(f"sequence number {seq!r} does not fit 16 bits")
    if not isinstance(ts, int) or not 0 <= ts <= 0xFFFFFFFF:
        raise RtpError(f"timestamp {ts!r} does not fit 32 bits")
    if not isinstance(pcm, np.ndarray) or pcm.dtype != np.int16 or pcm.ndim != 1:
        raise AudioFormatError("jitter buffer audio must be a mono numpy int16 array")
