"""The live floor feed (/ws/floor): who may open it, which calls each viewer sees, what it carries.

A real node (create_app on the session's PostgreSQL, the in-memory bus), real call sessions
publishing the live events of the contract (crm_core/calls/live_events.py), real API tokens.
"""

from __future__ import annotations

import asyncio
import uuid

import aiohttp

from crm_core.calls.live_events import (
    MetricsEvent,
    PartyPair,
    PromptEvent,
    SentimentEvent,
    TranscriptEvent,
)
from crm_core.calls.records import NewCall, create_call
from tests.voice_server.recording_world import bearer, db, make_world, node  # noqa: F401
from voice_server.app_keys import CALL_SESSIONS
from voice_server.call_session import CallInfo

DEADLINE_S = 20


class Floor:
    """One /ws/floor connection and what it has received."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.messages: list[dict] = []

    async def until(self, predicate, what: str) -> dict:
        for message in self.messages:
            if predicate(message):
                return message
        async with asyncio.timeout(DEADLINE_S):
            while True:
                message = await self.ws.receive_json()
                self.messages.append(message)
                if predicate(message):
                    return message
        raise AssertionError(what)  # pragma: no cover - the timeout raises first

    def cards(self) -> set[str]:
        return {m["call_id"] for m in self.messages if m["type"] == "floor.call"}

    def of_call(self, call_id: str) -> list[dict]:
        return [m for m in self.messages if m.get("call_id") == call_id]


async def _open(client, headers) -> Floor:
    floor = Floor(await client.ws_connect("/ws/floor", headers=headers))
    await floor.until(lambda m: m["type"] == "feed.ready", "the floor never got ready")
    return floor


async def _status(client, headers) -> int:
    try:
        ws = await client.ws_connect("/ws/floor", headers=headers)
    except aiohttp.WSServerHandshakeError as exc:
        return exc.status
    await ws.close()
    return 101


async def _live_call(app, db, org_id: str, rep_id: str):  # noqa: F811
    row = await create_call(
        db,
        NewCall(
            org_id,
            "simulator",
            "inbound",
            external_id=uuid.uuid4().hex,
            from_number="+15550199",
            rep_id=rep_id,
            status="in-progress",
        ),
    )
    call_id = str(row["id"])
    session = await app[CALL_SESSIONS].open(
        CallInfo(call_id, org_id, "simulator", "inbound", rep_id=rep_id)
    )
    return call_id, session


def _metrics(rep_share: float) -> MetricsEvent:
    pair = PartyPair(0, 0)
    return MetricsEvent(
        4000,
        PartyPair(rep_share, round(1 - rep_share, 2)),
        PartyPair(2600, 1400),
        PartyPair(2600, 1400),
        None,
        0,
        pair,
        pair,
        pair,
        0,
        0,
        0.0,
    )


async def test_only_managers_and_admins_open_the_floor(node, db):  # noqa: F811
    client, _app = node
    world = await make_world(db)
    assert await _status(client, {}) == 401
    assert await _status(client, {"Authorization": "Bearer forged"}) == 401
    assert await _status(client, await bearer(db, world.rep)) == 403
    assert await _status(client, await bearer(db, world.manager_a)) == 101
    assert await _status(client, await bearer(db, world.admin)) == 101


async def test_each_viewer_sees_the_calls_of_their_reach_as_they_start_and_end(node, db):  # noqa: F811
    client, app = node
    world = await make_world(db)
    west_rep = str(
        await db.fetchval(
            "INSERT INTO users (org_id, email, name, role, team_id) VALUES ($1, $2, 'Walt West', 'rep', $3)"
            " RETURNING id",
            uuid.UUID(world.org_id),
            f"walt-{uuid.uuid4().hex[:6]}@x.test",
            uuid.UUID(world.team_b),
        )
    )
    rival = await make_world(db)
    # already live before anyone opens the floor: one call in each team
    east_call, east = await _live_call(app, db, world.org_id, world.rep)
    west_call, _west = await _live_call(app, db, world.org_id, west_rep)
    rival_call, _rival = await _live_call(app, db, rival.org_id, rival.rep)
    await east.emit(_metrics(0.64))

    manager = await _open(client, await bearer(db, world.manager_a))
    admin = await _open(client, await bearer(db, world.admin))
    rival_admin = await _open(client, await bearer(db, rival.admin))
    try:
        ready = await manager.until(lambda m: m["type"] == "feed.ready", "ready")
        # the world's own call row is in progress too (no media yet): a team-A call
        assert set(ready["calls"]) == {east_call, world.call_id}
        card = next(
            m["card"]
            for m in manager.messages
            if m.get("call_id") == east_call and m["type"] == "floor.call"
        )
        assert (
            card["rep_id"] == world.rep and card["rep_name"] == "rep" and card["team_name"] == "A"
        )
        assert card["customer_number"] == "+15550199" and card["elapsed_ms"] >= 0
        assert "org_id" not in card
        # what the call had already shown comes with it
        replayed = await manager.until(lambda m: m["type"] == "insight.metrics", "metrics replay")
        assert replayed["call_id"] == east_call and replayed["talk_ratio"]["rep"] == 0.64
        admin_ready = await admin.until(lambda m: m["type"] == "feed.ready", "ready")
        assert {east_call, west_call} <= set(admin_ready["calls"])
        assert rival_call not in admin_ready["calls"]
        rival_ready = await rival_admin.until(lambda m: m["type"] == "feed.ready", "ready")
        assert set(rival_ready["calls"]) == {rival_call, rival.call_id}

        # calls that start while the floor is open join it by themselves
        west_late, _west_late = await _live_call(app, db, world.org_id, west_rep)
        east_late, east_late_session = await _live_call(app, db, world.org_id, world.other_rep)
        await admin.until(
            lambda m: m["type"] == "floor.call" and m["call_id"] == west_late, "west late"
        )
        await admin.until(
            lambda m: m["type"] == "floor.call" and m["call_id"] == east_late, "east late"
        )
        await manager.until(
            lambda m: m["type"] == "floor.call" and m["call_id"] == east_late, "east late"
        )

        # the floor carries metrics, sentiment and prompts, never the transcript
        await east_late_session.emit(TranscriptEvent("s1", "customer", 0, 900, "we use Zoom today"))
        await east_late_session.emit(
            SentimentEvent("s1", "customer", -0.4, "negative", -0.3, 900, "t")
        )
        await east_late_session.emit(
            PromptEvent(
                "competitor",
                "keyword",
                "warning",
                "Zoom mentioned",
                "Ask what they like about it",
                900,
                "customer",
                id="competitor@900",
            )
        )
        prompt = await manager.until(lambda m: m["type"] == "coaching.prompt", "the prompt")
        assert prompt["call_id"] == east_late and prompt["prompt"]["title"] == "Zoom mentioned"
        sentiment = next(m for m in manager.of_call(east_late) if m["type"] == "insight.sentiment")
        assert sentiment["label"] == "negative"
        assert not [
            m for m in manager.messages + admin.messages if m["type"].startswith("transcript.")
        ]

        # a call leaves the floor when it ends; the other team's and organization's never came
        await app[CALL_SESSIONS].close(east_late, reason="hangup")
        await manager.until(
            lambda m: m["type"] == "call.ended" and m["call_id"] == east_late, "ended"
        )
        await admin.until(
            lambda m: m["type"] == "call.ended" and m["call_id"] == east_late, "ended"
        )
        for call_id in (west_call, west_late, rival_call):
            assert not manager.of_call(call_id), f"the manager saw another team's call {call_id}"
        assert not [
            m
            for m in rival_admin.messages
            if m.get("call_id") in {east_call, west_call, west_late, east_late}
        ]
        # events of an ended call are no longer sent to the floor
        await east_late_session.emit(_metrics(0.5))
        await east.emit(_metrics(0.7))
        await manager.until(
            lambda m: (
                m["type"] == "insight.metrics" and m["call_id"] == east_call and not m.get("replay")
            ),
            "east metrics",
        )
        assert [m["type"] for m in manager.of_call(east_late)][-1] == "call.ended"
    finally:
        for floor in (manager, admin, rival_admin):
            await floor.ws.close()
        for call_id in (east_call, west_call, rival_call, west_late, east_late):
            await app[CALL_SESSIONS].close(call_id, reason="hangup")

    # a floor opened after the call ended no longer lists it
    again = await _open(client, await bearer(db, world.manager_a))
    try:
        ready = await again.until(lambda m: m["type"] == "feed.ready", "ready")
        assert east_late not in ready["calls"]
    finally:
        await again.ws.close()
