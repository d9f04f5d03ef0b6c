"""The long-lived resources of one Coachline node, opened and closed together.

With ``DATABASE_URL`` / ``REDIS_URL`` unset the node starts its own local
PostgreSQL and Redis under ``data_dir`` and stops them when it closes.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

import asyncpg
import redis.asyncio as aioredis

from storage.database import PoolOptions, create_pool
from storage.event_bus_memory import InProcessEventBus
from storage.event_bus_redis import RedisEventBus
from storage.events import EventBus
from storage.local_servers import LocalPostgres, LocalRedis
from storage.migrations import apply_migrations
from voice_server.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    pool: asyncpg.Pool | None = None
    redis: aioredis.Redis | None = None
    bus: EventBus | None = None
    database_url: str | None = None
    redis_url: str | None = None
    _local_postgres: LocalPostgres | None = field(default=None, repr=False)
    _local_redis: LocalRedis | None = field(default=None, repr=False)

    async def start_servers(self, *, redis: bool = True) -> None:
        """Resolve the database and Redis URLs, starting local servers where none is configured."""
        settings = self.settings
        self.database_url = settings.database_url
        self.redis_url = settings.redis_url
        # Started on this thread, not in a worker: the servers are armed to stop when the
        # thread that spawned them dies (storage/local_processes.die_with_parent), and only
        # the main thread lives as long as the process. Nothing else runs yet at start-up.
        if self.database_url is None:
            self._local_postgres = LocalPostgres(settings.data_dir / "postgres")
            self._local_postgres.start()
            self.database_url = self._local_postgres.dsn
        if self.redis_url is None and redis:
            self._local_redis = LocalRedis(settings.data_dir / "redis")
            self._local_redis.start()
            self.redis_url = self._local_redis.url

    async def start(self, *, migrate: bool = True, redis: bool = True) -> "Runtime":
        """Open everything; ``redis=False`` opens the database alone (the CLI's commands)."""
        try:
            await self.start_servers(redis=redis)
            assert self.database_url is not None
            self.pool = await create_pool(
                self.database_url,
                PoolOptions(min_size=self.settings.db_pool_min, max_size=self.settings.db_pool_max,
                            command_timeout_s=self.settings.db_command_timeout_s,
                            connect_timeout_s=self.settings.db_connect_timeout_s),
            )
            if migrate:
                async with self.pool.acquire() as conn:
                    applied = await apply_migrations(conn)
                if applied:
                    log.info("applied %d migration(s)", len(applied))
            if not redis:
                return self
            assert self.redis_url is not None
            self.redis = aioredis.from_url(self.redis_url, socket_timeout=5, socket_connect_timeout=5)
            if self.settings.event_bus_kind == "redis":
                self.bus = RedisEventBus(self.redis)
            else:
                self.bus = InProcessEventBus()
            log.info("event bus: %s", self.settings.event_bus_kind)
        except BaseException:
            await self.close()
            raise
        return self

    async def close(self) -> None:
        if self.bus is not None and not isinstance(self.bus, RedisEventBus):
            await self.bus.close()
        self.bus = None
        if self.redis is not None:
            await self.redis.aclose()
            self.redis = None
        if self.pool is not None:
            await self.pool.close()
            self.pool = None
        if self._local_redis is not None:
            await asyncio.to_thread(self._local_redis.stop)
            self._local_redis = None
        if self._local_postgres is not None:
            await asyncio.to_thread(self._local_postgres.stop)
            self._local_postgres = None

    async def __aenter__(self) -> "Runtime":
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
