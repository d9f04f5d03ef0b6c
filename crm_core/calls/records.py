"""Calls and their transcripts as the live path writes them.

Carrier edges create a call row when a call starts, move it through its
statuses as carrier callbacks arrive (idempotently: callbacks are retried
and may arrive out of order), and append final transcript segments (written
once even when an event is delivered twice).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from crm_core.calls.routing import match_lead

log = logging.getLogger(__name__)

# Later statuses win; a late "ringing" never rewinds an answered call.
_STATUS_RANK = {
    "queued": 0,
    "ringing": 1,
    "in-progress": 2,
    "completed": 3,
    "busy": 3,
    "failed": 3,
    "no-answer": 3,
    "canceled": 3,
}
TERMINAL_STATUSES = frozenset(s for s, rank in _STATUS_RANK.items() if rank == 3)
CALL_STATUSES = frozenset(_STATUS_RANK)
LIVE_STATUSES = ("queued", "ringing", "in-progress")


class UnknownCallStatus(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class NewCall:
    org_id: str
    carrier: str
    direction: str
    external_id: str | None = None
    from_number: str | None = None
    to_number: str | None = None
    rep_id: str | None = None
    lead_id: str | None = None
    deal_id: str | None = None
    status: str = "queued"
    metadata: dict[str, Any] | None = None
    # The node that carries the call's media from the start (the SIP edge); carrier calls
    # get theirs when their media stream is admitted (crm_core.calls.stream_admissions).
    node_id: str | None = None


def customer_number(direction: str, from_number: str | None, to_number: str | None) -> str | None:
    """The customer's end of a call: who called in, or who was called."""
    return from_number if direction == "inbound" else to_number


async def create_call(conn: asyncpg.Connection, call: NewCall) -> asyncpg.Record:
    """Insert the call, or return the existing row for the same carrier call id.

    A call created without a lead is linked to the lead with the customer's number (compared
    as E.164, see ``routing.match_lead``), whichever carrier or direction it came from.
    """
    if call.status not in _STATUS_RANK:
        raise UnknownCallStatus(call.status)
    lead_id, metadata = call.lead_id, dict(call.metadata or {})
    if lead_id is None:
        customer = customer_number(call.direction, call.from_number, call.to_number)
        line = call.to_number if call.direction == "inbound" else call.from_number
        match = await match_lead(conn, call.org_id, customer, line_number=line, rep_id=call.rep_id)
        if match is not None:
            lead_id = match.lead_id
            if match.candidates > 1:
                # Said on the call, so a reviewer can see why this lead and not another.
                metadata["lead_match"] = {"number": match.number, "candidates": match.candidates,
                                          "rule": "owner's lead, then most recently updated"}
                log.info("call from %s matches %d leads; linked lead %s",
                         call.carrier, match.candidates, lead_id)
    row = await conn.fetchrow(
        """
        INSERT INTO calls (org_id, carrier, direction, external_id, from_number, to_number,
                           rep_id, lead_id, deal_id, status, started_at, metadata, node_id)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, now(), $11,
                CASE WHEN $10 IN ('queued', 'ringing', 'in-progress') THEN $12 END)
        ON CONFLICT (carrier, external_id) DO NOTHING
        RETURNING *
        """,
        call.org_id, call.carrier, call.direction, call.external_id, call.from_number,
        call.to_number, call.rep_id, lead_id, call.deal_id, call.status, metadata,
        call.node_id,
    )
    if row is None:
        row = await conn.fetchrow(
            "SELECT * FROM calls WHERE carrier = $1 AND external_id = $2",
            call.carrier, call.external_id,
        )
    return row


async def get_call(conn: asyncpg.Connection, call_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM calls WHERE id = $1", call_id)


async def call_owner(db: asyncpg.Pool | asyncpg.Connection, call_id: Any) -> asyncpg.Record | None:
    """The call's ``org_id`` and ``rep_id`` (as text), or None for no such call."""
    # Compare the uuid columns themselves, so the primary key / indexes serve the lookup.
    return await db.fetchrow(
        "SELECT org_id::text AS org_id, rep_id::text AS rep_id FROM calls WHERE id = $1", call_id)


async def live_calls_of_rep(
    db: asyncpg.Pool | asyncpg.Connection, org_id: str, rep_id: str
) -> list[asyncpg.Record]:
    """The rep's calls not yet ended (``LIVE_STATUSES``), oldest first: ``id``, ``org_id`` and
    ``rep_id`` as text."""
    return await db.fetch(
        "SELECT id::text AS id, org_id::text AS org_id, rep_id::text AS rep_id FROM calls "
        "WHERE org_id = $1::uuid AND rep_id = $2::uuid AND status = ANY($3::text[]) "
        "ORDER BY created_at",
        org_id, rep_id, list(LIVE_STATUSES))


async def find_call(conn: asyncpg.Connection, carrier: str, external_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT * FROM calls WHERE carrier = $1 AND external_id = $2", carrier, external_id
    )


async def attach_external_id(
    conn: asyncpg.Connection, call_id: str, external_id: str
) -> asyncpg.Record | None:
    """Store the carrier's id for a call once; a second, different id is refused (None)."""
    return await conn.fetchrow(
        """
        UPDATE calls SET external_id = $2, updated_at = now()
        WHERE id = $1::uuid AND (external_id IS NULL OR external_id = $2)
        RETURNING *
        """,
        call_id, external_id,
    )


@dataclass(frozen=True, slots=True)
class RepContact:
    """Where a call for a rep rings: their SIP address if they have one, else their phone."""

    org_id: str
    rep_id: str
    phone: str | None
    sip_uri: str | None

    @property
    def target(self) -> str | None:
        return self.sip_uri or self.phone


async def rep_contact(conn: asyncpg.Connection, rep_id: str) -> RepContact | None:
    """The active rep ``rep_id`` and where their calls ring; None for no such (or no uuid)."""
    try:
        row = await conn.fetchrow(
            "SELECT id, org_id, phone, sip_uri FROM users WHERE id = $1::uuid AND is_active", rep_id
        )
    except asyncpg.DataError:  # not a uuid: no such rep
        return None
    if row is None:
        return None
    return RepContact(str(row["org_id"]), str(row["id"]), row["phone"], row["sip_uri"])


async def update_call_status(
    conn: asyncpg.Connection,
    call_id: str,
    status: str,
    *,
    at: datetime | None = None,
    duration_s: int | None = None,
) -> asyncpg.Record | None:
    """Move a call forward to ``status``; a stale or repeated update changes nothing.

    Returns the row as it is after the update (None if the call does not exist).
    """
    if status not in _STATUS_RANK:
        raise UnknownCallStatus(status)
    rank = _STATUS_RANK[status]
    async with conn.transaction():
        current = await conn.fetchrow("SELECT * FROM calls WHERE id = $1 FOR UPDATE", call_id)
        if current is None:
            return None
        if _STATUS_RANK[current["status"]] >= rank and not (
            status == current["status"] and duration_s is not None and current["duration_s"] is None
        ):
            return current
        return await conn.fetchrow(
            """
            UPDATE calls SET
                status      = $2,
                answered_at = CASE WHEN $2 = 'in-progress' THEN coalesce(answered_at, coalesce($3, now()))
                                   ELSE answered_at END,
                ended_at    = CASE WHEN $4 THEN coalesce(ended_at, coalesce($3, now())) ELSE ended_at END,
                duration_s  = coalesce($5, duration_s),
                -- an ended call needs no node to finish it (crm_core.calls.nodes)
                node_id     = CASE WHEN $4 THEN NULL ELSE node_id END,
                updated_at  = now()
            WHERE id = $1
            RETURNING *
            """,
            call_id, status, at, status in TERMINAL_STATUSES, duration_s,
        )


async def mark_call_ended(
    conn: asyncpg.Connection, call_id: str, *, abnormal: bool = False
) -> asyncpg.Record | None:
    """Record that the media of a call ended (normally or not), keeping carrier-reported status.

    The call no longer names the node that carried it: nothing is left for recovery to end.
    """
    return await conn.fetchrow(
        """
        UPDATE calls SET
            node_id = NULL,
            ended_at = coalesce(ended_at, now()),
            ended_abnormally = ended_abnormally OR $2,
            status = CASE WHEN status IN ('queued', 'ringing', 'in-progress') THEN
                          CASE WHEN $2 THEN 'failed' ELSE 'completed' END ELSE status END,
            duration_s = coalesce(duration_s,
                                  greatest(0, extract(epoch FROM now() - coalesce(answered_at, started_at))::int)),
            updated_at = now()
        WHERE id = $1
        RETURNING *
        """,
        call_id, abnormal,
    )


@dataclass(frozen=True, slots=True)
class SegmentRow:
    segment_key: str
    party: str
    start_ms: int
    end_ms: int
    text: str
    words: list[dict[str, Any]]
    speaker: str | None = None
    text_raw: str | None = None
    sentiment: float | None = None


async def add_final_segments(
    conn: asyncpg.Connection, org_id: str, call_id: str, segments: list[SegmentRow]
) -> int:
    """Write final segments; ones already written (same key) are skipped. Returns rows inserted."""
    if not segments:
        return 0
    result = await conn.execute(
        """
        INSERT INTO transcript_segments
            (org_id, call_id, segment_key, party, speaker, start_ms, end_ms, text, text_raw,
             words, is_final, sentiment)
        SELECT $1, $2, s.segment_key, s.party, s.speaker, s.start_ms, s.end_ms, s.text, s.text_raw,
               s.words::jsonb, true, s.sentiment
        FROM unnest($3::text[], $4::text[], $5::text[], $6::int[], $7::int[], $8::text[],
                    $9::text[], $10::text[], $11::real[])
             AS s(segment_key, party, speaker, start_ms, end_ms, text, text_raw, words, sentiment)
        ON CONFLICT (call_id, segment_key) DO NOTHING
        """,
        org_id, call_id,
        [s.segment_key for s in segments], [s.party for s in segments],
        [s.speaker for s in segments], [s.start_ms for s in segments],
        [s.end_ms for s in segments], [s.text for s in segments],
        [s.text_raw for s in segments], [json.dumps(s.words) for s in segments],
        [s.sentiment for s in segments],
    )
    return int(result.split()[-1])


async def list_segments(conn: asyncpg.Connection, call_id: str, *, org_id: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT * FROM transcript_segments WHERE call_id = $1 AND org_id = $2 ORDER BY start_ms, id",
        call_id, org_id,
    )
