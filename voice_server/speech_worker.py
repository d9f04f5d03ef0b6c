"""``coachline speech-worker``: decode speech for media nodes, over Redis Streams.

Every worker reads the one request stream through one consumer group, so
several workers (on this machine or others, a GPU node among them) share the
load; a worker that dies leaves its unacknowledged requests behind, and
another claims them (``XAUTOCLAIM``) once they have been idle a few seconds —
the media node's own timeout covers the meantime. Decoding goes through a
local ``SpeechModelPool``, so the worker batches finals across calls and
nodes exactly as a media node's own pool does. Replies go to the reply stream
of the node that asked. A heartbeat key with a short TTL tells media nodes a
worker is alive.

The worker talks to Redis only: it opens no port.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import time

import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from media.stt.pool import SpeechModelPool
from voice_server import speech_wire as wire

log = logging.getLogger(__name__)

_READ_BLOCK_MS = 500
_CLAIM_EVERY_S = 1.0


class SpeechWorker:
    def __init__(
        self,
        redis: aioredis.Redis,
        pool: SpeechModelPool,
        *,
        worker_id: str | None = None,
        capacity: int = 0,
        claim_idle_ms: int = 5000,
        description: dict | None = None,
    ) -> None:
        self.redis = redis
        self.pool = pool
        self.worker_id = worker_id or f"{socket.gethostname()}-{os.getpid()}"
        # requests held at once: enough to fill the pool's batches, few enough that other
        # workers get their share of a burst
        opts = pool.options
        self.capacity = capacity or 2 * opts.workers * opts.max_batch
        self.claim_idle_ms = claim_idle_ms
        self.description = description or {}
        self._inflight: set[asyncio.Task] = set()
        self._held: set[bytes] = set()  # entry ids being served here: never claimed again
        self._slot = asyncio.Event()
        self.served = 0
        self.dropped = 0

    async def run(self, stop: asyncio.Event) -> None:
        await self._ensure_group()
        heartbeat = asyncio.create_task(self._heartbeat(stop), name="speech-worker-heartbeat")
        log.info(
            "speech worker %s serving (up to %d requests at once)", self.worker_id, self.capacity
        )
        backoff = 0.1
        next_claim = 0.0
        try:
            while not stop.is_set():
                free = self.capacity - len(self._inflight)
                if free <= 0:
                    self._slot.clear()
                    await _first(self._slot.wait(), stop.wait())
                    continue
                try:
                    entries = []
                    if time.monotonic() >= next_claim:
                        next_claim = time.monotonic() + _CLAIM_EVERY_S
                        entries += await self._claim(free)
                    if not entries:
                        entries += await self._read(free)
                    backoff = 0.1
                except ResponseError as exc:
                    if "NOGROUP" not in str(exc):
                        raise
                    await self._ensure_group()  # the stream was deleted under us
                    continue
                except (RedisError, OSError) as exc:
                    log.warning(
                        "speech worker: Redis read failed (%s); retrying in %.1f s",
                        exc.__class__.__name__,
                        backoff,
                    )
                    await _first(asyncio.sleep(backoff), stop.wait())
                    backoff = min(backoff * 2, 5.0)
                    continue
                for entry_id, fields in entries:
                    self._held.add(entry_id)
                    task = asyncio.create_task(self._serve(entry_id, fields))
                    self._inflight.add(task)
                    task.add_done_callback(lambda t, e=entry_id: self._done(t, e))
        finally:
            if self._inflight:
                await asyncio.gather(*self._inflight, return_exceptions=True)
            heartbeat.cancel()
            await asyncio.gather(heartbeat, return_exceptions=True)
            try:
                await self.redis.delete(wire.WORKER_PREFIX + self.worker_id)
            except (RedisError, OSError):
                pass

    def _done(self, task: asyncio.Task, entry_id: bytes) -> None:
        self._inflight.discard(task)
        self._held.discard(entry_id)
        self._slot.set()

    async def _ensure_group(self) -> None:
        try:
            await self.redis.xgroup_create(wire.REQUESTS, wire.GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _read(self, count: int) -> list:
        reply = await self.redis.xreadgroup(
            wire.GROUP, self.worker_id, {wire.REQUESTS: ">"}, count=count, block=_READ_BLOCK_MS
        )
        return [e for _, entries in reply or () for e in entries]

    async def _claim(self, count: int) -> list:
        # a dead worker's requests: pending to it and idle past claim_idle_ms
        reply = await self.redis.xautoclaim(
            wire.REQUESTS, wire.GROUP, self.worker_id, self.claim_idle_ms, "0-0", count=count
        )
        return [(i, f) for i, f in reply[1] if f and i not in self._held]

    async def _serve(self, entry_id: bytes, fields: dict[bytes, bytes]) -> None:
        started = time.monotonic()
        try:
            req = wire.decode_request(fields)
        except wire.WireError as exc:
            log.warning("speech worker: dropped a malformed request: %s", exc)
            await self._finish(entry_id, None)
            return
        result, error = None, None
        if req.final or time.time() * 1000 <= req.deadline_ms:
            try:
                # node/stream: the pool keeps one partial per stream, so a newer one replaces it
                future = self.pool.submit(
                    f"{req.node_id}/{req.stream_id}", req.request, final=req.final
                )
                result = await future
            except Exception as exc:  # the node falls back to its own pool on an error reply
                log.exception("speech worker: decode failed")
                error = exc.__class__.__name__
        if result is None and error is None:
            self.dropped += 1
        else:
            self.served += 1
        reply = wire.encode_reply(
            req.request_id, result, 1000 * (time.monotonic() - started), error
        )
        await self._finish(entry_id, (wire.replies_key(req.node_id), reply))

    async def _finish(self, entry_id: bytes, reply) -> None:
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                if reply is not None:
                    key, body = reply
                    pipe.xadd(key, body, maxlen=wire.REPLIES_MAXLEN, approximate=True)
                    pipe.expire(key, wire.REPLIES_TTL_S)
                pipe.xack(wire.REQUESTS, wire.GROUP, entry_id)
                pipe.xdel(wire.REQUESTS, entry_id)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            # unacknowledged: another worker (or this one) claims it again; the node's timeout covers it
            log.warning("speech worker: could not reply (%s)", exc.__class__.__name__)

    async def _heartbeat(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            body = json.dumps(
                {
                    **self.description,
                    "in_flight": len(self._inflight),
                    "served": self.served,
                    "dropped": self.dropped,
                }
            )
            try:
                async with self.redis.pipeline(transaction=False) as pipe:
                    pipe.set(wire.WORKER_PREFIX + self.worker_id, body, ex=wire.HEARTBEAT_TTL_S)
                    pipe.set(wire.ALIVE, self.worker_id, ex=wire.HEARTBEAT_TTL_S)
                    await pipe.execute()
            except (RedisError, OSError) as exc:
                log.warning("speech worker: heartbeat failed (%s)", exc.__class__.__name__)
            await _first(asyncio.sleep(1.0), stop.wait())


async def _first(*aws) -> None:
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def run_worker(
    redis_url: str,
    pool: SpeechModelPool,
    *,
    worker_id: str | None = None,
    description: dict | None = None,
) -> None:
    """Serve until SIGTERM/SIGINT; then finish what was taken and close the pool."""
    import signal

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    redis = aioredis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=5)
    try:
        await SpeechWorker(redis, pool, worker_id=worker_id, description=description).run(stop)
    finally:
        await pool.close()
        await redis.aclose()
