"""The live floor: what a manager's screen shows of each call in progress.

One row per call: who is on it (the rep, their team), who the customer is (the
linked lead, else the customer's number) and how long it has been going. The
live feed (voice_server/live_feed.py) decides who may see which row with
``on_floor``; these queries only ever read one organization.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from crm_core.calls.records import TERMINAL_STATUSES, customer_number

# Who has a floor: a rep follows their own calls on their live screen instead.
FLOOR_ROLES = ("manager", "admin")
# Calls that ring or talk: the live index (calls_live_idx) covers them. A queued call has
# no media yet and may never get any, so it would linger on the floor.
FLOOR_STATUSES = ("ringing", "in-progress")
# Spelled out in the query (not a parameter) so the planner can use the partial index.
_FLOOR_STATUS_SQL = "(" + ", ".join(f"'{s}'" for s in FLOOR_STATUSES) + ")"
# An organization with more live calls than this shows its oldest ones; each row is small.
FLOOR_LIMIT = 500

_SELECT = """
SELECT c.id::text AS id, c.org_id::text AS org_id, c.rep_id::text AS rep_id,
       c.lead_id::text AS lead_id, c.direction, c.carrier, c.status, c.from_number, c.to_number,
       u.name AS rep_name, u.team_id::text AS team_id, t.name AS team_name,
       l.first_name, l.last_name, l.company,
       (extract(epoch FROM now() - coalesce(c.answered_at, c.started_at, c.created_at))
        * 1000)::bigint AS elapsed_ms
FROM calls c
LEFT JOIN users u ON u.id = c.rep_id AND u.org_id = c.org_id
LEFT JOIN teams t ON t.id = u.team_id AND t.org_id = c.org_id
LEFT JOIN leads l ON l.id = c.lead_id AND l.org_id = c.org_id
"""


def _card(row: asyncpg.Record) -> dict[str, Any]:
    lead_name = " ".join(p for p in (row["first_name"], row["last_name"]) if p) or None
    return {
        "call_id": row["id"],
        "org_id": row["org_id"],
        "rep_id": row["rep_id"],
        "rep_name": row["rep_name"],
        "team_id": row["team_id"],
        "team_name": row["team_name"],
        "lead_id": row["lead_id"],
        "lead_name": lead_name,
        "company": row["company"],
        "customer_number": customer_number(row["direction"], row["from_number"], row["to_number"]),
        "direction": row["direction"],
        "carrier": row["carrier"],
        "status": row["status"],
        "elapsed_ms": max(0, row["elapsed_ms"] or 0),
    }


async def live_floor(
    db: asyncpg.Pool | asyncpg.Connection,
    org_id: str,
    *,
    reps_of: tuple[str, tuple[str, ...]] | None = None,
) -> list[dict[str, Any]]:
    """The organization's calls in progress, oldest first, as floor cards.

    ``reps_of=(user_id, team_ids)`` keeps the calls of that user and of their teams' reps (a
    manager's floor), so a big organization's other calls never crowd theirs out of the limit.
    """
    where = f"WHERE c.org_id = $1::uuid AND c.status IN {_FLOOR_STATUS_SQL} "
    args: list[Any] = [org_id, FLOOR_LIMIT]
    if reps_of is not None:
        where += "AND (c.rep_id = $3::uuid OR u.team_id = ANY($4::uuid[])) "
        args += [reps_of[0], list(reps_of[1])]
    rows = await db.fetch(_SELECT + where + "ORDER BY c.created_at, c.id LIMIT $2", *args)
    return [_card(r) for r in rows]


async def floor_card(
    db: asyncpg.Pool | asyncpg.Connection, call_id: str, org_id: str
) -> dict[str, Any] | None:
    """One call's floor card, or None if it is not a call of the organization in progress.

    A call announces itself (``call.started``) when its media starts, which may be before its
    carrier's status callback says "in-progress": only an ended call is left off.
    """
    row = await db.fetchrow(
        _SELECT + "WHERE c.id = $1::uuid AND c.org_id = $2::uuid AND c.ended_at IS NULL "
        "AND NOT c.status = ANY($3::text[])",
        call_id,
        org_id,
        list(TERMINAL_STATUSES),
    )
    return None if row is None else _card(row)


def on_floor(
    card: dict[str, Any], *, org_id: str, user_id: str, role: str, team_ids: tuple[str, ...]
) -> bool:
    """May this viewer see this call on the floor? An admin: every call of the organization;
    a manager: the calls of their team(s)' reps and their own; a rep: none (``FLOOR_ROLES``)."""
    if card["org_id"] != org_id:
        return False
    if role == "admin":
        return True
    if role == "manager":
        return card["rep_id"] == user_id or (
            card["team_id"] is not None and card["team_id"] in team_ids
        )
    return False
