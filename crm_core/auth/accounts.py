"""Organizations and users as sign-in sees them, and the first admin of a fresh install."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Any

import asyncpg

from crm_core.auth.passwords import hash_password, verify_password

_SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_DUMMY_HASH = hash_password("no such user, no such password")


class InvalidSlug(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class CreatedAdmin:
    org_id: str
    user_id: str
    created_org: bool


async def create_admin(
    conn: asyncpg.Connection, *, email: str, org_slug: str, password: str, name: str | None = None
) -> CreatedAdmin:
    """Create (or reset the password of) an admin in the organization ``org_slug``, creating the org."""
    if not _SLUG_RE.match(org_slug):
        raise InvalidSlug("organization slug: lowercase letters, digits and '-', at most 63 characters")
    password_hash = await asyncio.to_thread(hash_password, password)
    async with conn.transaction():
        org_id = await conn.fetchval("SELECT id FROM organizations WHERE slug = $1", org_slug)
        created_org = org_id is None
        if created_org:
            org_id = await conn.fetchval(
                "INSERT INTO organizations (name, slug) VALUES ($1, $1) RETURNING id", org_slug
            )
        user_id = await conn.fetchval(
            """
            INSERT INTO users (org_id, email, name, role, password_hash)
            VALUES ($1, lower($2), $3, 'admin', $4)
            ON CONFLICT (org_id, email) DO UPDATE
                SET role = 'admin', password_hash = EXCLUDED.password_hash, is_active = true,
                    updated_at = now()
            RETURNING id
            """,
            org_id, email, name or email.split("@")[0], password_hash,
        )
    return CreatedAdmin(str(org_id), str(user_id), created_org)


async def user_for_password(
    conn: asyncpg.Connection, email: str, password: str, org_slug: str | None = None
) -> asyncpg.Record | None:
    """The active user with this email (in ``org_slug`` when given) whose password matches."""
    rows = await conn.fetch(
        """
        SELECT u.* FROM users u JOIN organizations o ON o.id = u.org_id
        WHERE lower(u.email) = lower($1) AND u.is_active AND ($2::text IS NULL OR o.slug = $2)
        """,
        email, org_slug,
    )
    if not rows:
        # Spend the same time as a real check, so response times do not reveal which emails exist.
        await asyncio.to_thread(verify_password, password, _DUMMY_HASH)
        return None
    matches = []
    for row in rows:
        if await asyncio.to_thread(verify_password, password, row["password_hash"]):
            matches.append(row)
    # The same email and password in two organizations: the caller must name one.
    return matches[0] if len(matches) == 1 else None


async def active_user_profile(
    db: asyncpg.Pool | asyncpg.Connection, user_id: Any, org_id: Any
) -> asyncpg.Record | None:
    """The ``name`` and ``email`` of an active user of the organization, or None."""
    return await db.fetchrow(
        "SELECT name, email FROM users WHERE id = $1 AND org_id = $2 AND is_active", user_id, org_id)


async def user_team_id(db: asyncpg.Pool | asyncpg.Connection, user_id: str, org_id: str) -> str | None:
    """The user's team (as text), or None when they have none or are not of the organization."""
    return await db.fetchval(
        "SELECT team_id::text FROM users WHERE id = $1::uuid AND org_id = $2::uuid", user_id, org_id)
