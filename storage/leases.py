"""Leases in Redis: one holder at a time across every node, for jobs that must run once.

A lease is a key set with ``NX`` and an expiry, holding a random token; only
the holder (the one that knows the token) may renew or release it, checked
atomically in Lua. If the holder dies, the lease expires and another node
takes over after at most ``ttl_s``.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import Awaitable, Callable

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from storage.errors import is_unavailable

log = logging.getLogger(__name__)

_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
end
return 0
"""


class Lease:
    def __init__(self, client: aioredis.Redis, name: str, ttl_s: float = 15.0) -> None:
        self._client = client
        self.key = f"coachline:lease:{name}"
        self.ttl_ms = int(ttl_s * 1000)
        self._token = secrets.token_hex(16)
        self.held = False

    async def acquire(self) -> bool:
        self.held = bool(await self._client.set(self.key, self._token, nx=True, px=self.ttl_ms))
        return self.held

    async def renew(self) -> bool:
        renewed = await self._client.eval(_RENEW, 1, self.key, self._token, self.ttl_ms)
        self.held = bool(renewed)
        return self.held

    async def release(self) -> None:
        if self.held:
            await self._client.eval(_RELEASE, 1, self.key, self._token)
            self.held = False


async def run_singleton(
    client: aioredis.Redis,
    name: str,
    job: Callable[[], Awaitable[None]],
    *,
    every_s: float,
    ttl_s: float = 15.0,
    stop: asyncio.Event,
) -> None:
    """Run ``job`` every ``every_s`` seconds on whichever node holds the lease ``name``.

    Every node runs this loop; at any moment at most one of them runs the job.
    A job that takes longer than the lease keeps it by renewal between runs,
    so keep single runs shorter than ``ttl_s``.
    """
    lease = Lease(client, name, ttl_s)
    try:
        while not stop.is_set():
            try:
                has_it = await (lease.renew() if lease.held else lease.acquire())
                if has_it:
                    await job()
            except RedisError as exc:
                lease.held = False
                log.warning("lease %s unavailable: %s", name, exc)
            except Exception as exc:
                if not is_unavailable(exc):
                    log.exception("singleton job %s failed", name)
                else:  # retried next period; a traceback each time would bury the cause
                    log.warning("singleton job %s skipped, a dependency is unavailable: %s: %s",
                                name, type(exc).__name__, exc)
            try:
                await asyncio.wait_for(stop.wait(), every_s)
            except asyncio.TimeoutError:
                pass
    finally:
        try:
            await lease.release()
        except RedisError:
            pass
