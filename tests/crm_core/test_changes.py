"""A write's audit row and outbox event: written together, published after the commit, marked
published in shared batches."""

import asyncio

import pytest

from crm_core.changes import ChangeSet, flush_published_marks
from storage.database import create_pool
from storage.event_bus_memory import InProcessEventBus


async def _org(conn, slug):
    return str(await conn.fetchval("INSERT INTO organizations (name, slug) VALUES ($1, $1) RETURNING id", slug))


async def test_audit_row_and_outbox_event_commit_or_roll_back_together(migrated_database):
    pool = await create_pool(migrated_database)
    try:
        async with pool.acquire() as conn:
            org = await _org(conn, "changes-tx")
            with pytest.raises(RuntimeError):
                async with conn.transaction():
                    changes = ChangeSet(org, None, actor_kind="system")
                    await changes.record(conn, action="lead.create", resource_type="lead", resource_id="x1",
                                         after={"id": "x1"}, event_type="crm.lead.created")
                    raise RuntimeError("the write fails after recording")
            assert await conn.fetchval("SELECT count(*) FROM audit_log WHERE org_id = $1", org) == 0
            assert await conn.fetchval("SELECT count(*) FROM outbox WHERE org_id = $1", org) == 0

            async with conn.transaction():
                changes = ChangeSet(org, None, actor_kind="system")
                await changes.record(conn, action="lead.create", resource_type="lead", resource_id="x2",
                                     before=None, after={"id": "x2"}, event_type="crm.lead.created",
                                     detail={"why": "test"})
                await changes.record(conn, action="lead.view", resource_type="lead", resource_id="x2")
            audit = await conn.fetch(
                "SELECT action, after, detail FROM audit_log WHERE org_id = $1 ORDER BY id", org)
            outbox = await conn.fetch("SELECT event_id, type, payload FROM outbox WHERE org_id = $1", org)
        assert [(r["action"], r["after"], r["detail"]) for r in audit] == [
            ("lead.create", {"id": "x2"}, {"why": "test"}), ("lead.view", None, {})]
        # Only the change with an event type goes to the outbox, with the event the ChangeSet holds.
        assert [(r["type"], r["payload"]) for r in outbox] == [("crm.lead.created", {"id": "x2"})]
        assert [e.id for e in changes.events] == [str(outbox[0]["event_id"])]
    finally:
        await pool.close()


async def test_published_marks_of_many_writes_are_all_written(migrated_database):
    pool = await create_pool(migrated_database)
    bus = InProcessEventBus()
    try:
        async with pool.acquire() as conn:
            org = await _org(conn, "changes-marks")

        async def write(i):
            changes = ChangeSet(org, None, actor_kind="system")
            async with pool.acquire() as conn, conn.transaction():
                await changes.record(conn, action="lead.create", resource_type="lead", resource_id=f"m{i}",
                                     after={"id": f"m{i}"}, event_type="crm.lead.created")
            await changes.publish(pool, bus)

        await asyncio.gather(*(write(i) for i in range(40)))
        await flush_published_marks()
        async with pool.acquire() as conn:
            pending = await conn.fetchval(
                "SELECT count(*) FROM outbox WHERE org_id = $1 AND published_at IS NULL", org)
            # Shared batches: far fewer distinct mark times than events.
            batches = await conn.fetchval(
                "SELECT count(DISTINCT published_at) FROM outbox WHERE org_id = $1", org)
        assert pending == 0
        assert batches < 40

        # Without a flush, a later write's mark still lands on its own (the background writer).
        await write(99)
        async with pool.acquire() as conn:
            for _ in range(100):
                if await conn.fetchval("SELECT published_at IS NOT NULL FROM outbox "
                                       "WHERE org_id = $1 AND payload->>'id' = 'm99'", org):
                    break
                await asyncio.sleep(0.05)
            else:
                pytest.fail("the published mark was never written")
    finally:
        await bus.close()
        await pool.close()


async def test_a_connection_back_in_the_pool_has_no_open_transaction(migrated_database):
    # The pool skips asyncpg's reset query on release; an abandoned transaction must still end.
    pool = await create_pool(migrated_database)
    try:
        async with pool.acquire() as conn:
            org = await _org(conn, "changes-pool")
            await conn.execute("BEGIN")
            await conn.execute("INSERT INTO audit_log (org_id, actor_kind, action, resource_type) "
                               "VALUES ($1, 'system', 'left.open', 'lead')", org)
        async with pool.acquire() as conn:
            assert not conn.is_in_transaction()
            assert await conn.fetchval("SELECT count(*) FROM audit_log WHERE action = 'left.open'") == 0
    finally:
        await pool.close()
