import asyncio
import uuid

import pytest

from crm_core.calls.events import CallEventWriter
from crm_core.calls.records import NewCall, create_call, get_call, list_segments
from storage.database import connect, create_pool
from storage.event_bus_memory import InProcessEventBus
from storage.events import Event
from storage.local_servers import LocalPostgres
from storage.migrations import apply_migrations


async def _eventually(check, timeout=15.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.1)


def _final(call_id: str, seg: str, text: str, start: int) -> dict:
    return {
        "call_id": call_id, "party": "customer", "segment_id": seg, "text": text,
        "start_ms": start, "end_ms": start + 900,
        "words": [{"text": w, "start_ms": start, "end_ms": start + 100, "probability": 0.9}
                  for w in text.split()],
    }


@pytest.fixture
def own_postgres(tmp_path):
    server = LocalPostgres(tmp_path / "pg").start()
    yield server
    server.stop()


async def test_segments_survive_a_database_outage_and_are_written_once(own_postgres):
    conn = await connect(own_postgres.dsn)
    await apply_migrations(conn)
    org = str(await conn.fetchval("INSERT INTO organizations (name, slug) VALUES ('A','a') RETURNING id"))
    call = await create_call(conn, NewCall(org, "twilio", "inbound", external_id="CA9", status="in-progress"))
    call_id = str(call["id"])
    await conn.close()

    pool = await create_pool(own_postgres.dsn)
    bus = InProcessEventBus()
    writer = CallEventWriter(lambda: pool, bus, redeliver_after_s=0.5)
    await writer.start()
    try:
        await bus.publish(Event("transcript.final", _final(call_id, "1", "hello there", 0), org_id=org))
        async def first_written():
            return writer.written_segments == 1

        await _eventually(first_written)

        await asyncio.to_thread(own_postgres.stop)
        await bus.publish(Event("transcript.final", _final(call_id, "2", "still talking", 1000), org_id=org))
        duplicate = Event("transcript.final", _final(call_id, "2", "still talking", 1000), org_id=org)
        await bus.publish(duplicate)  # the same segment delivered twice
        await bus.publish(Event("call.ended", {"call_id": call_id, "abnormal": False}, org_id=org))
        await asyncio.sleep(1.0)  # the writer fails and leaves the events pending
        await asyncio.to_thread(own_postgres.start)

        async def written():
            c = await connect(own_postgres.dsn)
            try:
                rows = await list_segments(c, call_id, org_id=org)
                ended = (await get_call(c, call_id))["ended_at"] is not None
                return rows if len(rows) == 2 and ended else None
            finally:
                await c.close()

        rows = await _eventually(written, timeout=30)
        assert [r["text"] for r in rows] == ["hello there", "still talking"]
        assert rows[1]["segment_key"] == "customer:2"
    finally:
        await writer.close()
        await pool.close()


async def test_a_malformed_event_is_dropped_without_blocking_the_next(migrated_database):
    pool = await create_pool(migrated_database)
    conn = await connect(migrated_database)
    org = str(await conn.fetchval("INSERT INTO organizations (name, slug) VALUES ('B','b') RETURNING id"))
    call = await create_call(conn, NewCall(org, "vonage", "inbound", external_id=str(uuid.uuid4())))
    bus = InProcessEventBus()
    writer = CallEventWriter(lambda: pool, bus, redeliver_after_s=0.5)
    await writer.start()
    try:
        await bus.publish(Event("transcript.final", {"call_id": str(call["id"]), "party": "mixed"}, org_id=org))
        await bus.publish(Event("transcript.final", _final(str(call["id"]), "7", "ok then", 50) | {"party": "mixed"}, org_id=org))

        async def one_row():
            return await list_segments(conn, call["id"], org_id=org)

        rows = await _eventually(one_row)
        assert [r["text"] for r in rows] == ["ok then"]
    finally:
        await writer.close()
        await conn.close()
        await pool.close()


async def test_an_event_for_a_vanished_organization_is_dropped_not_redelivered_forever(migrated_database, caplog):
    """A foreign-key failure is permanent (another tenant's leftovers, a deleted org): ack, log, move on."""
    pool = await create_pool(migrated_database)
    conn = await connect(migrated_database)
    org = str(await conn.fetchval("INSERT INTO organizations (name, slug) VALUES ('C','c') RETURNING id"))
    call = await create_call(conn, NewCall(org, "twilio", "inbound", external_id=str(uuid.uuid4())))
    bus = InProcessEventBus()
    writer = CallEventWriter(lambda: pool, bus, redeliver_after_s=0.2)
    await writer.start()
    try:
        ghost = str(uuid.uuid4())
        await bus.publish(Event("transcript.final", _final(str(call["id"]), "1", "lost", 10), org_id=ghost))
        await bus.publish(Event("transcript.final", _final(str(call["id"]), "2", "kept", 900), org_id=org))

        async def one_row():
            return await list_segments(conn, call["id"], org_id=org)

        rows = await _eventually(one_row)
        assert [r["text"] for r in rows] == ["kept"]
        await asyncio.sleep(1.0)  # several redelivery periods: the ghost event is not retried
        assert [r["text"] for r in await list_segments(conn, call["id"], org_id=org)] == ["kept"]
        messages = [r.getMessage() for r in caplog.records if r.name == "crm_core.calls.events"]
        assert sum("dropping" in m for m in messages) == 1, messages
        assert not any("could not persist" in m for m in messages), messages
    finally:
        await writer.close()
        await conn.close()
        await pool.close()
