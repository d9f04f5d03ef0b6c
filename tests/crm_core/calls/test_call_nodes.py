"""Which node carries a live call, and ending the calls of a node that died."""

import pytest_asyncio

from crm_core.calls import nodes
from crm_core.calls.records import NewCall, create_call, mark_call_ended, update_call_status
from crm_core.calls.stream_admissions import admit_stream, issue_stream_admission
from storage.database import connect


@pytest_asyncio.fixture(loop_scope="session")
async def conn(migrated_database):
    c = await connect(migrated_database)
    yield c
    await c.close()


@pytest_asyncio.fixture(loop_scope="session")
async def org(conn):
    return str(
        await conn.fetchval(
            "INSERT INTO organizations (name, slug) VALUES ('Acme', 'acme') RETURNING id"
        )
    )


async def _live_call(conn, org, external_id: str, node_id: str | None, status="in-progress"):
    return await create_call(
        conn,
        NewCall(org, "sip", "inbound", external_id=external_id, status=status, node_id=node_id),
    )


async def _node_of(conn, call_id):
    return await conn.fetchval("SELECT node_id FROM calls WHERE id = $1", call_id)


async def test_the_node_admitting_a_stream_carries_the_call_until_it_ends(conn, org):
    call = await create_call(
        conn, NewCall(org, "twilio", "inbound", external_id="CA1", status="ringing")
    )
    assert call["node_id"] is None  # created by a webhook: no node has its media yet
    token = await issue_stream_admission(conn, str(call["id"]), "twilio")
    row = await admit_stream(conn, str(call["id"]), "twilio", "CA1", token, node_id="node-a")
    assert row is not None and row["node_id"] == "node-a"
    assert await _node_of(conn, call["id"]) == "node-a"
    ended = await mark_call_ended(conn, call["id"])
    assert ended["status"] == "completed" and ended["node_id"] is None


async def test_a_refused_stream_marks_no_node(conn, org):
    call = await create_call(
        conn, NewCall(org, "twilio", "inbound", external_id="CA2", status="ringing")
    )
    await issue_stream_admission(conn, str(call["id"]), "twilio")
    assert await admit_stream(conn, str(call["id"]), "twilio", "CA2", "wrong", node_id="x") is None
    assert await _node_of(conn, call["id"]) is None


async def test_a_carrier_status_that_ends_the_call_clears_its_node(conn, org):
    call = await _live_call(conn, org, "a@b", "node-a")
    assert call["node_id"] == "node-a"
    row = await update_call_status(conn, call["id"], "completed")
    assert row["node_id"] is None
    ended = await create_call(
        conn, NewCall(org, "sip", "inbound", external_id="c@d", status="failed", node_id="node-a")
    )
    assert ended["node_id"] is None  # an ended call is nobody's to finish


async def test_a_restarted_node_ends_the_calls_it_left_open_and_only_those(conn, org):
    mine = [await _live_call(conn, org, f"mine{i}@x", "node-a") for i in range(3)]
    ringing = await _live_call(conn, org, "ringing@x", "node-a", status="ringing")
    other = await _live_call(conn, org, "other@x", "node-b")
    unowned = await _live_call(conn, org, "old@x", None)  # from before nodes were recorded

    ended = await nodes.end_calls_of_node(conn, "node-a", limit=2)  # batches until none is left

    assert {r["id"] for r in ended} == {c["id"] for c in [*mine, ringing]}
    for row in ended:
        assert row["status"] == "failed" and row["ended_abnormally"] and row["ended_at"]
        assert row["node_id"] is None and row["duration_s"] is not None
    for untouched in (other, unowned):
        row = await conn.fetchrow("SELECT * FROM calls WHERE id = $1", untouched["id"])
        assert row["status"] == "in-progress" and not row["ended_abnormally"]
    assert await nodes.end_calls_of_node(conn, "node-a") == []  # each call ended once


async def test_calls_of_a_node_whose_heartbeat_is_stale_are_ended_by_another(conn, org):
    await nodes.beat(conn, "alive")
    await nodes.beat(conn, "dead")
    await conn.execute(
        "UPDATE call_nodes SET heartbeat_at = now() - interval '1 hour' WHERE node_id = 'dead'"
    )
    alive = await _live_call(conn, org, "alive@x", "alive")
    dead = await _live_call(conn, org, "dead@x", "dead")
    unknown = await _live_call(conn, org, "unknown@x", "never-beat")
    mine = await _live_call(conn, org, "mine@x", "me")

    ended = await nodes.end_calls_of_dead_nodes(conn, 60, this_node="me")

    assert {r["id"] for r in ended} == {dead["id"], unknown["id"]}
    assert all(r["status"] == "failed" and r["ended_abnormally"] for r in ended)
    for kept in (alive, mine):  # a live node's calls, and the caller's own
        assert await _node_of(conn, kept["id"]) == kept["node_id"]
    # a node gone long ago and carrying nothing is forgotten; one still carrying a call is kept
    await conn.execute("UPDATE call_nodes SET heartbeat_at = now() - interval '2 days'")
    assert await nodes.forget_dead_nodes(conn) == 1
    assert await conn.fetchval("SELECT array_agg(node_id) FROM call_nodes") == ["alive"]
