import asyncio

import asyncpg
import pytest

from storage.errors import MigrationError
from storage.migrations import Migration, applied_versions, apply_migrations, load_migrations

CRM_TABLES = {
    "organizations", "teams", "users", "api_tokens", "leads", "deals", "calls",
    "transcript_segments", "recordings", "activities", "predictions", "audit_log", "outbox",
}


async def _tables(conn: asyncpg.Connection) -> set[str]:
    rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    return {r["tablename"] for r in rows}


async def test_migrations_apply_on_empty_database_then_are_a_no_op(empty_database):
    conn = await asyncpg.connect(empty_database)
    try:
        assert await applied_versions(conn) == []
        applied = await apply_migrations(conn)
        assert [m.version for m in applied] == [m.version for m in load_migrations()]
        assert CRM_TABLES <= await _tables(conn)
        assert await apply_migrations(conn) == []
        assert await applied_versions(conn) == [m.version for m in load_migrations()]
    finally:
        await conn.close()


async def test_every_business_table_carries_org_id(migrated_database):
    conn = await asyncpg.connect(migrated_database)
    try:
        rows = await conn.fetch(
            "SELECT table_name FROM information_schema.columns "
            "WHERE table_schema = 'public' AND column_name = 'org_id'"
        )
        with_org = {r["table_name"] for r in rows}
        assert CRM_TABLES - {"organizations"} <= with_org
    finally:
        await conn.close()


async def test_two_runners_at_once_apply_each_migration_once(empty_database):
    conns = [await asyncpg.connect(empty_database) for _ in range(2)]
    try:
        results = await asyncio.gather(*(apply_migrations(c) for c in conns))
        total = sorted(m.version for applied in results for m in applied)
        assert total == [m.version for m in load_migrations()]
        count = await conns[0].fetchval("SELECT count(*) FROM schema_migrations")
        assert count == len(load_migrations())
    finally:
        for c in conns:
            await c.close()


async def test_an_edited_applied_migration_is_refused(migrated_database):
    conn = await asyncpg.connect(migrated_database)
    try:
        await conn.execute("UPDATE schema_migrations SET checksum = 'x' WHERE version = 1")
        with pytest.raises(MigrationError, match="changed after it was applied"):
            await apply_migrations(conn)
    finally:
        await conn.close()


async def test_a_database_recorded_with_whole_file_checksums_is_taken_and_re_recorded(
        migrated_database):
    # what a database migrated by a release that hashed whole files (comments included) holds
    legacy = {1: "8ca80e184d0d22591311c41a3806bbd6de274b3d8b6750b3c920befe48743dce",
              13: "3894873c003e3507de5d8119f2adac642a16d8f1c149bbd1d61e4d819c92228f"}
    conn = await asyncpg.connect(migrated_database)
    try:
        for version, checksum in legacy.items():
            await conn.execute("UPDATE schema_migrations SET checksum = $2 WHERE version = $1",
                               version, checksum)
        assert await apply_migrations(conn) == []
        current = {m.version: m.checksum for m in load_migrations()}
        rows = await conn.fetch("SELECT version, checksum FROM schema_migrations")
        assert {r["version"]: r["checksum"] for r in rows} == current
    finally:
        await conn.close()


def test_the_checksum_ignores_whole_line_comments_but_not_statements():
    base = Migration(1, "x", "-- why this table exists\nCREATE TABLE t (a int);\n")
    reworded = Migration(1, "x", "-- a better reason\n\nCREATE TABLE t (a int);  \n")
    changed = Migration(1, "x", "-- why this table exists\nCREATE TABLE t (a bigint);\n")
    assert base.checksum == reworded.checksum
    assert base.checksum != changed.checksum


async def test_a_database_from_a_newer_release_is_refused(migrated_database):
    conn = await asyncpg.connect(migrated_database)
    try:
        await conn.execute(
            "INSERT INTO schema_migrations (version, name, checksum) VALUES (9999, 'future', 'x')"
        )
        with pytest.raises(MigrationError, match="does not know"):
            await apply_migrations(conn)
    finally:
        await conn.close()


async def test_schema_rejects_rows_that_break_its_rules(migrated_database):
    conn = await asyncpg.connect(migrated_database)
    try:
        org = await conn.fetchval("INSERT INTO organizations (name, slug) VALUES ('A', 'a') RETURNING id")
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute(
                "INSERT INTO users (org_id, email, name, role) VALUES ($1, 'x@a', 'X', 'boss')", org
            )
        with pytest.raises(asyncpg.NotNullViolationError):
            await conn.execute("INSERT INTO leads (first_name) VALUES ('no tenant')")
    finally:
        await conn.close()
