"""Organizations and users as sign-in sees them, and the first admin of a fresh install."""

from __future__ import annotations

import asyncio
import re
import unicodedata
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import asyncpg

from crm_core.auth.passwords import hash_password, verify_password
from crm_core.auth.tokens import end_sign_ins

_SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_DUMMY_HASH = hash_password("no such user, no such password")


class InvalidSlug(ValueError):
    pass


class SlugTaken(ValueError):
    """The slug belongs to an organization of another name."""

    def __init__(self, slug: str, owner: str) -> None:
        super().__init__(
            f"organization slug {slug!r} is taken by {owner!r}: to add an admin there, pass "
            f"--org {owner!r} (or --org {slug}); for a new organization choose another slug "
            "with --slug"
        )
        self.slug, self.owner = slug, owner


def slug_for(name: str) -> str:
    """The organization slug a display name gives: ASCII-folded, lowercase, runs of anything
    else as one '-' ("Acme Café & Co." -> "acme-cafe-co")."""
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "-", folded.lower()).strip("-")[:63].rstrip("-")
    if not slug:
        raise InvalidSlug(f"no slug can be made from {name!r} (no ASCII letters or digits): "
                          "choose one with --slug")
    return slug


def check_slug(slug: str) -> str:
    if not _SLUG_RE.match(slug):
        raise InvalidSlug(f"organization slug {slug!r}: lowercase letters, digits and '-', "
                          "at most 63 characters")
    return slug


@dataclass(frozen=True, slots=True)
class CreatedAdmin:
    org_id: str
    user_id: str
    created_org: bool
    org_slug: str
    org_name: str


async def create_admin(
    conn: asyncpg.Connection, *, email: str, org_slug: str, password: str, name: str | None = None,
    org_name: str | None = None,
) -> CreatedAdmin:
    """Create (or reset the password of) an admin in the organization ``org_slug``, creating the
    org (named ``org_name``, else the slug). An existing org is the one meant when ``org_name``
    is absent, is its name (any case) or is the slug itself; otherwise the slug is taken."""
    check_slug(org_slug)
    org_name = (org_name or "").strip() or None
    password_hash = await asyncio.to_thread(hash_password, password)
    async with conn.transaction():
        # ON CONFLICT: two installs scripted at once both end up in the one organization
        org_id = await conn.fetchval(
            "INSERT INTO organizations (name, slug) VALUES ($1, $2) ON CONFLICT (slug) DO NOTHING "
            "RETURNING id",
            org_name or org_slug, org_slug,
        )
        created_org = org_id is not None
        if created_org:
            owner = org_name or org_slug
        else:
            org_id, owner = await conn.fetchrow(
                "SELECT id, name FROM organizations WHERE slug = $1", org_slug)
            if org_name is not None and org_name.casefold() not in (owner.casefold(), org_slug):
                raise SlugTaken(org_slug, owner)
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
        # a reset password ends whatever the old one opened
        await end_sign_ins(conn, str(org_id), str(user_id))
    return CreatedAdmin(str(org_id), str(user_id), created_org, org_slug, owner)


class Charge(Protocol):
    async def refund(self) -> None: ...


# Called with the keys of the accounts an attempt names, before any password is checked: it
# spends the attempt (raising to refuse it) and gives back what a right password refunds.
Admit = Callable[[list[str]], Awaitable[Charge]]


async def user_for_password(
    conn: asyncpg.Connection, email: str, password: str, org_slug: str | None, *, admit: Admit
) -> asyncpg.Record | None:
    """The active user with this email (in ``org_slug`` when given) whose password matches.

    ``admit`` is charged before any password is checked, with one key per account the lookup
    found (``user:<id>``), or, when it found none, the lookup's own ``lower()`` of the address
    (``email:<address>``): whatever spelling reached an account, its one budget pays.
    """
    rows = await conn.fetch(
        """
        SELECT k.account_email, u.*
        FROM (SELECT lower($1::text) AS account_email) k
        LEFT JOIN (users u JOIN organizations o ON o.id = u.org_id)
          ON lower(u.email) = k.account_email AND u.is_active AND ($2::text IS NULL OR o.slug = $2)
        """,
        email.strip(), org_slug,
    )
    users = [row for row in rows if row["id"] is not None]
    keys = [f"user:{row['id']}" for row in users] or [f"email:{rows[0]['account_email'][:320]}"]
    charge = await admit(keys)
    if not users:
        # Spend the same time as a real check, so response times do not reveal which emails exist.
        await asyncio.to_thread(verify_password, password, _DUMMY_HASH)
        return None
    matches = []
    for row in users:
        if await asyncio.to_thread(verify_password, password, row["password_hash"]):
            matches.append(row)
    # The same email and password in two organizations: the caller must name one.
    if len(matches) != 1:
        return None
    await charge.refund()
    return matches[0]


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
