"""Shared fixtures: real PostgreSQL and Redis servers started for the test session.

Nothing here is a mock: the servers are the same LocalPostgres/LocalRedis
that ``coachline serve`` starts when DATABASE_URL / REDIS_URL are unset.
Each test that needs a clean schema gets its own database.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio

from storage.local_servers import LocalPostgres, LocalRedis
from storage.migrations import apply_migrations


def pytest_addoption(parser: pytest.Parser) -> None:
    # Fuzzing and soak tests run a short, fixed budget by default so the suite stays inside
    # CI's time; --slow runs their long form (more examples, longer soaks).
    parser.addoption(
        "--slow",
        action="store_true",
        default=False,
        help="run fuzz and soak tests at their long budgets",
    )


@pytest.fixture(scope="session")
def slow_mode(request: pytest.FixtureRequest) -> bool:
    """True when the run asked for the long fuzz/soak budgets (--slow)."""
    return bool(request.config.getoption("--slow"))


@pytest.fixture(scope="session")
def local_postgres(tmp_path_factory: pytest.TempPathFactory):
    server = LocalPostgres(tmp_path_factory.mktemp("postgres"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def local_redis(tmp_path_factory: pytest.TempPathFactory):
    server = LocalRedis(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


def _dsn_for(server: LocalPostgres, database: str) -> str:
    return server.dsn_for(database)


@pytest_asyncio.fixture(loop_scope="session")
async def empty_database(local_postgres: LocalPostgres):
    """A brand-new, empty database on the session's PostgreSQL; dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    admin = await asyncpg.connect(local_postgres.admin_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    yield _dsn_for(local_postgres, name)
    admin = await asyncpg.connect(local_postgres.admin_dsn)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest_asyncio.fixture(loop_scope="session")
async def migrated_database(empty_database: str):
    """A fresh database with every migration applied; yields its DSN."""
    conn = await asyncpg.connect(empty_database)
    try:
        await apply_migrations(conn)
    finally:
        await conn.close()
    yield empty_database


@pytest.fixture
def redis_url(local_redis: LocalRedis) -> str:
    return local_redis.url


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent
