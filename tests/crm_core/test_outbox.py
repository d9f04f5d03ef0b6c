import asyncio
import uuid

import redis.asyncio as aioredis

from crm_core.calls import NewCall, create_call
from crm_core.outbox import CallCompletedEvents, OutboxRelay, enqueue_event
from storage.database import create_pool
from storage.event_bus_memory import InProcessEventBus
from storage.event_bus_redis import RedisEventBus
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


async def test_two_relays_publish_each_committed_event_once_with_its_outbox_id(migrated_database):
    pools = [await create_pool(migrated_database) for _ in range(2)]
    bus = InProcessEventBus()
    sub = await bus.subscribe("crm.*")
    try:
        org = await _org(pools[0])
        ids = []
        for i in range(30):
            async with pools[0].acquire() as conn, conn.transaction():
                ids.append(await enqueue_event(conn, org, "crm.lead.created", {"i": i}))
        # An event whose transaction rolled back never exists.
        async with pools[0].acquire() as conn:
            tx = conn.transaction()
            await tx.start()
            await enqueue_event(conn, org, "crm.lead.created", {"i": "rolled back"})
            await tx.rollback()
        # The same event id twice is one event.
        async with pools[0].acquire() as conn:
            await enqueue_event(conn, org, "crm.lead.created", {"i": 0}, event_id=ids[0])

        relays = [OutboxRelay(p, bus, batch_size=4) for p in pools]
        for _ in range(20):
            counts = await asyncio.gather(*(r.relay_once() for r in relays))
            if sum(counts) == 0:
                break
        events = await _drain(sub, 30)
        assert sorted(e.id for e in events) == sorted(ids)
        assert {e.org_id for e in events} == {str(org)}
        async with pools[0].acquire() as conn:
            assert await conn.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL") == 0
    finally:
        await sub.close()
        for p in pools:
            await p.close()


async def test_a_bus_outage_backs_off_and_nothing_is_lost(migrated_database, redis_url):
    pool = await create_pool(migrated_database)
    dead = RedisEventBus(aioredis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.3))
    live = RedisEventBus(aioredis.from_url(redis_url), stream=f"t:{uuid.uuid4().hex}")
    sub = await live.subscribe("crm.*")
    try:
        org = await _org(pool)
        async with pool.acquire() as conn:
            event_id = await enqueue_event(conn, org, "crm.deal.updated", {"stage": "demo"})
        assert await OutboxRelay(pool, dead).relay_once() == 0
        async with pool.acquire() as conn:
            row = await conn.fetchrow("SELECT * FROM outbox WHERE event_id = $1", event_id)
            assert row["published_at"] is None and row["attempts"] == 1 and row["last_error"]
            await conn.execute("UPDATE outbox SET next_attempt_at = now()")  # skip the wait
        assert await OutboxRelay(pool, live).relay_once() == 1
        (event,) = await _drain(sub, 1)
        assert event.id == event_id and event.payload == {"stage": "demo"}
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
