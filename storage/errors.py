"""Failures of the storage layer that a caller can act on, and which failures mean "try later"."""

from __future__ import annotations

import asyncpg
from redis import exceptions as redis_errors


class StorageError(Exception):
    """Base class for storage failures."""


class MigrationError(StorageError):
    """A migration could not be applied, or the applied history disagrees with the files."""


class LocalServerError(StorageError):
    """An embedded PostgreSQL or Redis server could not be started or stopped."""


class DependencyUnavailable(StorageError):
    """A server the request needs (PostgreSQL, Redis, the disk) cannot serve it now."""


# What PostgreSQL and Redis raise when they are down, stalled, restarting or out of room.
# Bugs (a wrong query, a constraint, misuse of a connection) are not in here: they stay 500s.
_POSTGRES_UNAVAILABLE: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,  # class 08, incl. a connection lost mid-statement
    asyncpg.CannotConnectNowError,  # starting up / recovering
    asyncpg.AdminShutdownError,  # fast shutdown, restart
    asyncpg.CrashShutdownError,  # another backend crashed: every session is reset
    asyncpg.InsufficientResourcesError,  # class 53: disk full, out of memory, too many connections
    asyncpg.exceptions.IdleSessionTimeoutError,
    asyncpg.exceptions.PostgresSystemError,  # class 58: I/O error in the server
    asyncpg.QueryCanceledError,  # statement_timeout, or a cancel sent by the command timeout
    # The protocol state of a connection whose server vanished mid-statement ("cannot switch
    # to state ...; another operation is in progress"): that connection is done, retry.
    asyncpg.exceptions.InternalClientError,
)
_REDIS_UNAVAILABLE: tuple[type[BaseException], ...] = (
    redis_errors.ConnectionError,  # refused, reset, loading (BusyLoadingError)
    redis_errors.TimeoutError,
)
# asyncpg says "the connection or pool is closed" with a bare InterfaceError, as it says misuse.
_CLOSED_MESSAGES = ("connection is closed", "pool is closing", "pool is closed",
                    "connection was closed", "underlying connection is closed")


def is_unavailable(exc: BaseException) -> bool:
    """True when ``exc`` (or what it was explicitly raised from) means a dependency is
    unavailable now.

    OS errors count (refused, reset, timed out, no space left, a socket file gone), and
    ``TimeoutError`` is one of them: asyncpg's connect and command timeouts raise it. Only
    ``raise ... from`` causes are followed, not the implicit context: a bug in an
    ``except OSError`` block is still a bug.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (DependencyUnavailable, OSError, *_POSTGRES_UNAVAILABLE,
                                *_REDIS_UNAVAILABLE)):
            return True
        if isinstance(current, asyncpg.InterfaceError) and any(
                text in str(current) for text in _CLOSED_MESSAGES):
            return True
        current = current.__cause__
    return False
