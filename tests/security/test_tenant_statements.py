"""Every statement on tenant data carries the organization: GDPR export and erasure.

The lead lookup of ``crm_core.privacy`` is the operations' own guard (the HTTP routes check
reach first, so these tests call the functions): another organization's id for a lead is
"not found", and an erasure in the wrong organization changes nothing anywhere.
"""

from __future__ import annotations

import hashlib
import uuid

import pytest
import pytest_asyncio

from crm_core.calls.records import NewCall, SegmentRow, add_final_segments, create_call
from crm_core.privacy import LeadNotFound, erase_lead, export_lead
from storage.database import connect

TABLES = ("leads", "calls", "transcript_segments", "activities", "recordings", "call_prompts")


@pytest_asyncio.fixture(loop_scope="session")
async def conn(migrated_database):
    connection = await connect(migrated_database)
    yield connection
    await connection.close()


async def _org(conn, slug: str) -> str:
    return str(
        await conn.fetchval(
            "INSERT INTO organizations (name, slug) VALUES ($1, $1) RETURNING id", slug
        )
    )


async def _lead_with_a_call(conn, org: str) -> tuple[str, str]:
    lead = str(
        await conn.fetchval(
            "INSERT INTO leads (org_id, first_name, email, phone) VALUES ($1, 'Ada', 'ada@example.com', '+15550100')"
            " RETURNING id",
            org,
        )
    )
    call = await create_call(
        conn,
        NewCall(
            org,
            "simulator",
            "outbound",
            external_id=uuid.uuid4().hex,
            to_number="+15550100",
            lead_id=lead,
        ),
    )
    call_id = str(call["id"])
    await add_final_segments(
        conn, org, call_id, [SegmentRow("s1", "customer", 0, 900, "hi", [], text_raw="hi")]
    )
    await conn.execute(
        "INSERT INTO activities (org_id, kind, subject_type, subject_id, lead_id, body)"
        " VALUES ($1, 'note', 'lead', $2, $2, '{\"text\": \"called\"}')",
        org,
        lead,
    )
    return lead, call_id


async def _everything(conn) -> str:
    parts = []
    for table in TABLES:
        parts.append(
            str(
                await conn.fetchval(
                    f"SELECT string_agg(to_jsonb(t)::text, ',' ORDER BY to_jsonb(t)::text) FROM {table} t"
                )
            )
        )
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


async def test_another_organization_cannot_export_or_erase_a_lead(conn):
    org_a, org_b = await _org(conn, "tenant-a"), await _org(conn, "tenant-b")
    lead_a, _ = await _lead_with_a_call(conn, org_a)
    # org B holds a call that names org A's lead id: it must not be swept into B's erasure either
    await create_call(conn, NewCall(org_b, "simulator", "outbound", external_id=uuid.uuid4().hex))
    before = await _everything(conn)
    with pytest.raises(LeadNotFound):
        await export_lead(conn, org_b, lead_a, include_raw_text=True, actor_id=None)
    with pytest.raises(LeadNotFound):
        await erase_lead(conn, None, org_b, lead_a, actor_id=None)
    assert await _everything(conn) == before
    assert await conn.fetchval("SELECT email FROM leads WHERE id = $1", lead_a) == "ada@example.com"
    assert await conn.fetchval("SELECT count(*) FROM audit_log WHERE action = 'lead.erased'") == 0


async def test_erasure_in_its_own_organization_touches_only_that_lead(conn):
    org_a, org_b = await _org(conn, "own-a"), await _org(conn, "own-b")
    lead_a, call_a = await _lead_with_a_call(conn, org_a)
    lead_b, call_b = await _lead_with_a_call(conn, org_b)
    result = await erase_lead(conn, None, org_a, lead_a, actor_id=None)
    assert (result.calls, result.segments_deleted) == (1, 1)
    assert await conn.fetchval("SELECT email FROM leads WHERE id = $1", lead_a) is None
    assert await conn.fetchval("SELECT to_number FROM calls WHERE id = $1", call_a) is None
    # the other organization's lead, call and transcript are untouched
    assert await conn.fetchval("SELECT email FROM leads WHERE id = $1", lead_b) == "ada@example.com"
    assert await conn.fetchval("SELECT to_number FROM calls WHERE id = $1", call_b) == "+15550100"
    assert (
        await conn.fetchval("SELECT count(*) FROM transcript_segments WHERE call_id = $1", call_b)
        == 1
    )
    exported = await export_lead(conn, org_b, lead_b, include_raw_text=False, actor_id=None)
    assert exported["lead"]["id"] == lead_b and [c["id"] for c in exported["calls"]] == [call_b]
