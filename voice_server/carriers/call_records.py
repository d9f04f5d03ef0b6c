"""The few reads and writes of call and rep rows that only the carrier edge needs.

The CRM's own repository (``crm_core.calls.records``) creates calls and moves their
status; this module adds the lookups a carrier callback needs to find them.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from crm_core.calls.records import attach_external_id  # re-exported: the edge's callers use it here


@dataclass(frozen=True, slots=True)
class RepRoute:
    """Where a call for a rep rings: their SIP address if they have one, else their phone."""

    org_id: str
    rep_id: str
    phone: str | None
    sip_uri: str | None

    @property
    def target(self) -> str | None:
        return self.sip_uri or self.phone


async def rep_route(conn: asyncpg.Connection, rep_id: str) -> RepRoute | None:
    try:
        row = await conn.fetchrow(
            "SELECT id, org_id, phone, sip_uri FROM users WHERE id = $1::uuid AND is_active", rep_id
        )
    except asyncpg.DataError:  # not a uuid: no such rep
        return None
    if row is None:
        return None
    return RepRoute(str(row["org_id"]), str(row["id"]), row["phone"], row["sip_uri"])


async def call_for_stream(
    conn: asyncpg.Connection, call_id: str, carrier: str, external_id: str | None
) -> asyncpg.Record | None:
    """The call a media stream claims to belong to, or None when the claim does not hold.

    A stream names our call id (from the TwiML/NCCO we served) and the carrier's id for
    the call; both must match one row. A row without a carrier id yet (an outbound call
    whose media started before the REST answer was stored) takes this one.
    """
    try:
        row = await conn.fetchrow(
            "SELECT * FROM calls WHERE id = $1::uuid AND carrier = $2", call_id, carrier
        )
    except asyncpg.DataError:
        return None
    if row is None:
        return None
    if external_id is None or row["external_id"] == external_id:
        return row
    if row["external_id"] is None:
        return await attach_external_id(conn, call_id, external_id)
    return None
