import pytest
import pytest_asyncio

from crm_core.calls.records import (
    NewCall,
    SegmentRow,
    UnknownCallStatus,
    add_final_segments,
    create_call,
    list_segments,
    mark_call_ended,
    update_call_status,
)
from storage.database import connect


@pytest_asyncio.fixture(loop_scope="session")
async def conn(migrated_database):
    c = await connect(migrated_database)
    yield c
    await c.close()


@pytest_asyncio.fixture(loop_scope="session")
async def org(conn):
    return str(await conn.fetchval("INSERT INTO organizations (name, slug) VALUES ('Acme', 'acme') RETURNING id"))


async def test_creating_the_same_carrier_call_twice_returns_one_row(conn, org):
    first = await create_call(conn, NewCall(org, "twilio", "inbound", external_id="CA1"))
    again = await create_call(conn, NewCall(org, "twilio", "inbound", external_id="CA1"))
    assert first["id"] == again["id"]
    assert await conn.fetchval("SELECT count(*) FROM calls") == 1


async def test_status_moves_forward_only_and_repeats_change_nothing(conn, org):
    call = await create_call(conn, NewCall(org, "twilio", "outbound", external_id="CA2"))
    row = await update_call_status(conn, call["id"], "ringing")
    assert row["status"] == "ringing"
    row = await update_call_status(conn, call["id"], "in-progress")
    answered = row["answered_at"]
    assert answered is not None
    row = await update_call_status(conn, call["id"], "ringing")  # late, out of order
    assert row["status"] == "in-progress"
    row = await update_call_status(conn, call["id"], "completed", duration_s=42)
    assert (row["status"], row["duration_s"]) == ("completed", 42)
    assert row["ended_at"] is not None and row["answered_at"] == answered
    again = await update_call_status(conn, call["id"], "completed", duration_s=42)
    assert again["updated_at"] == row["updated_at"]
    with pytest.raises(UnknownCallStatus):
        await update_call_status(conn, call["id"], "exploded")


async def test_media_end_marks_abnormal_calls_failed_but_keeps_carrier_status(conn, org):
    live = await create_call(conn, NewCall(org, "sip", "inbound", external_id="x@y", status="in-progress"))
    row = await mark_call_ended(conn, live["id"], abnormal=True)
    assert (row["status"], row["ended_abnormally"]) == ("failed", True)
    done = await create_call(conn, NewCall(org, "sip", "inbound", external_id="z@y", status="completed"))
    row = await mark_call_ended(conn, done["id"])
    assert (row["status"], row["ended_abnormally"]) == ("completed", False)


async def test_final_segments_are_written_once(conn, org):
    call = await create_call(conn, NewCall(org, "twilio", "inbound", external_id="CA3"))
    segs = [
        SegmentRow("rep-1", "rep", 0, 1200, "hello there", [{"w": "hello", "s": 0, "e": 500}]),
        SegmentRow("customer-1", "customer", 1300, 2000, "hi", []),
    ]
    assert await add_final_segments(conn, org, call["id"], segs) == 2
    assert await add_final_segments(conn, org, call["id"], segs) == 0
    rows = await list_segments(conn, call["id"], org_id=org)
    assert [r["text"] for r in rows] == ["hello there", "hi"]
    assert rows[0]["words"] == [{"w": "hello", "s": 0, "e": 500}]
