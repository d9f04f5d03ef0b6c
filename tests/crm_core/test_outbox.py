import asyncio
import uuid

from crm_core.calls import NewCall, create_call
from crm_core.changes import relay_outbox
from crm_core.outbox import CallCompletedEvents, enqueue_event
from storage.database import create_pool
from storage.event_bus_memory import InProcessEventBus
from storage.events import Event


async def _org(pool):
    async with pool.acquire() as conn:
        return await conn.fetchval("INSERT INTO organizations (name, slug) VALUES ('o', $1) RETURNING id",
                                   uuid.uuid4().hex)


async def _drain(sub, expected, timeout=5.0):
    got = []
    async def read():
        async for delivery in sub:
            got.append(delivery.event)
            if len(got) >= expected:
                return
    await asyncio.wait_for(read(), timeout)
    return got


async def test_enqueued_events_exist_only_when_committed_and_once_per_id(migrated_database):
    pool = await create_pool(migrated_database)
    bus = InProcessEventBus()
    sub = await bus.subscribe("crm.*")
    try:
        org = await _org(pool)
        async with pool.acquire() as conn, conn.transaction():
            kept = await enqueue_event(conn, org, "crm.lead.scored", {"score": 80})
        async with pool.acquire() as conn:
            tx = conn.transaction()
            await tx.start()
            await enqueue_event(conn, org, "crm.lead.scored", {"score": "rolled back"})
            await tx.rollback()
            assert await enqueue_event(conn, org, "crm.lead.scored", {"score": 1}, event_id=kept) == kept
        # The API's relay publishes it with the outbox's event id.
        assert await relay_outbox(pool, bus) == 1
        (event,) = await _drain(sub, 1)
        assert event.id == kept and event.payload == {"score": 80}
    finally:
        await sub.close()
        await pool.close()


async def test_call_ended_becomes_one_crm_call_completed_event(migrated_database):
    pool = await create_pool(migrated_database)
    bus = InProcessEventBus()
    bridge = CallCompletedEvents(pool, bus, redeliver_after_s=0.5)
    await bridge.start()
    try:
        org = await _org(pool)
        async with pool.acquire() as conn:
            call = await create_call(conn, NewCall(org_id=str(org), carrier="simulator", direction="outbound",
                                                   external_id=uuid.uuid4().hex))
        # Delivered twice (at-least-once), plus one malformed event that must not block anything.
        await bus.publish(Event("call.ended", {"call_id": "not-a-uuid"}, org_id=str(org)))
        for _ in range(2):
            await bus.publish(Event("call.ended", {"call_id": str(call["id"]), "abnormal": False},
                                    org_id=str(org)))
        for _ in range(100):
            async with pool.acquire() as conn:
                rows = await conn.fetch("SELECT * FROM outbox WHERE type = 'crm.call.completed'")
            if rows:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)
        async with pool.acquire() as conn:
            rows = await conn.fetch("SELECT * FROM outbox WHERE type = 'crm.call.completed'")
        assert len(rows) == 1
        assert rows[0]["payload"]["call_id"] == str(call["id"]) and rows[0]["org_id"] == org
    finally:
        await bridge.close()
        await pool.close()
