"""Which carrier number rings which rep: the routing table admins edit.

A call to one of these numbers (Twilio, Vonage) is put through to the rep it names. The
``COACHLINE_CARRIER_NUMBERS`` setting is the bootstrap: numbers it lists are copied here at
start-up when the database has no row for them (``seed_numbers``), and a number the database
does not know is still looked up there (the database wins where both name one).
"""

from __future__ import annotations

import re
from typing import Any

import asyncpg

from crm_core.api_errors import Conflict, NotFound, Unprocessable
from crm_core.changes import ChangeSet
from storage.ids import uuid_or_none

_E164 = re.compile(r"^\+?[1-9][0-9]{6,14}$")
_SEPARATORS = re.compile(r"[ ()./-]")


def normalize_number(text: Any) -> str | None:
    """``text`` as E.164 (``+14155550123``), or None when it is not a phone number."""
    if not isinstance(text, str):
        return None
    digits = _SEPARATORS.sub("", text.strip())
    if not _E164.match(digits):
        return None
    return "+" + digits.lstrip("+")


def _out(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "number": row["number"],
        "user_id": str(row["user_id"]),
        "user_name": row.get("user_name"),
        "created_at": row["created_at"],
    }


async def list_numbers(conn: asyncpg.Connection, org_id: str) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT n.*, u.name AS user_name FROM carrier_numbers n JOIN users u ON u.id = n.user_id "
        "AND u.org_id = n.org_id WHERE n.org_id = $1::uuid ORDER BY n.number",
        org_id,
    )
    return [_out(r) for r in rows]


async def map_number(
    conn: asyncpg.Connection, changes: ChangeSet, number: str, user_id: str
) -> dict[str, Any]:
    """Route ``number`` to the active user ``user_id`` of the organization (replacing its rep).
    Call inside a transaction."""
    e164 = normalize_number(number)
    if e164 is None:
        raise Unprocessable(
            "the body failed validation",
            [
                {
                    "loc": ["number"],
                    "type": "phone_number",
                    "message": "must be an E.164 number, e.g. +14155550123",
                }
            ],
        )
    org_id = changes.org_id
    user = await conn.fetchrow(
        "SELECT id, name, is_active FROM users WHERE id = $1 AND org_id = $2::uuid",
        uuid_or_none(user_id),
        org_id,
    )
    if user is None:
        raise NotFound("no such user", {"user_id": user_id})
    if not user["is_active"]:
        raise Unprocessable(
            "a deactivated user takes no calls", {"user_id": user_id}, code="user_inactive"
        )
    before = await conn.fetchrow(
        "SELECT * FROM carrier_numbers WHERE number = $1 AND org_id = $2::uuid", e164, org_id
    )
    try:
        async with conn.transaction():
            row = await conn.fetchrow(
                """
                INSERT INTO carrier_numbers (org_id, number, user_id) VALUES ($1::uuid, $2, $3)
                ON CONFLICT (number) DO UPDATE SET user_id = excluded.user_id
                    WHERE carrier_numbers.org_id = excluded.org_id
                RETURNING *
                """,
                org_id,
                e164,
                user["id"],
            )
    except asyncpg.UniqueViolationError:
        row = None
    if row is None:  # the number is another organization's
        raise Conflict(
            "this number is routed by another organization", {"number": e164}, code="number_taken"
        )
    out = {**_out(row), "user_name": user["name"]}
    await changes.record(
        conn,
        action="carrier_number.map",
        resource_type="carrier_number",
        resource_id=out["id"],
        before=None if before is None else {"number": e164, "user_id": str(before["user_id"])},
        after={"number": e164, "user_id": out["user_id"]},
    )
    return out


async def unmap_number(
    conn: asyncpg.Connection,
    changes: ChangeSet,
    number_id: str | None = None,
    *,
    number: str | None = None,
) -> None:
    """Stop routing a number (by its id, or the number itself). Call inside a transaction."""
    row = await conn.fetchrow(
        "DELETE FROM carrier_numbers WHERE org_id = $1::uuid AND (id = $2 OR number = $3) RETURNING *",
        changes.org_id,
        uuid_or_none(number_id),
        normalize_number(number) if number else None,
    )
    if row is None:
        raise NotFound("no such carrier number")
    await changes.record(
        conn,
        action="carrier_number.unmap",
        resource_type="carrier_number",
        resource_id=str(row["id"]),
        before={"number": row["number"], "user_id": str(row["user_id"])},
    )


async def rep_for_number(conn: asyncpg.Connection, number: str) -> str | None:
    """The user a call to ``number`` rings, by the database's table; None if it names none."""
    e164 = normalize_number(number)
    if e164 is None:
        return None
    user_id = await conn.fetchval("SELECT user_id FROM carrier_numbers WHERE number = $1", e164)
    return None if user_id is None else str(user_id)


async def seed_numbers(conn: asyncpg.Connection, mapping: dict[str, str]) -> int:
    """Copy the bootstrap mapping (number -> user id) into the table where it has no row for the
    number; a number or user id that is not valid is skipped. How many rows were added."""
    added = 0
    for number, user_id in mapping.items():
        e164, uid = normalize_number(number), uuid_or_none(user_id)
        if e164 is None or uid is None:
            continue
        status = await conn.execute(
            "INSERT INTO carrier_numbers (org_id, number, user_id) SELECT u.org_id, $1, u.id FROM users u "
            "WHERE u.id = $2 ON CONFLICT (number) DO NOTHING",
            e164,
            uid,
        )
        added += int(status.rsplit(" ", 1)[-1])
    return added
