"""The single-node event bus: asyncio queues inside one process."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import deque
from dataclasses import dataclass, field

from storage.events import Event

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Delivery:
    event: Event
    attempt: int
    _group: "_Group | None" = None
    _token: int = 0

    async def ack(self) -> None:
        if self._group is not None:
            self._group.ack(self._token)


@dataclass(slots=True)
class _Group:
    """Work shared by a group's members; un-acked deliveries come back after a timeout."""

    redeliver_after_s: float
    ready: deque[tuple[Event, int]] = field(default_factory=deque)
    pending: dict[int, tuple[Event, int, float]] = field(default_factory=dict)
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    tokens: itertools.count = field(default_factory=itertools.count)

    def offer(self, event: Event, attempt: int = 1) -> None:
        self.ready.append((event, attempt))
        self.wakeup.set()

    def ack(self, token: int) -> None:
        self.pending.pop(token, None)

    def reclaim_expired(self) -> None:
        now = time.monotonic()
        for token, (event, attempt, deadline) in list(self.pending.items()):
            if deadline <= now:
                del self.pending[token]
                self.ready.append((event, attempt + 1))

    def next_deadline(self) -> float | None:
        return min((d for _, _, d in self.pending.values()), default=None)


class _MemorySubscription:
    def __init__(self, bus: "InProcessEventBus", pattern: str, group: str | None) -> None:
        self._bus = bus
        self.pattern = pattern
        self.group_name = group
        self._queue: asyncio.Queue[Event] = asyncio.Queue()
        self._closed = False

    def deliver(self, event: Event) -> None:
        self._queue.put_nowait(event)

    def __aiter__(self) -> "_MemorySubscription":
        return self

    async def __anext__(self) -> _Delivery:
        if self._closed:
            raise StopAsyncIteration
        if self.group_name is None:
            event = await self._queue.get()
            return _Delivery(event, 1)
        group = self._bus._groups[self.group_name]
        while True:
            group.reclaim_expired()
            while group.ready:
                event, attempt = group.ready.popleft()
                token = next(group.tokens)
                group.pending[token] = (event, attempt, time.monotonic() + group.redeliver_after_s)
                return _Delivery(event, attempt, group, token)
            group.wakeup.clear()
            deadline = group.next_deadline()
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                await asyncio.wait_for(group.wakeup.wait(), timeout)
            except asyncio.TimeoutError:
                pass
            if self._closed:
                raise StopAsyncIteration

    async def close(self) -> None:
        self._closed = True
        self._bus._unsubscribe(self)

    async def __aenter__(self) -> "_MemorySubscription":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class InProcessEventBus:
    """Events published here reach subscribers in this process only."""

    def __init__(self) -> None:
        self._fanout: list[_MemorySubscription] = []
        self._groups: dict[str, _Group] = {}
        self._group_patterns: dict[str, str] = {}

    async def publish(self, event: Event) -> str:
        for sub in list(self._fanout):
            if event.matches(sub.pattern):
                sub.deliver(event)
        for name, group in self._groups.items():
            if event.matches(self._group_patterns[name]):
                group.offer(event)
        return event.id

    async def subscribe(
        self, pattern: str, *, group: str | None = None, redeliver_after_s: float = 30.0
    ) -> _MemorySubscription:
        sub = _MemorySubscription(self, pattern, group)
        if group is None:
            self._fanout.append(sub)
        else:
            known = self._group_patterns.setdefault(group, pattern)
            if known != pattern:
                raise ValueError(
                    f"group {group!r} subscribes to {known!r}; all its members must use that pattern"
                )
            self._groups.setdefault(group, _Group(redeliver_after_s))
        return sub

    def _unsubscribe(self, sub: _MemorySubscription) -> None:
        if sub in self._fanout:
            self._fanout.remove(sub)
        elif sub.group_name is not None:
            group = self._groups.get(sub.group_name)
            if group is not None:
                group.wakeup.set()  # let a blocked reader notice it is closed

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        for sub in list(self._fanout):
            await sub.close()
