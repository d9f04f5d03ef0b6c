"""Putting one party's media back in order and on the call clock.

Carriers number their media chunks and stamp them with the stream's clock.
``ChunkOrder`` puts a track's chunks back in order within a small window and
reports the ones that never came; ``PartyTimeline`` lays a party's audio on
the call clock, filling what is missing with silence so that sample N of every
party is the same instant of the call.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import numpy as np

from media.frames import AudioFrame, Party

T = TypeVar("T")


@dataclass(slots=True)
class Released(Generic[T]):
    items: list[T] = field(default_factory=list)
    missing: int = 0  # chunks given up on (never arrived within the window)
    held: bool = False  # the chunk came early and waits for the ones before it
    late: bool = False  # the chunk came after later ones (it was out of order) and is in place now
    stale: bool = False  # a repeat, or later than a chunk already passed on
    out_of_range: bool = False  # implausibly far ahead: refused, so it cannot skip the track


class ChunkOrder(Generic[T]):
    """Re-orders one track's numbered chunks, holding at most ``window`` early ones."""

    def __init__(self, window: int = 5, first: int | None = None, max_ahead: int = 3000) -> None:
        self._window = window
        self._max_ahead = max_ahead  # 3000 chunks: a minute of 20 ms media
        self._next = first
        self._held: dict[int, T] = {}

    def add(self, number: int, item: T) -> Released[T]:
        out: Released[T] = Released()
        if self._next is None:
            self._next = number
        if number < self._next or number in self._held:
            out.stale = True
            return out
        if number - self._next > self._max_ahead:
            out.out_of_range = True
            return out
        out.held = number != self._next
        out.late = not out.held and bool(self._held)
        self._held[number] = item
        self._release(out)
        while len(self._held) > self._window:
            # Waited long enough: the missing chunks are lost, move past them.
            earliest = min(self._held)
            out.missing += earliest - self._next
            self._next = earliest
            self._release(out)
        return out

    def flush(self) -> Released[T]:
        out: Released[T] = Released()
        while self._held:
            earliest = min(self._held)
            out.missing += earliest - (self._next or earliest)
            self._next = earliest
            self._release(out)
        return out

    def _release(self, out: Released[T]) -> None:
        while self._next in self._held:
            out.items.append(self._held.pop(self._next))
            self._next += 1


class PartyTimeline:
    """One party's audio laid end to end on the call clock.

    A chunk stamped later than where the party's audio has reached (by at least
    one frame) means audio is missing: silence fills the hole, up to
    ``max_fill_ms``; beyond that the timeline jumps. Smaller differences are
    clock jitter and the audio stays contiguous.
    """

    def __init__(self, party: Party, sample_rate: int, frame_ms: int = 20,
                 max_fill_ms: int = 60_000) -> None:
        self.party = party
        self.sample_rate = sample_rate
        self.position = 0  # samples laid down so far
        self.filled_samples = 0
        self._frame = sample_rate * frame_ms // 1000
        self._max_fill = sample_rate * max_fill_ms // 1000

    @property
    def position_ms(self) -> int:
        return self.position * 1000 // self.sample_rate

    def place(self, timestamp_ms: int, pcm: np.ndarray) -> Iterator[AudioFrame]:
        start = timestamp_ms * self.sample_rate // 1000
        hole = start - self.position
        if hole >= self._frame:
            if hole <= self._max_fill:
                yield from self._silence(hole)
            self.position = start
        frame = AudioFrame(pcm, self.sample_rate, self.party, self.position_ms)
        self.position += len(pcm)
        yield frame

    def _silence(self, samples: int) -> Iterator[AudioFrame]:
        self.filled_samples += samples
        while samples > 0:
            n = min(samples, self._frame)
            yield AudioFrame(np.zeros(n, dtype=np.int16), self.sample_rate, self.party, self.position_ms)
            self.position += n
            samples -= n
