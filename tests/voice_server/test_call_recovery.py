"""A running node ends the calls of a node that died and did not come back.

The dead node's call is in the database as it left it (live, naming the node,
its heartbeat long stale); a real app with a short ``COACHLINE_NODE_STALE_S``
ends it through its periodic job and tells the bus, as an abnormal end.
"""

import asyncio

from crm_core.calls import nodes
from crm_core.calls.live_events import CALL_ENDED
from crm_core.calls.records import NewCall, create_call
from tests.polling import eventually
from tests.voice_server.carrier_app import start_carrier_app, stop_carrier_app
from voice_server.app_keys import RUNTIME
from voice_server.call_recovery import NODE_IDENTITY


async def test_calls_of_a_node_gone_silent_are_ended_by_a_live_one(
    migrated_database, redis_url, tmp_path
):
    ca = await start_carrier_app(
        migrated_database,
        redis_url,
        COACHLINE_DATA_DIR=str(tmp_path / "data"),
        COACHLINE_NODE_ID="node-b",
        COACHLINE_NODE_STALE_S="1",
    )
    try:
        assert ca.app[NODE_IDENTITY].node_id == "node-b"
        sub = await ca.app[RUNTIME].bus.subscribe(CALL_ENDED)
        async with ca.pool.acquire() as conn:
            await nodes.beat(conn, "node-a")
            await conn.execute(
                "UPDATE call_nodes SET heartbeat_at = now() - interval '1 hour'"
                " WHERE node_id = 'node-a'"
            )
            orphan = await create_call(
                conn,
                NewCall(ca.org_id, "sip", "inbound", external_id="lost@a", status="in-progress",
                        rep_id=ca.rep_id, node_id="node-a"),
            )
        call_id = str(orphan["id"])

        async def ended():
            row = await ca.call_row(call_id)
            return row if row["status"] == "failed" else None

        # the job runs every second, under a lease another test's node may hold for 15 s
        row = await eventually(ended, 30, what="the dead node's call to be ended")
        assert row["ended_abnormally"] and row["ended_at"] and row["node_id"] is None
        delivery = await asyncio.wait_for(sub.__anext__(), 10)
        assert delivery.event.payload["call_id"] == call_id
        assert delivery.event.payload["abnormal"] is True
        assert delivery.event.org_id == ca.org_id
        # this node says it is alive
        async with ca.pool.acquire() as conn:
            assert await conn.fetchval(
                "SELECT heartbeat_at > now() - interval '1 minute' FROM call_nodes"
                " WHERE node_id = 'node-b'"
            )
        await sub.close()
    finally:
        await stop_carrier_app(ca)
