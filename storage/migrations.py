"""Ordered, idempotent SQL migrations.

A deliberately small runner rather than a framework: migrations are plain
``NNNN_name.sql`` files shipped inside the package, applied in order, each in
its own transaction, and recorded in ``schema_migrations`` with a checksum.
The checksum covers the statements, not the whole-line ``--`` comments, so a
comment can be reworded without refusing databases that applied the file.
A PostgreSQL advisory lock serialises concurrent runners (two replicas
starting at once), so the second one waits and then finds nothing to do.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from importlib import resources

import asyncpg

from storage.errors import MigrationError

log = logging.getLogger(__name__)

# Any fixed 64-bit number works; this one spells "coachlin" in ASCII.
_ADVISORY_LOCK_KEY = 0x636F6163686C696E
_FILE_RE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
# Databases migrated before checksums skipped comments hold the SHA-256 of each whole
# file as it was then; they are taken as the same migration and re-recorded.
_WHOLE_FILE_CHECKSUMS = {
    1: "8ca80e184d0d22591311c41a3806bbd6de274b3d8b6750b3c920befe48743dce",
    2: "b1fbee5e1c7ca6899dfeb0b0b1821617c83f104157d4a32adcb98c74afb4397f",
    3: "bf06847f078142581ecc9cc57aead73395df2e23071a3a78d079b1b8b38280e2",
    5: "61948e0380a33e6ceac3e8dd5c52e5e6e298e4473217f00f57bf4b6f7cb429cb",
    6: "cf70203fd910ca15962b92b54be22c90a245e80a07e2626230c10c7492a05ca1",
    7: "9b135c1de5644555fa64230bf57f7fcb5c86691fd2c5c1b72f5e424b25e709dd",
    8: "476a648d378c02eee866e5d28c9dbc67379f78e08afb8b4b2974925a97a67b83",
    9: "f733659dc8ec659f102f93e7eb252e7b73f5673bad57efc8976cda0cbe9f60d3",
    10: "3cd9c457b30c2b2e70cf73de7c5358d58b32c9631166896e435667cb3bbf769a",
    11: "418c86d06c65f9b61fd183b170f618141b4126380528f538ba7e05b83226bb99",
    12: "04b5380b930f3056cdd2e9783f510409ca4d33b1b5b90d4f07687a86bb1630a5",
    13: "3894873c003e3507de5d8119f2adac642a16d8f1c149bbd1d61e4d819c92228f",
}


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        statements = [line.rstrip() for line in self.sql.splitlines()
                      if line.strip() and not line.lstrip().startswith("--")]
        return hashlib.sha256("\n".join(statements).encode()).hexdigest()


def load_migrations() -> list[Migration]:
    """Read the migration files shipped in ``storage/migrations``, in order."""
    found: list[Migration] = []
    for entry in resources.files("storage").joinpath("migrations").iterdir():
        match = _FILE_RE.match(entry.name)
        if not match:
            continue
        found.append(Migration(int(match.group(1)), match.group(2), entry.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"duplicate migration versions in {versions}")
    return found


async def apply_migrations(conn: asyncpg.Connection, *, up_to: int | None = None) -> list[Migration]:
    """Apply every pending migration (or those numbered up to ``up_to``, for tests that load an
    older schema); return the ones applied (empty when up to date)."""
    shipped = load_migrations()
    migrations = [m for m in shipped if up_to is None or m.version <= up_to]
    await conn.execute("SELECT pg_advisory_lock($1)", _ADVISORY_LOCK_KEY)
    try:
        await conn.execute(
            """
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version     integer PRIMARY KEY,
                name        text NOT NULL,
                checksum    text NOT NULL,
                applied_at  timestamptz NOT NULL DEFAULT now()
            )
            """
        )
        rows = await conn.fetch("SELECT version, name, checksum FROM schema_migrations")
        applied = {r["version"]: r for r in rows}
        known = {m.version for m in shipped}
        unknown = sorted(set(applied) - known)
        if unknown:
            raise MigrationError(
                f"database has migrations {unknown} that this version of Coachline does not know; "
                "is an older release running against a newer database?"
            )
        done: list[Migration] = []
        for migration in migrations:
            row = applied.get(migration.version)
            if row is not None:
                if row["checksum"] == _WHOLE_FILE_CHECKSUMS.get(migration.version):
                    await conn.execute("UPDATE schema_migrations SET checksum = $2 WHERE version = $1",
                                       migration.version, migration.checksum)
                elif row["checksum"] != migration.checksum:
                    raise MigrationError(
                        f"migration {migration.version:04d}_{migration.name} was changed after it "
                        "was applied; add a new migration instead of editing an applied one"
                    )
                continue
            log.info("applying migration %04d_%s", migration.version, migration.name)
            try:
                async with conn.transaction():
                    await conn.execute(migration.sql)
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                        migration.version,
                        migration.name,
                        migration.checksum,
                    )
            except asyncpg.PostgresError as exc:
                raise MigrationError(
                    f"migration {migration.version:04d}_{migration.name} failed: {exc}"
                ) from exc
            done.append(migration)
        return done
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _ADVISORY_LOCK_KEY)


async def applied_versions(conn: asyncpg.Connection) -> list[int]:
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not exists:
        return []
    return [r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations ORDER BY 1")]
