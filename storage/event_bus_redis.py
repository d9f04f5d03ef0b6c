"""The many-node event bus: one Redis Stream shared by every Coachline process.

Fan-out subscribers read the stream from the position it had when they
subscribed (``XREAD``), so a Redis blip only delays them: they resume from the
last id they saw. Groups use Redis consumer groups (``XREADGROUP``); entries
left unacknowledged by a dead or stuck consumer are claimed again with
``XAUTOCLAIM`` after ``redeliver_after_s``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections import deque
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from storage.events import Event

log = logging.getLogger(__name__)

_BLOCK_MS = 1000
_BATCH = 100


@dataclass(slots=True)
class _RedisDelivery:
    event: Event
    attempt: int
    _sub: "_RedisSubscription"
    _entry_id: bytes | None

    async def ack(self) -> None:
        if self._entry_id is not None and self._sub.group is not None:
            await self._sub._client.xack(self._sub._stream, self._sub.group, self._entry_id)


class _RedisSubscription:
    def __init__(
        self,
        client: aioredis.Redis,
        stream: str,
        pattern: str,
        group: str | None,
        start_id: bytes,
        redeliver_after_s: float,
    ) -> None:
        self._client = client
        self._stream = stream
        self.pattern = pattern
        self.group = group
        self._last_id = start_id
        self._consumer = f"c-{uuid.uuid4().hex[:12]}"
        self._redeliver_ms = int(redeliver_after_s * 1000)
        self._buffer: deque[_RedisDelivery] = deque()
        self._closed = False
        self._backoff_s = 0.1

    def __aiter__(self) -> "_RedisSubscription":
        return self

    async def __anext__(self) -> _RedisDelivery:
        while not self._buffer:
            if self._closed:
                raise StopAsyncIteration
            try:
                await (self._fill_fanout() if self.group is None else self._fill_group())
                self._backoff_s = 0.1
            except (RedisError, OSError) as exc:
                log.warning("event bus read failed (%s); retrying in %.1f s", exc, self._backoff_s)
                await asyncio.sleep(self._backoff_s)
                self._backoff_s = min(self._backoff_s * 2, 5.0)
        return self._buffer.popleft()

    def _decode(self, fields: dict[bytes, bytes]) -> Event | None:
        try:
            return Event.from_dict(json.loads(fields[b"event"]))
        except (KeyError, ValueError, TypeError) as exc:
            log.error("skipping malformed event on the bus: %s", exc)
            return None

    async def _fill_fanout(self) -> None:
        reply = await self._client.xread(
            {self._stream: self._last_id}, count=_BATCH, block=_BLOCK_MS
        )
        for _stream, entries in reply or []:
            for entry_id, fields in entries:
                self._last_id = entry_id
                event = self._decode(fields)
                if event is not None and event.matches(self.pattern):
                    self._buffer.append(_RedisDelivery(event, 1, self, None))

    async def _fill_group(self) -> None:
        assert self.group is not None
        claimed = await self._client.xautoclaim(
            self._stream, self.group, self._consumer, self._redeliver_ms, "0-0", count=_BATCH
        )
        entries = [(eid, f) for eid, f in claimed[1] if f] if claimed else []
        attempt = 2
        if not entries:
            reply = await self._client.xreadgroup(
                self.group, self._consumer, {self._stream: ">"}, count=_BATCH, block=_BLOCK_MS
            )
            entries = [e for _stream, es in reply or [] for e in es]
            attempt = 1
        for entry_id, fields in entries:
            event = self._decode(fields)
            if event is None or not event.matches(self.pattern):
                await self._client.xack(self._stream, self.group, entry_id)
                continue
            self._buffer.append(_RedisDelivery(event, attempt, self, entry_id))

    async def close(self) -> None:
        self._closed = True

    async def __aenter__(self) -> "_RedisSubscription":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class RedisEventBus:
    """Events published here reach subscribers on every node sharing the Redis server."""

    def __init__(self, client: aioredis.Redis, *, stream: str = "coachline:events",
                 max_length: int = 100_000) -> None:
        self._client = client
        self._stream = stream
        self._max_length = max_length
        self._group_patterns: dict[str, str] = {}

    @classmethod
    def from_url(cls, url: str, **kwargs: object) -> "RedisEventBus":
        return cls(aioredis.from_url(url), **kwargs)  # type: ignore[arg-type]

    async def publish(self, event: Event) -> str:
        await self._client.xadd(
            self._stream,
            {"event": json.dumps(event.to_dict(), separators=(",", ":"))},
            maxlen=self._max_length,
            approximate=True,
        )
        return event.id

    async def subscribe(
        self, pattern: str, *, group: str | None = None, redeliver_after_s: float = 30.0
    ) -> _RedisSubscription:
        if group is None:
            last = await self._client.xrevrange(self._stream, count=1)
            start_id = last[0][0] if last else b"0-0"
        else:
            known = self._group_patterns.setdefault(group, pattern)
            if known != pattern:
                raise ValueError(
                    f"group {group!r} subscribes to {known!r}; all its members must use that pattern"
                )
            try:
                await self._client.xgroup_create(self._stream, group, id="$", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
            start_id = b">"
        return _RedisSubscription(
            self._client, self._stream, pattern, group, start_id, redeliver_after_s
        )

    async def position(self) -> str | None:
        """The id of the newest event on the stream (None when it is empty)."""
        last = await self._client.xrevrange(self._stream, count=1)
        return _text(last[0][0]) if last else None

    async def wait_consumed(self, groups: tuple[str, ...], timeout_s: float, *,
                            after: str | None = None, poll_s: float = 0.1) -> bool:
        """Wait until ``groups`` have read and acknowledged every event published so far.

        Only events newer than the position ``after`` count as unacknowledged: an
        old event that keeps failing must not hold up the wait. A stopping node
        calls this so the events it published last (a call's final transcript) are
        persisted before it exits. False if ``timeout_s`` passed first.
        """
        target = await self.position()
        if target is None:
            return True
        low = f"({after}" if after is not None else "-"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            infos = {_text(i["name"]): i for i in await self._client.xinfo_groups(self._stream)}
            done = True
            for name in groups:
                info = infos.get(name)
                if info is None or _stream_id(info["last-delivered-id"]) < _stream_id(target):
                    done = False
                    break
                if info["pending"] and await self._client.xpending_range(
                        self._stream, name, min=low, max=target, count=1):
                    done = False
                    break
            if done:
                return True
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(poll_s)

    async def ping(self) -> None:
        await self._client.ping()

    async def close(self) -> None:
        await self._client.aclose()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _stream_id(value: bytes | str) -> tuple[int, int]:
    millis, _, seq = _text(value).partition("-")
    return int(millis), int(seq or 0)
