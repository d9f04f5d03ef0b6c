import json
import uuid

from crm_core.calls.records import NewCall, SegmentRow, add_final_segments, create_call
from media.frames import Party
from tests.voice_server.recording_world import bearer, db, make_world, node, tone_frames  # noqa: F401
from voice_server.app_keys import CALL_SESSIONS
from voice_server.call_session import CallInfo
from voice_server.recordings import RECORDINGS


async def _lead_with_a_recorded_call(app, db, world):
    lead = str(
        await db.fetchval(
            "INSERT INTO leads (org_id, owner_id, first_name, last_name, email, phone, company)"
            " VALUES ($1, $2, 'Ada', 'Byron', 'ada@example.com', '+15550100', 'Analytical') RETURNING id",
            uuid.UUID(world.org_id),
            uuid.UUID(world.rep),
        )
    )
    call = await create_call(
        db,
        NewCall(
            world.org_id,
            "simulator",
            "outbound",
            external_id=uuid.uuid4().hex,
            to_number="+15550100",
            rep_id=world.rep,
            lead_id=lead,
        ),
    )
    call_id = str(call["id"])
    await add_final_segments(
        db,
        world.org_id,
        call_id,
        [
            SegmentRow(
                "s1",
                "customer",
                0,
                900,
                "my email is [EMAIL]",
                [],
                text_raw="my email is ada@example.com",
            )
        ],
    )
    sessions = app[CALL_SESSIONS]
    session = await sessions.open(CallInfo(call_id, world.org_id, "simulator", "outbound"))
    for frame in tone_frames(Party.CUSTOMER, 1.0):
        session.push_audio(frame)
    await sessions.close(call_id)
    return lead, call_id


async def test_export_then_erase_a_lead(node, db):
    client, app = node
    world = await make_world(db)
    lead, call_id = await _lead_with_a_recorded_call(app, db, world)
    rec_id = await db.fetchval("SELECT id FROM recordings WHERE call_id = $1", uuid.UUID(call_id))
    admin = await bearer(db, world.admin)

    for user in (world.manager_a, world.rep):  # they see the lead (their own, their team's): 403
        assert (
            await client.get(f"/api/v1/leads/{lead}/export", headers=await bearer(db, user))
        ).status == 403
        assert (
            await client.post(f"/api/v1/leads/{lead}/erasure", headers=await bearer(db, user))
        ).status == 403
    # a post-call summary quotes the customer ("send it to ada@example.com"): erasure must clear it
    await db.execute(
        "UPDATE calls SET summary = $2 WHERE id = $1", uuid.UUID(call_id),
        json.dumps({"key_points": ["customer asked to email ada@example.com"]}),
    )
    resp = await client.get(f"/api/v1/leads/{lead}/export", headers=admin)
    assert resp.status == 200
    data = await resp.json()
    assert data["lead"]["email"] == "ada@example.com" and data["calls"][0]["id"] == call_id
    assert data["recordings"][0]["id"] == str(rec_id)
    assert data["transcript_segments"][0]["text"] == "my email is [EMAIL]"
    assert "text_raw" not in data["transcript_segments"][0]  # this admin lacks transcripts:raw
    # complete and typed as JSON says: every exported column but text_raw, ids and times as text
    stored = await db.fetchrow(
        "SELECT call_id, segment_key, party, speaker, start_ms, end_ms, text, text_raw, created_at"
        " FROM transcript_segments WHERE call_id = $1", uuid.UUID(call_id))
    expected = {
        key: str(value) if isinstance(value, uuid.UUID)
        else value.isoformat() if hasattr(value, "isoformat") else value
        for key, value in dict(stored).items() if key != "text_raw"
    }
    assert data["transcript_segments"][0] == json.loads(json.dumps(expected)), expected

    resp = await client.post(f"/api/v1/leads/{lead}/erasure", headers=admin)
    assert resp.status == 200
    assert await resp.json() == {
        "lead_id": lead,
        "calls": 1,
        "recordings_shredded": 1,
        "segments_deleted": 1,
    }
    assert not app[RECORDINGS].store.exists(rec_id)
    row = await db.fetchrow("SELECT * FROM leads WHERE id = $1", uuid.UUID(lead))
    assert all(row[f] is None for f in ("first_name", "last_name", "email", "phone", "company"))
    assert (
        await db.fetchval(
            "SELECT count(*) FROM transcript_segments WHERE call_id = $1", uuid.UUID(call_id)
        )
        == 0
    )
    assert (
        await db.fetchval("SELECT to_number FROM calls WHERE id = $1", uuid.UUID(call_id)) is None
    )
    assert await db.fetchval("SELECT summary FROM calls WHERE id = $1", uuid.UUID(call_id)) is None
    assert await db.fetchval("SELECT status FROM recordings WHERE id = $1", rec_id) == "deleted"
    resp = await client.get(f"/api/v1/calls/{call_id}/recording", headers=admin)
    assert resp.status == 404
    again = await client.post(f"/api/v1/leads/{lead}/erasure", headers=admin)
    assert (await again.json())["recordings_shredded"] == 0  # idempotent

    audit = await db.fetch(
        "SELECT action, outcome FROM audit_log WHERE resource_type = 'lead' AND resource_id = $1",
        lead,
    )
    actions = [(a["action"], a["outcome"]) for a in audit]
    assert actions.count(("lead.exported", "ok")) == 1 and actions.count(("lead.erased", "ok")) == 2
    assert (
        actions.count(("lead.exported", "denied")) == 2
        and actions.count(("lead.erased", "denied")) == 2
    )
    missing = await client.get(f"/api/v1/leads/{uuid.uuid4()}/export", headers=admin)
    assert missing.status == 404
