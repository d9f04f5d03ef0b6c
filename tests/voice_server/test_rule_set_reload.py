"""An admin's rule-set edit reaches a call that is already under way, within seconds.

A call is opened through the app's CallSessions (as a carrier edge does) and real telephone
speech is pushed into it: the customer says "conference", which the organization's rule set
does not know yet, so no competitor prompt. The admin then saves a rule set that makes
"conference" a competitor (the same function the API and the CLI call), and the customer
keeps saying it on the same call: a competitor prompt must come, within a deadline polled for,
without the call being restarted.
"""

from __future__ import annotations

import asyncio
import uuid

import numpy as np
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from crm_core.admin.rule_sets import save_rule_set
from crm_core.admin.users import operator
from media.frames import AudioFrame, Party
from media.g711 import ulaw_decode, ulaw_encode
from tests.media.speech_corpus import load_clip, requires_corpus
from tests.polling import eventually
from voice_server.app import create_app
from voice_server.app_keys import CALL_SESSIONS, RUNTIME
from voice_server.call_session import CallInfo
from voice_server.rule_set_engine import CoachingRuleSets
from voice_server.runtime import Runtime
from voice_server.settings import load_settings

pytestmark = requires_corpus

NEW_RULES = {"keywords": {"competitor": {"phrases": [{"phrase": "conference"}]}}}


@pytest_asyncio.fixture(loop_scope="session")
async def server(migrated_database, redis_url):
    settings = load_settings(
        {"DATABASE_URL": migrated_database, "REDIS_URL": redis_url, "COACHLINE_LOG_FORMAT": "text"}
    )
    runtime = await Runtime(settings).start()
    app = create_app(settings, runtime)
    client = TestClient(TestServer(app))
    await client.start_server()
    org_id = await runtime.pool.fetchval(
        "INSERT INTO organizations (name, slug) VALUES ('Acme', $1) RETURNING id::text",
        f"acme-{uuid.uuid4().hex[:8]}",
    )
    yield app, org_id
    await client.close()
    await runtime.close()


def _frames(name: str, start_ms: int):
    pcm = ulaw_decode(ulaw_encode(load_clip(name)))
    audio = np.concatenate([pcm, np.zeros(9600, dtype=np.int16)])
    at = start_ms
    for i in range(0, len(audio) - 159, 160):
        yield AudioFrame(audio[i : i + 160].copy(), 8000, Party.CUSTOMER, at)
        at += 20


async def test_a_call_under_way_gets_the_edited_rule_set(server):
    app, org_id = server
    call_id = str(uuid.uuid4())
    bus = app[RUNTIME].bus
    events: list = []
    subs = [await bus.subscribe(p) for p in ("transcript.final", "coaching.prompt")]

    async def watch(sub):
        async for delivery in sub:
            if delivery.event.payload.get("call_id") == call_id:
                events.append(delivery.event)

    watchers = [asyncio.create_task(watch(s)) for s in subs]
    session = await app[CALL_SESSIONS].open(CallInfo(call_id, org_id, "twilio", "inbound"))
    clock = {"ms": 0}

    async def say_conference() -> int:
        finals_before = sum(e.type == "transcript.final" for e in events)
        for n, frame in enumerate(_frames("conf-full", clock["ms"])):
            session.push_audio(frame)
            clock["ms"] = frame.timestamp_ms + 20
            if n % 10 == 0:
                await asyncio.sleep(0.02)  # faster than real time, but let the decoder keep up
        await eventually(
            lambda: sum(e.type == "transcript.final" for e in events) > finals_before,
            30,
            what="the customer's sentence transcribed",
        )
        return len(events)

    def competitor_prompts():
        return [
            e
            for e in events
            if e.type == "coaching.prompt"
            and e.payload["prompt"]["rule_id"] == "competitor-battlecard"
        ]

    try:
        await say_conference()
        assert not competitor_prompts()  # the rule set in force knows no such competitor

        pool = app[RUNTIME].pool
        _, changes = operator(org_id)
        async with pool.acquire() as conn, conn.transaction():
            await save_rule_set(
                conn, changes, CoachingRuleSets(), NEW_RULES, note="conference is a rival"
            )

        async def prompted_on_the_same_call():
            await say_conference()
            return competitor_prompts()

        prompts = await eventually(
            prompted_on_the_same_call,
            60,
            interval_s=0.1,
            what="a competitor prompt on the call started before the edit",
        )
        assert "conference" in prompts[0].payload["prompt"]["title"].lower()
    finally:
        await app[CALL_SESSIONS].close(call_id, reason="hangup")
        for sub in subs:
            await sub.close()
        for task in watchers:
            task.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)
