"""Coaching prompts are kept per call: written once from the bus, read back under the call's reach."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from coaching.call_coach import CallCoach, CoachingProfile
from coaching.records import CoachingPrompt, SegmentInput, WordTiming
from crm_core.calls.events import CallEventWriter
from crm_core.calls.prompts import list_call_prompts
from crm_core.calls.records import NewCall, create_call
from crm_core.privacy import erase_lead, export_lead
from storage.database import connect, create_pool
from storage.event_bus_memory import InProcessEventBus
from storage.events import Event
from storage.local_servers import LocalPostgres
from storage.migrations import apply_migrations
from voice_server.app_keys import CALL_SESSIONS
from voice_server.call_session import CallInfo
from voice_server.live_stages import prompt_event

RULES = {"keywords": {"competitor": {"phrases": [{"phrase": "conference"}]}}}


async def _eventually(check, timeout=15.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.1)


def _coached_prompts() -> list[CoachingPrompt]:
    """What the real coach prompts when the customer names the competitor."""
    coach = CallCoach(CoachingProfile.load(RULES))
    words = [("we", 4000), ("already", 4300), ("use", 4700), ("conference", 5000), ("today", 5600)]
    segment = SegmentInput(segment_id="3", party="customer", text="we already use conference today",
                           start_ms=4000, end_ms=5900, is_final=True,
                           words=tuple(WordTiming(w, at, at + 280) for w, at in words))
    prompts = [i for i in coach.feed(segment) if isinstance(i, CoachingPrompt)]
    assert prompts, "the competitor rule did not fire"
    return prompts


def _prompt_payload(prompt: CoachingPrompt, segment_key: str | None = None) -> dict:
    """The ``coaching.prompt`` payload the live path publishes for ``prompt``."""
    return prompt_event(prompt, segment_key).to_payload()


def _event(call_id: str, org_id: str, prompt: CoachingPrompt, segment_key: str | None) -> Event:
    return Event("coaching.prompt", {"call_id": call_id, **_prompt_payload(prompt, segment_key)},
                 org_id=org_id)


async def test_prompts_of_a_call_are_stored_once_and_follow_the_calls_reach(world):
    org, stranger = await world.make_org(), await world.make_org()
    async with world.pool.acquire() as conn:
        call = await create_call(conn, NewCall(org.id, "simulator", "inbound", external_id=uuid.uuid4().hex,
                                               rep_id=org.rep.user_id, status="in-progress"))
    call_id = str(call["id"])
    prompts = _coached_prompts()
    session = await world.client.app[CALL_SESSIONS].open(
        CallInfo(call_id, org.id, "simulator", "inbound", rep_id=org.rep.user_id))
    try:
        for prompt in prompts:
            payload = _prompt_payload(prompt, "customer:3")
            await session.publish("coaching.prompt", payload)
            await session.publish("coaching.prompt", payload)  # delivered twice (at-least-once)
        # A clock prompt (no transcript line) whose card quotes personal data.
        clock = CoachingPrompt(rule_id="silence", kind="silence", severity="info", title="Say something",
                               body="call them back on 555 123 4567", at_ms=9000, party=None,
                               evidence=("silent 8 s",))
        await session.publish("coaching.prompt", _prompt_payload(clock))
    finally:
        await world.client.app[CALL_SESSIONS].close(call_id, reason="hangup")

    async def stored():
        async with world.pool.acquire() as conn:
            rows = await list_call_prompts(conn, org.id, call["id"])
        return rows if len(rows) == len(prompts) + 1 else None

    await _eventually(stored)
    await asyncio.sleep(0.5)  # the duplicates have been consumed too: still one row each
    async with world.pool.acquire() as conn:
        rows = await list_call_prompts(conn, org.id, call["id"])
        assert await list_call_prompts(conn, stranger.id, call["id"]) == []  # another org's call
    assert len(rows) == len(prompts) + 1
    first = rows[0]
    assert (first["rule_id"], first["kind"], first["party"], first["segment_key"], first["at_ms"]) == (
        prompts[0].rule_id, "keyword", "customer", "customer:3", prompts[0].at_ms)
    assert first["title"] == prompts[0].title and list(first["evidence"]) == list(prompts[0].evidence)

    path = f"/api/v1/calls/{call_id}/prompts"
    for asker, visible in (("rep", True), ("other_rep", False), ("outsider_rep", False),
                           ("manager", True), ("admin", True)):
        resp, body = await world.request("GET", path, as_=getattr(org, asker))
        assert resp.status == (200 if visible else 404), (asker, body)
    for person in (stranger.admin, stranger.manager, stranger.rep):
        resp, _ = await world.request("GET", path, as_=person)
        assert resp.status == 404

    _, page = await world.request("GET", path, as_=org.manager)
    assert [p["at_ms"] for p in page["data"]] == sorted(r["at_ms"] for r in rows)
    assert page["data"][0]["segment_key"] == "customer:3" and page["data"][-1]["segment_key"] is None
    # The cards' text is masked like the transcript for those without transcripts:raw.
    _, masked = await world.request("GET", path, as_=org.rep, params={"kind": "silence"})
    assert [p["body"] for p in masked["data"]] == ["call them back on ##########"]
    _, raw = await world.request("GET", path, as_=org.admin, params={"kind": "silence"})
    assert [p["body"] for p in raw["data"]] == ["call them back on 555 123 4567"]

    # Pages follow the call clock; the cursor carries on where the last page stopped.
    _, one = await world.request("GET", path, as_=org.admin, params={"limit": "1"})
    _, rest = await world.request("GET", path, as_=org.admin,
                                  params={"limit": "50", "cursor": one["next_cursor"]})
    assert [p["id"] for p in one["data"] + rest["data"]] == [p["id"] for p in page["data"]]
    resp, _ = await world.request("GET", path, as_=org.admin, params={"kind": "shouting"})
    assert resp.status == 400
    resp, _ = await world.request("GET", f"/api/v1/calls/{uuid.uuid4()}/prompts", as_=org.admin)
    assert resp.status == 404


@pytest.fixture
def own_postgres(tmp_path):
    server = LocalPostgres(tmp_path / "pg").start()
    yield server
    server.stop()


async def test_prompts_survive_a_database_outage_and_bad_events_are_dropped(own_postgres, caplog):
    conn = await connect(own_postgres.dsn)
    await apply_migrations(conn)
    org = str(await conn.fetchval("INSERT INTO organizations (name, slug) VALUES ('A','a') RETURNING id"))
    call = await create_call(conn, NewCall(org, "twilio", "inbound", external_id="CA1", status="in-progress"))
    call_id = str(call["id"])
    await conn.close()
    first, *_ = _coached_prompts()
    later = CoachingPrompt(rule_id="disclosure", kind="checklist", severity="critical",
                           title="Say the call is recorded", body="", at_ms=30_000, party="rep")

    pool = await create_pool(own_postgres.dsn)
    bus = InProcessEventBus()
    writer = CallEventWriter(lambda: pool, bus, redeliver_after_s=0.3)
    await writer.start()
    try:
        await bus.publish(_event(call_id, org, first, "customer:3"))

        async def first_written():
            return writer.written_prompts == 1

        await _eventually(first_written)
        await asyncio.to_thread(own_postgres.stop)
        # Published while PostgreSQL is down: they stay pending on the bus, nothing is lost.
        await bus.publish(_event(call_id, org, later, None))
        await bus.publish(_event(call_id, org, later, None))  # and once more, redelivered
        await bus.publish(_event(str(uuid.uuid4()), org, later, None))  # a call that vanished
        await bus.publish(Event("coaching.prompt", {"call_id": call_id, "prompt": {"rule_id": "x"}},
                                org_id=org))  # malformed
        await asyncio.sleep(1.0)
        await asyncio.to_thread(own_postgres.start)

        async def written():
            c = await connect(own_postgres.dsn)
            try:
                rows = await list_call_prompts(c, org, call_id)
            finally:
                await c.close()
            return rows if len(rows) == 2 else None

        rows = await _eventually(written, timeout=30)
        assert [(r["rule_id"], r["at_ms"], r["severity"]) for r in rows] == [
            (first.rule_id, first.at_ms, first.severity), ("disclosure", 30_000, "critical")]
        await asyncio.sleep(1.0)  # several redelivery periods: nothing more, nothing retried forever
        c = await connect(own_postgres.dsn)
        try:
            assert len(await list_call_prompts(c, org, call_id)) == 2
        finally:
            await c.close()
        dropped = [r.getMessage() for r in caplog.records
                   if r.name == "crm_core.calls.events" and "dropping" in r.getMessage()]
        assert len(dropped) == 1, dropped  # the malformed one; the vanished call writes nothing
    finally:
        await writer.close()
        await pool.close()


async def test_a_leads_export_holds_its_calls_prompts_and_erasure_removes_them(world):
    org = await world.make_org()
    lead = await world.create_lead(org.rep)
    async with world.pool.acquire() as conn:
        call = await create_call(conn, NewCall(org.id, "twilio", "inbound", external_id=uuid.uuid4().hex,
                                               rep_id=org.rep.user_id, lead_id=lead["id"]))
    call_id = str(call["id"])
    quoting = CoachingPrompt(rule_id="callback", kind="keyword", severity="info", title="Call back",
                             body="they said 555 123 4567", at_ms=1200, party="customer",
                             evidence=("555 123 4567",))
    await world.bus.publish(_event(call_id, org.id, quoting, "customer:1"))

    async def stored():
        async with world.pool.acquire() as conn:
            return await list_call_prompts(conn, org.id, call["id"])

    await _eventually(stored)
    async with world.pool.acquire() as conn:
        masked = await export_lead(conn, org.id, lead["id"], include_raw_text=False, actor_id=None)
        raw = await export_lead(conn, org.id, lead["id"], include_raw_text=True, actor_id=None)
        assert [(p["call_id"], p["body"], p["evidence"]) for p in masked["coaching_prompts"]] == [
            (call_id, "they said ##########", ["##########"])]
        assert raw["coaching_prompts"][0]["body"] == "they said 555 123 4567"
        await erase_lead(conn, None, org.id, lead["id"], actor_id=None)
        assert await list_call_prompts(conn, org.id, call["id"]) == []
