"""Lines up a call's audio on the call clock and turns it into recording bytes as it arrives.

``RecordingAligner`` takes the ``AudioFrame``s of a call in arrival order and
returns fixed-size blocks of interleaved PCM16 little-endian: rep on the left
and customer on the right (stereo) when the carrier gives the parties
separately, one channel when it gives them mixed. Where a party sent nothing
— before it started, in gaps, after it stopped — its channel is silence, so
both parties stay in step with the call clock.

A party may trail the other by up to ``max_lag_ms`` (network jitter); audio
that arrives later than that, for time already written, is dropped and
counted. Nothing is kept longer than that window, so memory is bounded no
matter how long the call runs. Pure: no I/O, no clocks.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from media.frames import AudioFrame, Party
from media.resample import Resampler

RECORDING_RATES = (8000, 16000)


class ChannelLayout(StrEnum):
    STEREO = "stereo"  # left = rep, right = customer
    MONO = "mono"  # one mixed channel

    @property
    def channels(self) -> int:
        return 2 if self is ChannelLayout.STEREO else 1

    @classmethod
    def for_party(cls, party: Party) -> ChannelLayout:
        """The layout a call gets from its first frame's party."""
        return cls.MONO if party is Party.MIXED else cls.STEREO


@dataclass(frozen=True, slots=True)
class RecordingOptions:
    sample_rate: int = 8000
    block_ms: int = 100
    max_lag_ms: int = 500
    # Frames whose start is this close to where the party's last frame ended are
    # placed right after it: timestamps in whole ms would otherwise leave
    # one-sample clicks or overlaps at 24/48 kHz.
    snap_ms: int = 2

    def __post_init__(self) -> None:
        if self.sample_rate not in RECORDING_RATES:
            raise ValueError(
                f"recording sample rate must be one of {RECORDING_RATES}, got {self.sample_rate}"
            )
        if self.block_ms <= 0 or self.max_lag_ms < 0 or self.snap_ms < 0:
            raise ValueError("block_ms must be positive; max_lag_ms and snap_ms not negative")


@dataclass
class AlignerStats:
    frames: int = 0
    late_samples_dropped: int = 0
    frames_of_wrong_party: int = 0


@dataclass(slots=True)
class _ResampledStream:
    resampler: Resampler
    in_rate: int
    out_pos: int  # absolute output sample where the stream's next output goes
    next_in_ms: float = 0.0


class RecordingAligner:
    """Frames in, fixed-size blocks of interleaved PCM16 out."""

    def __init__(self, layout: ChannelLayout, options: RecordingOptions | None = None) -> None:
        self.layout = layout
        self.options = options or RecordingOptions()
        rate = self.options.sample_rate
        self._channels = layout.channels
        self.block_samples = rate * self.options.block_ms // 1000
        self.block_bytes = self.block_samples * self._channels * 2
        self._zero_block = bytes(self.block_bytes)
        self._lag = rate * self.options.max_lag_ms // 1000
        self._snap = rate * self.options.snap_ms // 1000
        # Per channel: samples from ``emitted`` on (zeros where nothing arrived yet).
        self._pending = [np.zeros(0, np.int16) for _ in range(self._channels)]
        self._filled_to = [0] * self._channels  # absolute sample index each channel has reached
        self._silenced: list[tuple[int, int]] = []  # absolute sample ranges to keep silent
        # Frames at another rate go through a streaming resampler per channel; its output is
        # placed back to back from where the stream started (the filter's delay is a constant
        # shift of a few samples), and a gap in the input starts a new stream.
        self._streams: list[_ResampledStream | None] = [None] * self._channels
        self.emitted = 0  # samples per channel already returned as blocks
        self.stats = AlignerStats()

    @property
    def frame_bytes(self) -> int:
        return self._channels * 2

    @property
    def emitted_ms(self) -> int:
        return self.emitted * 1000 // self.options.sample_rate

    def sample_at(self, ms: float) -> int:
        return int(round(ms * self.options.sample_rate / 1000))

    def byte_offset(self, ms: float) -> int:
        """Where call-clock time ``ms`` is in the recording's PCM bytes."""
        return self.sample_at(ms) * self.frame_bytes

    def _channel_of(self, party: Party) -> int | None:
        if self.layout is ChannelLayout.MONO:
            return 0 if party is Party.MIXED else None
        return {Party.REP: 0, Party.CUSTOMER: 1}.get(party)

    def push(self, frame: AudioFrame) -> list[bytes]:
        """Place a frame; return the blocks that are now complete (maybe none)."""
        channel = self._channel_of(frame.party)
        if channel is None:
            # A mixed frame in a two-party call (or the reverse) has no channel to go to.
            self.stats.frames_of_wrong_party += 1
            return []
        self.stats.frames += 1
        if frame.sample_rate == self.options.sample_rate:
            blocks = self._end_stream(channel)
            start = self.sample_at(frame.timestamp_ms)
            if abs(start - self._filled_to[channel]) <= self._snap:
                start = self._filled_to[channel]
            return blocks + self._place(channel, start, frame.pcm)
        stream = self._streams[channel]
        blocks: list[bytes] = []
        if (
            stream is None
            or stream.in_rate != frame.sample_rate
            or abs(frame.timestamp_ms - stream.next_in_ms) > max(self.options.snap_ms, 5)
        ):
            blocks = self._end_stream(channel)
            stream = _ResampledStream(
                Resampler(frame.sample_rate, self.options.sample_rate),
                frame.sample_rate,
                self.sample_at(frame.timestamp_ms),
            )
            self._streams[channel] = stream
        out = stream.resampler.process(frame.pcm)
        stream.next_in_ms = frame.end_ms
        start, stream.out_pos = stream.out_pos, stream.out_pos + len(out)
        return blocks + self._place(channel, start, out)

    def _end_stream(self, channel: int) -> list[bytes]:
        stream = self._streams[channel]
        if stream is None:
            return []
        self._streams[channel] = None
        return self._place(channel, stream.out_pos, stream.resampler.flush())

    def _place(self, channel: int, start: int, pcm: np.ndarray) -> list[bytes]:
        end = start + len(pcm)
        # Emit what the new audio pushes out of the lag window first, so buffers stay small
        # even when a party's clock jumps far ahead.
        blocks = self._emit(max(max(self._filled_to), end) - self._lag)
        if end <= self.emitted:
            self.stats.late_samples_dropped += len(pcm)
            return blocks
        if start < self.emitted:
            self.stats.late_samples_dropped += self.emitted - start
            pcm = pcm[self.emitted - start :]
            start = self.emitted
        offset = start - self.emitted
        buf = self._pending[channel]
        if len(buf) < offset + len(pcm):
            buf = np.concatenate([buf, np.zeros(offset + len(pcm) - len(buf), np.int16)])
            self._pending[channel] = buf
        buf[offset : offset + len(pcm)] = pcm
        for lo, hi in self._silenced:
            lo, hi = max(lo, start), min(hi, end)
            if lo < hi:
                buf[lo - self.emitted : hi - self.emitted] = 0
        self._filled_to[channel] = max(self._filled_to[channel], end)
        # Every party has reached a block end: no need to wait out the lag window.
        return blocks + self._emit(min(self._filled_to))

    def _emit(self, up_to: int) -> list[bytes]:
        blocks: list[bytes] = []
        size = self.block_samples
        while self.emitted + size <= up_to:
            blocks.append(self._take(size))
        return blocks

    def _take(self, n: int) -> bytes:
        if all(len(buf) == 0 for buf in self._pending) and n == self.block_samples:
            self.emitted += n
            return self._zero_block  # long gaps cost no memory: the same silent block, shared
        parts = []
        for i, buf in enumerate(self._pending):
            part = buf[:n]
            if len(part) < n:
                part = np.concatenate([part, np.zeros(n - len(part), np.int16)])
            parts.append(part)
            self._pending[i] = buf[n:]
        self.emitted += n
        self._silenced = [(lo, hi) for lo, hi in self._silenced if hi > self.emitted]
        if self._channels == 1:
            return parts[0].astype("<i2").tobytes()
        interleaved = np.empty(2 * n, np.int16)
        interleaved[0::2], interleaved[1::2] = parts
        return interleaved.astype("<i2").tobytes()

    def advance_to(self, ms: float) -> list[bytes]:
        """Declare everything before call-clock ``ms`` final: blocks up to there, silence where
        nothing arrived. For a caller that knows no more audio is coming for that time (a stall)."""
        for channel in range(self._channels):
            stream = self._streams[channel]
            if stream is not None and stream.out_pos < self.sample_at(ms):
                self._streams[channel] = None  # the stream's input stopped; its filter tail is lost
        return self._emit(self.sample_at(ms))

    def silence(self, start_ms: float, end_ms: float) -> tuple[int, int] | None:
        """Keep ``start_ms``..``end_ms`` silent on every channel.

        Audio not yet returned is silenced here (now, or when it arrives).
        Returns the byte range of the part already returned as blocks, which
        the caller must silence where it put them; None if there is none.
        """
        lo, hi = self.sample_at(start_ms), self.sample_at(end_ms)
        if hi <= lo:
            return None
        for buf in self._pending:
            a, b = max(0, lo - self.emitted), max(0, hi - self.emitted)
            buf[a:b] = 0
        if hi > self.emitted:
            self._silenced.append((max(lo, self.emitted), hi))
        if lo < self.emitted:
            return lo * self.frame_bytes, min(hi, self.emitted) * self.frame_bytes
        return None

    def finish(self) -> bytes:
        """Everything still held, up to the latest time any party reached (may be a short block)."""
        out = bytearray()
        for channel in range(self._channels):
            for block in self._end_stream(channel):
                out += block
        for block in self._emit(max(self._filled_to)):
            out += block
        rest = max(self._filled_to) - self.emitted
        if rest > 0:
            out += self._take(rest)
        return bytes(out)
