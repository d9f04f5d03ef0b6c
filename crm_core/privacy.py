"""GDPR for a lead: erase what Coachline holds about them, or export it as JSON.

Erasure crypto-shreds the recordings of the lead's calls (their data keys are
destroyed with the files), deletes the calls' transcript segments, clears the
lead's personal fields and the phone numbers of its calls, and empties the
bodies of its activities. The business records (deals, call rows with their
times and outcomes) stay, without the person in them. Both operations write
an audit row; erasure is idempotent.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg

from crm_core.recordings.rows import AuditEntry, write_audit
from crm_core.calls.masking import mask_pii
from storage.recording_store import RecordingStore

PERSONAL_FIELDS = ("first_name", "last_name", "email", "phone", "company", "title")


class LeadNotFound(LookupError):
    pass


@dataclass(frozen=True, slots=True)
class ErasureResult:
    lead_id: str
    calls: int
    recordings_shredded: int
    segments_deleted: int


async def _lead(conn: asyncpg.Connection, org_id: str, lead_id: str) -> asyncpg.Record:
    row = await conn.fetchrow("SELECT * FROM leads WHERE id = $1 AND org_id = $2", lead_id, org_id)
    if row is None:
        raise LeadNotFound(lead_id)
    return row


async def erase_lead(
    conn: asyncpg.Connection,
    store: RecordingStore | None,
    org_id: str,
    lead_id: str,
    *,
    actor_id: str | None,
    ip: str | None = None,
    request_id: str | None = None,
) -> ErasureResult:
    await _lead(conn, org_id, lead_id)
    call_ids = [
        r["id"]
        for r in await conn.fetch(
            "SELECT id FROM calls WHERE org_id = $1 AND lead_id = $2", org_id, lead_id
        )
    ]
    recordings = await conn.fetch(
        "SELECT id FROM recordings WHERE org_id = $1 AND call_id = ANY($2::uuid[]) AND status <> 'deleted'",
        org_id,
        call_ids,
    )
    if recordings and store is None:
        raise RuntimeError("recordings exist but no recording store is configured to shred them")
    # Files first: a failure afterwards leaves rows pointing at nothing, never audio left behind.
    for rec in recordings:
        store.delete(uuid.UUID(str(rec["id"])))
    async with conn.transaction():
        await conn.execute(
            "UPDATE recordings SET status = 'deleted', deleted_at = now()"
            " WHERE org_id = $1 AND id = ANY($2::uuid[])",
            org_id,
            [r["id"] for r in recordings],
        )
        deleted = await conn.execute(
            "DELETE FROM transcript_segments WHERE org_id = $1 AND call_id = ANY($2::uuid[])",
            org_id,
            call_ids,
        )
        # a prompt card can quote what the lead said (the matched words)
        await conn.execute(
            "DELETE FROM call_prompts WHERE org_id = $1 AND call_id = ANY($2::uuid[])",
            org_id,
            call_ids,
        )
        # a reviewer's comment on a moment of the call can quote the lead too
        await conn.execute(
            "DELETE FROM call_comments WHERE org_id = $1 AND call_id = ANY($2::uuid[])",
            org_id,
            call_ids,
        )
        # the post-call summary quotes the lead (key points, objections, next steps)
        await conn.execute(
            "UPDATE calls SET from_number = NULL, to_number = NULL, metadata = '{}'::jsonb, summary = NULL,"
            " updated_at = now() WHERE org_id = $1 AND id = ANY($2::uuid[])",
            org_id,
            call_ids,
        )
        await conn.execute(
            "UPDATE activities SET body = '{}'::jsonb WHERE org_id = $1 AND lead_id = $2",
            org_id,
            lead_id,
        )
        sets = ", ".join(f"{f} = NULL" for f in PERSONAL_FIELDS)
        await conn.execute(
            f"UPDATE leads SET {sets}, enrichment = jsonb_build_object('erased_at', now()),"
            " score_factors = NULL, updated_at = now() WHERE org_id = $1 AND id = $2",
            org_id,
            lead_id,
        )
        result = ErasureResult(
            str(lead_id), len(call_ids), len(recordings), int(deleted.split()[-1])
        )
        await write_audit(
            conn,
            AuditEntry(
                org_id=org_id,
                action="lead.erased",
                resource_type="lead",
                resource_id=str(lead_id),
                actor_id=actor_id,
                ip=ip,
                request_id=request_id,
                detail={
                    "calls": result.calls,
                    "recordings_shredded": result.recordings_shredded,
                    "segments_deleted": result.segments_deleted,
                },
            ),
        )
    return result


def _masked_prompt(prompt: dict[str, Any], raw: bool) -> dict[str, Any]:
    if raw:
        return prompt
    return {**prompt, "title": mask_pii(prompt["title"]), "body": mask_pii(prompt["body"]),
            "evidence": [mask_pii(e) for e in prompt["evidence"] or []]}


def _plain(row: asyncpg.Record) -> dict[str, Any]:
    out = {}
    for key, value in dict(row).items():
        if isinstance(value, uuid.UUID):
            value = str(value)
        elif hasattr(value, "isoformat"):
            value = value.isoformat()
        elif value is not None and not isinstance(value, (str, int, float, bool, dict, list)):
            value = str(value)  # Decimal, inet
        out[key] = value
    return out


async def export_lead(
    conn: asyncpg.Connection,
    org_id: str,
    lead_id: str,
    *,
    include_raw_text: bool,
    actor_id: str | None,
    ip: str | None = None,
    request_id: str | None = None,
) -> dict[str, Any]:
    """Everything held about a lead, as JSON-ready data (raw transcript text only when allowed)."""
    lead = await _lead(conn, org_id, lead_id)
    calls = await conn.fetch(
        "SELECT * FROM calls WHERE org_id = $1 AND lead_id = $2 ORDER BY created_at",
        org_id,
        lead_id,
    )
    call_ids = [c["id"] for c in calls]
    segments = await conn.fetch(
        "SELECT call_id, segment_key, party, speaker, start_ms, end_ms, text, text_raw, created_at"
        " FROM transcript_segments WHERE org_id = $1 AND call_id = ANY($2::uuid[]) ORDER BY call_id, start_ms",
        org_id,
        call_ids,
    )
    export = {
        "lead": _plain(lead),
        "deals": [
            _plain(r)
            for r in await conn.fetch(
                "SELECT * FROM deals WHERE org_id = $1 AND lead_id = $2 ORDER BY created_at",
                org_id,
                lead_id,
            )
        ],
        "calls": [_plain(r) for r in calls],
        "recordings": [
            _plain(r)
            for r in await conn.fetch(
                "SELECT id, call_id, status, channels, sample_rate, duration_ms, created_at FROM recordings"
                " WHERE org_id = $1 AND call_id = ANY($2::uuid[]) ORDER BY created_at",
                org_id,
                call_ids,
            )
        ],
        "transcript_segments": [
            {k: v for k, v in _plain(s).items() if include_raw_text or k != "text_raw"}
            for s in segments
        ],
        "coaching_prompts": [  # cards' text masked like the transcript unless allowed
            _masked_prompt(_plain(r), include_raw_text)
            for r in await conn.fetch(
                "SELECT call_id, at_ms, rule_id, kind, severity, title, body, party, segment_key, evidence,"
                " link, created_at FROM call_prompts WHERE org_id = $1 AND call_id = ANY($2::uuid[])"
                " ORDER BY call_id, at_ms",
                org_id,
                call_ids,
            )
        ],
        "activities": [
            _plain(r)
            for r in await conn.fetch(
                "SELECT * FROM activities WHERE org_id = $1 AND lead_id = $2 ORDER BY occurred_at",
                org_id,
                lead_id,
            )
        ],
    }
    await write_audit(
        conn,
        AuditEntry(
            org_id=org_id,
            action="lead.exported",
            resource_type="lead",
            resource_id=str(lead_id),
            actor_id=actor_id,
            ip=ip,
            request_id=request_id,
            detail={"calls": len(calls), "segments": len(segments), "raw_text": include_raw_text},
        ),
    )
    return export
