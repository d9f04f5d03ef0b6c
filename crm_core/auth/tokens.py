"""API tokens and browser session tokens: random secrets stored only as hashes.

API tokens look like ``cl_<random>``; the first characters (the prefix) are
stored in clear so admins can tell tokens apart, the whole token is shown
once at creation. A browser sign-in is a session (``cls_<random>``, only in
an HttpOnly cookie) for which short-lived bearer access tokens
(``cla_<random>``) are issued to the page's scripts.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

from crm_core.auth.principal import Principal, principal_for_user

API_TOKEN_MARK = "cl_"
SESSION_TOKEN_MARK = "cls_"
ACCESS_TOKEN_MARK = "cla_"
PREFIX_LENGTH = 11


def token_hash(token: str) -> bytes:
    # The secret has 256 bits of entropy, so a plain SHA-256 is enough (no stretching needed).
    return hashlib.sha256(token.encode()).digest()


@dataclass(frozen=True, slots=True)
class IssuedToken:
    row: asyncpg.Record
    token: str


async def create_api_token(
    conn: asyncpg.Connection, *, org_id: str, user_id: str, name: str,
    scopes: list[str], expires_at: datetime | None,
) -> IssuedToken:
    token = API_TOKEN_MARK + secrets.token_urlsafe(32)
    row = await conn.fetchrow(
        """
        INSERT INTO api_tokens (org_id, user_id, name, token_prefix, token_hash, scopes, expires_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING *
        """,
        org_id, user_id, name, token[:PREFIX_LENGTH], token_hash(token), sorted(set(scopes)), expires_at,
    )
    return IssuedToken(row, token)


async def principal_from_api_token(conn: asyncpg.Connection, token: str) -> Principal | None:
    row = await conn.fetchrow(
        """
        SELECT t.id AS token_id, t.scopes, t.last_used_at < now() - interval '1 minute'
                   OR t.last_used_at IS NULL AS stale_use,
               u.id, u.org_id, u.role, u.team_id, u.territory
        FROM api_tokens t JOIN users u ON u.id = t.user_id AND u.org_id = t.org_id
        WHERE t.token_hash = $1 AND t.revoked_at IS NULL
          AND (t.expires_at IS NULL OR t.expires_at > now()) AND u.is_active
        """,
        token_hash(token),
    )
    if row is None:
        return None
    if row["stale_use"]:
        # last_used_at to the minute: writing it on every request would serialise a busy
        # client's requests on this one row.
        await conn.execute("UPDATE api_tokens SET last_used_at = now() WHERE id = $1", row["token_id"])
    return principal_for_user(dict(row), via="api_token", scopes=frozenset(row["scopes"]),
                              api_token_id=str(row["token_id"]))


@dataclass(frozen=True, slots=True)
class IssuedSession:
    session_id: str
    token: str
    csrf_token: str | None
    expires_in: int


async def create_browser_session(conn: asyncpg.Connection, user: asyncpg.Record, ttl_s: int) -> IssuedSession:
    """The long-lived sign-in kept in the HttpOnly cookie, with its CSRF token."""
    token = SESSION_TOKEN_MARK + secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(24)
    session_id = await conn.fetchval(
        """
        INSERT INTO sessions (org_id, user_id, kind, token_hash, csrf_token, expires_at)
        VALUES ($1, $2, 'browser', $3, $4, $5) RETURNING id
        """,
        user["org_id"], user["id"], token_hash(token), csrf,
        datetime.now(UTC) + timedelta(seconds=ttl_s),
    )
    return IssuedSession(str(session_id), token, csrf, ttl_s)


async def create_access_token(
    conn: asyncpg.Connection, *, org_id: str, user_id: str, parent_id: str, ttl_s: int
) -> IssuedSession:
    """A short-lived bearer token for a signed-in browser; it never outlives its session."""
    token = ACCESS_TOKEN_MARK + secrets.token_urlsafe(32)
    row = await conn.fetchrow(
        """
        INSERT INTO sessions (org_id, user_id, kind, parent_id, token_hash, expires_at)
        SELECT $1, $2, 'access', p.id, $4, least(p.expires_at, now() + make_interval(secs => $5))
        FROM sessions p WHERE p.id = $3
        RETURNING id, extract(epoch FROM expires_at - now())::int AS expires_in
        """,
        org_id, user_id, parent_id, token_hash(token), ttl_s,
    )
    return IssuedSession(str(row["id"]), token, None, max(1, int(row["expires_in"])))


async def session_by_token(conn: asyncpg.Connection, token: str, kind: str) -> asyncpg.Record | None:
    """The live session and its user's row, or None (unknown, expired, revoked, user disabled).

    An access token is dead as soon as its browser session is revoked (logout).
    """
    return await conn.fetchrow(
        """
        SELECT s.id AS session_id, coalesce(s.parent_id, s.id) AS browser_session_id, s.csrf_token,
               u.id, u.org_id, u.role, u.team_id, u.territory
        FROM sessions s
        JOIN users u ON u.id = s.user_id AND u.org_id = s.org_id
        LEFT JOIN sessions p ON p.id = s.parent_id
        WHERE s.token_hash = $1 AND s.kind = $2 AND s.revoked_at IS NULL AND s.expires_at > now()
          AND u.is_active AND (s.parent_id IS NULL OR (p.revoked_at IS NULL AND p.expires_at > now()))
        """,
        token_hash(token), kind,
    )


async def revoke_session(conn: asyncpg.Connection, session_id: str) -> None:
    """Revoke a browser session and every access token issued for it."""
    await conn.execute(
        "UPDATE sessions SET revoked_at = now() WHERE (id = $1 OR parent_id = $1) AND revoked_at IS NULL",
        session_id,
    )


async def end_sign_ins(
    conn: asyncpg.Connection, org_id: str, user_id: str, *, keep_session_id: str | None = None,
    keep_api_token_id: str | None = None,
) -> None:
    """After a password change: revoke every browser session of the user (with the access tokens
    issued for it) and every API token of theirs, except the credential that made the change, so
    whoever knew the old password keeps nothing it gave them."""
    await conn.execute(
        """
        UPDATE sessions SET revoked_at = now()
        WHERE org_id = $1 AND user_id = $2 AND revoked_at IS NULL
          AND ($3::uuid IS NULL OR (id <> $3 AND parent_id IS DISTINCT FROM $3))
        """,
        org_id, user_id, keep_session_id,
    )
    await conn.execute(
        "UPDATE api_tokens SET revoked_at = now() WHERE org_id = $1 AND user_id = $2 "
        "AND revoked_at IS NULL AND ($3::uuid IS NULL OR id <> $3)",
        org_id, user_id, keep_api_token_id,
    )
