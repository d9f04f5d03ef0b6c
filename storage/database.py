"""The asyncpg connection pool and the health check the /ready probe uses."""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass

import asyncpg

from storage.errors import StorageError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PoolOptions:
    min_size: int = 1
    max_size: int = 10
    command_timeout_s: float = 30.0
    connect_timeout_s: float = 5.0


async def _init_connection(conn: asyncpg.Connection) -> None:
    # JSON columns come back as Python objects, not strings.
    for kind in ("json", "jsonb"):
        await conn.set_type_codec(kind, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def _release_without_reset_query(conn: asyncpg.Connection) -> None:
    """Skip asyncpg's reset query (UNLISTEN *, RESET ALL, advisory unlock, CLOSE ALL) on release.

    It costs a round trip on every release, and under load a round trip is most of a
    request's cost. Our pooled connections keep no session state: no LISTEN, no SET
    (only SET LOCAL inside transactions), no cursors WITH HOLD, and the one advisory lock
    (migrations) is unlocked in a ``finally``. asyncpg still rolls back a transaction left
    open before this runs. Code that needs session state takes its own connection.
    """
    # measured in scripts/bench/api.py (one fewer round trip per acquire).


async def create_pool(dsn: str, options: PoolOptions | None = None) -> asyncpg.Pool:
    """Open a pool; raises StorageError with the reason when the server is unreachable."""
    options = options or PoolOptions()
    try:
        return await asyncpg.create_pool(
            dsn,
            min_size=options.min_size,
            max_size=options.max_size,
            command_timeout=options.command_timeout_s,
            timeout=options.connect_timeout_s,
            init=_init_connection,
            reset=_release_without_reset_query,
        )
    except (OSError, asyncpg.PostgresError, asyncio.TimeoutError) as exc:
        raise StorageError(f"cannot connect to PostgreSQL: {exc}") from exc


async def ping(pool: asyncpg.Pool, timeout_s: float = 1.0) -> None:
    """Raise if PostgreSQL does not answer ``SELECT 1`` within ``timeout_s``.

    Each step has its own timeout and nothing cancels the probe from outside: asyncpg
    returns a connection to the pool in a shielded task, and cancelling the caller while
    a stalled server keeps that task waiting leaves its failure unretrieved (logged as
    "Task exception was never retrieved").
    """
    async with pool.acquire(timeout=timeout_s) as conn:
        await conn.fetchval("SELECT 1", timeout=timeout_s)


async def connect(dsn: str, timeout_s: float = 5.0) -> asyncpg.Connection:
    """One connection with the same type codecs as the pool's (for tools and tests)."""
    conn = await asyncpg.connect(dsn, timeout=timeout_s)
    await _init_connection(conn)
    return conn
