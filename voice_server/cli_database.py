"""The database a ``coachline`` command talks to: found by the rules ``serve`` uses, and named.

``DATABASE_URL`` when set; else the embedded PostgreSQL under ``COACHLINE_DATA_DIR``
(default ``.data`` in the current directory), started for the command or, while ``serve``
runs on the same directory, shared with it. Each command that opens the database first
says which one on stderr (host and database, or the data directory; never a user's
password), so a command run from another directory cannot quietly fill a second, empty
database.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import parse_qs, unquote, urlsplit

import asyncpg

from voice_server.runtime import Runtime
from voice_server.settings import Settings


def database_location(url: str) -> str:
    """``scheme://host[:port][,host…]/database`` of a PostgreSQL URL: no user, password or query."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    hosts = parts.netloc.rpartition("@")[2]
    if not hosts:  # a Unix socket directory (or the default) given in the query
        hosts = query.get("host", ["localhost"])[0]
        if "port" in query:
            hosts += f":{query['port'][0]}"
    database = unquote(parts.path.lstrip("/")) or query.get("dbname", [""])[0] or "(default)"
    return f"{parts.scheme}://{hosts}/{database}"


def describe_database(settings: Settings) -> str:
    if settings.database_url is not None:
        return f"PostgreSQL {database_location(settings.database_url)} (DATABASE_URL)"
    where = (settings.data_dir / "postgres").resolve()
    source = (
        "COACHLINE_DATA_DIR"
        if "data_dir" in settings.model_fields_set
        else "COACHLINE_DATA_DIR unset: .data in the current directory"
    )
    state = "" if (where / "pgdata" / "PG_VERSION").is_file() else "; none there yet, creating it"
    return f"embedded PostgreSQL in {where} ({source}{state})"


def announce_database(settings: Settings, command: str) -> None:
    print(f"coachline {command}: database: {describe_database(settings)}", file=sys.stderr)


@asynccontextmanager
async def open_database(
    settings: Settings, command: str, *, migrate: bool
) -> AsyncIterator[asyncpg.Pool]:
    """The database pool, found as ``serve`` finds it (no Redis: no command here needs one)."""
    announce_database(settings, command)
    runtime = Runtime(settings)
    await runtime.start(migrate=migrate, redis=False)
    try:
        assert runtime.pool is not None
        yield runtime.pool
    finally:
        await runtime.close()
