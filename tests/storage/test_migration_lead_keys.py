"""A database from before lead uniqueness (schema 0018) with duplicate leads migrates forward
with every row kept; trigram similarity reads like pg_trgm's."""

import asyncpg
import pytest

from crm_core.api.trigrams import similarity
from storage.migrations import apply_migrations, load_migrations


async def _migrate_to(conn: asyncpg.Connection, last: int) -> None:
    await conn.execute(
        "CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL, "
        "checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
    )
    for migration in load_migrations():
        if migration.version > last:
            break
        async with conn.transaction():
            await conn.execute(migration.sql)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                migration.version,
                migration.name,
                migration.checksum,
            )


async def test_duplicate_leads_of_the_previous_schema_survive_the_migration(empty_database):
    conn = await asyncpg.connect(empty_database)
    try:
        await _migrate_to(conn, 18)
        org = await conn.fetchval(
            "INSERT INTO organizations (name, slug) VALUES ('O', 'o-mig') RETURNING id"
        )
        rows = [
            ("Ada", "ada@example.com", "+1 415 555 0134"),
            ("Ada", " ADA@example.com", "(415) 555-0134"),
            ("Ada L", "ada@example.com", "14155550134"),
            ("Bob", None, None),
            ("Bob", None, None),
        ]
        for name, email, phone in rows:
            await conn.execute(
                "INSERT INTO leads (org_id, first_name, email, phone) VALUES ($1, $2, $3, $4)",
                org,
                name,
                email,
                phone,
            )
        before = await conn.fetch("SELECT * FROM leads ORDER BY id")

        applied = await apply_migrations(conn)

        assert 22 in [m.version for m in applied]
        after = await conn.fetch("SELECT * FROM leads ORDER BY id")
        assert [dict(r) for r in after] == [dict(r) for r in before]
        # the new search index serves the old rows
        found = await conn.fetchval(
            "SELECT count(*) FROM leads WHERE search_document(first_name, last_name, company, email, "
            "translate(email, '@.+_-', '     ')) @@ to_tsquery('simple', 'ada:*')"
        )
        assert found == 3
    finally:
        await conn.close()


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (
            "Jon Smith",
            "John Smith",
            8 / 13,
        ),  # pg_trgm: similarity('Jon Smith', 'John Smith') = 0.615385
        ("acme", "Acme Inc", 5 / 9),  # 0.555556
        ("", "Acme", 0.0),
        ("same", "SAME", 1.0),
        ("a-b", "b a", 1.0),  # words, not punctuation
    ],
)
def test_trigram_similarity_is_pg_trgms(a, b, expected):
    assert similarity(a, b) == pytest.approx(expected)
