"""Which failures mean "a dependency is unavailable, try again" (503) and which are bugs (500)."""

from __future__ import annotations

import asyncpg
import pytest
from redis import exceptions as redis_errors

from storage.errors import is_unavailable


@pytest.mark.parametrize("exc", [
    ConnectionRefusedError(111, "Connection refused"), TimeoutError(), OSError(28, "No space left"),
    asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
    asyncpg.CannotConnectNowError("the database system is starting up"),
    asyncpg.AdminShutdownError("terminating connection due to administrator command"),
    asyncpg.TooManyConnectionsError("sorry, too many clients already"),
    asyncpg.InterfaceError("connection is closed"), asyncpg.InterfaceError("pool is closing"),
    redis_errors.ConnectionError("Error 111 connecting"), redis_errors.TimeoutError("Timeout reading"),
    redis_errors.BusyLoadingError("Redis is loading the dataset in memory"),
])
def test_unavailable(exc):
    assert is_unavailable(exc)


@pytest.mark.parametrize("exc", [
    ValueError("bad"), KeyError("x"), asyncpg.UniqueViolationError("duplicate key"),
    asyncpg.UndefinedColumnError("column does not exist"),
    asyncpg.InterfaceError("cannot perform operation: another operation is in progress"),
    redis_errors.ResponseError("WRONGTYPE"),
])
def test_bugs_stay_bugs(exc):
    assert not is_unavailable(exc)


def test_an_explicit_cause_counts_and_an_implicit_context_does_not():
    try:
        try:
            raise ConnectionResetError()
        except OSError as inner:
            raise RuntimeError("wrapped") from inner
    except RuntimeError as exc:
        assert is_unavailable(exc)
    try:
        try:
            raise ConnectionResetError()
        except OSError:
            raise KeyError("a bug in the handler")
    except KeyError as exc:
        assert not is_unavailable(exc)
