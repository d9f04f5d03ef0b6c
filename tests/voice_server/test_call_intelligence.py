"""The live path end to end inside one server: real speech in, transcript and coaching events out.

A call is opened through the app's CallSessions (as a carrier edge does), real
8 kHz telephone speech is pushed as µ-law round-tripped frames, and the test
watches the event bus and the database: masked transcript segments, the
organization's coaching prompt, talk metrics, sentiment, the summary before
call.ended, and the finals persisted by the CRM writer.
"""

from __future__ import annotations

import asyncio
import json
import uuid

import numpy as np
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from crm_core.calls.records import NewCall, create_call
from media.frames import AudioFrame, Party
from media.g711 import ulaw_decode, ulaw_encode
from storage.database import connect
from tests.media.speech_corpus import load_clip, requires_corpus
from tests.polling import eventually
from voice_server.app import create_app
from voice_server.app_keys import CALL_SESSIONS, METRICS, RUNTIME
from voice_server.call_session import CallInfo
from voice_server.runtime import Runtime
from voice_server.settings import load_settings

pytestmark = requires_corpus

# The organization's own rule set: "conference" is a competitor's name here.
ORG_RULES = {"keywords": {"competitor": {"phrases": [{"phrase": "conference"}]}}}


@pytest_asyncio.fixture(loop_scope="session")
async def server(migrated_database, redis_url):
    settings = load_settings({"DATABASE_URL": migrated_database, "REDIS_URL": redis_url,
                              "COACHLINE_LOG_FORMAT": "text"})
    runtime = await Runtime(settings).start()
    app = create_app(settings, runtime)
    client = TestClient(TestServer(app))
    await client.start_server()
    conn = await connect(migrated_database)
    try:
        org_id = await conn.fetchval(
            "INSERT INTO organizations (name, slug, settings) VALUES ('Acme', $1, $2) RETURNING id::text",
            f"acme-{uuid.uuid4().hex[:8]}", {"coaching_rules": ORG_RULES})
        rep_id = await conn.fetchval(
            "INSERT INTO users (org_id, email, name, role) VALUES ($1, 'rep@acme.test', 'Rita Rep', 'rep') "
            "RETURNING id::text", org_id)
        call = await create_call(conn, NewCall(org_id=org_id, carrier="twilio", direction="inbound",
                                               external_id=f"CA{uuid.uuid4().hex}", rep_id=rep_id,
                                               status="in-progress"))
    finally:
        await conn.close()
    yield app, str(call["id"]), org_id, rep_id, client
    await client.close()
    await runtime.close()


def _telephone_frames(names: list[str], party: Party, start_ms: int = 0):
    """µ-law round-tripped 20 ms frames of the clips, with 1.2 s of silence after each."""
    at = start_ms
    for name in names:
        pcm = ulaw_decode(ulaw_encode(load_clip(name)))
        audio = np.concatenate([pcm, np.zeros(9600, dtype=np.int16)])
        for i in range(0, len(audio) - 159, 160):
            yield AudioFrame(audio[i:i + 160].copy(), 8000, party, at)
            at += 20


async def test_speech_becomes_masked_transcript_coaching_and_persisted_segments(server):
    app, call_id, org_id, rep_id, _ = server
    bus = app[RUNTIME].bus
    events: list = []
    subs = [await bus.subscribe(p) for p in ("transcript.*", "coaching.*", "insight.*", "call.*")]

    async def watch(sub):
        async for delivery in sub:
            if delivery.event.payload.get("call_id") == call_id:
                events.append(delivery.event)

    watchers = [asyncio.create_task(watch(s)) for s in subs]
    session = await app[CALL_SESSIONS].open(CallInfo(call_id, org_id, "twilio", "inbound", rep_id=rep_id))
    for n, frame in enumerate(_telephone_frames(["conf-full", "conf-locked"], Party.CUSTOMER)):
        session.push_audio(frame)
        if n % 10 == 0:
            await asyncio.sleep(0.02)  # faster than real time, but let the decoder keep up
    await app[CALL_SESSIONS].close(call_id, reason="hangup")
    wanted = {"call.ended", "transcript.final", "coaching.prompt", "insight.metrics", "insight.summary"}
    await eventually(lambda: wanted <= {e.type for e in events}, 30, what=f"events {sorted(wanted)}")
    for sub in subs:
        await sub.close()
    for task in watchers:
        task.cancel()
    await asyncio.gather(*watchers, return_exceptions=True)

    types = [e.type for e in events]
    finals = [e.payload for e in events if e.type == "transcript.final"]
    assert finals, types
    assert all(f["party"] == "customer" and f["speaker"] == "customer" for f in finals)
    text = " ".join(f["text"] for f in finals).lower()
    assert "conference" in text and "full" in text and "locked" in text
    for final in finals:
        assert final["words"] and final["start_ms"] < final["end_ms"]
        assert all(w["start_ms"] >= final["start_ms"] - 100 for w in final["words"])

    prompts = [e.payload["prompt"] for e in events if e.type == "coaching.prompt"]
    assert any(p["rule_id"] == "competitor-battlecard" and "conference" in p["title"].lower()
               for p in prompts), prompts
    metrics = [e.payload for e in events if e.type == "insight.metrics"]
    assert metrics and metrics[-1]["talk_ms"]["customer"] > 0 and metrics[-1]["talk_ms"]["rep"] == 0
    assert any(e.type == "insight.sentiment" and e.payload["party"] == "customer" for e in events)
    keyword_hits = [e.payload for e in events if e.type == "insight.keyword"]
    assert any(h["category"] == "competitor" and h["party"] == "customer" for h in keyword_hits)
    # The summary is published before the call ends, so the CRM has it with the call.
    assert types.index("insight.summary") < types.index("call.ended")

    pool = app[RUNTIME].pool
    for _ in range(50):  # the CRM writer persists finals asynchronously (bus consumer group)
        stored = await pool.fetch("SELECT party, text FROM transcript_segments WHERE call_id = $1 "
                                  "ORDER BY start_ms", uuid.UUID(call_id))
        if len(stored) == len(finals):
            break
        await asyncio.sleep(0.2)
    assert [r["text"] for r in stored] == [f["text"] for f in sorted(finals, key=lambda f: f["start_ms"])]

    # The summary lands on the call, on the timeline, and goes out as crm.call.completed.
    for _ in range(50):
        call_row = await pool.fetchrow("SELECT summary FROM calls WHERE id = $1", uuid.UUID(call_id))
        if call_row["summary"] is not None:
            break
        await asyncio.sleep(0.2)
    assert call_row["summary"]["competitors"] and call_row["summary"]["keyword_counts"]["competitor"] >= 1
    activity = await pool.fetchrow("SELECT kind, subject_type, body FROM activities WHERE call_id = $1",
                                   uuid.UUID(call_id))
    assert activity["kind"] == "call.completed" and activity["body"]["competitor_hits"] >= 1
    completed = await pool.fetch("SELECT payload FROM outbox WHERE type = 'crm.call.completed' "
                                 "AND payload->>'call_id' = $1", call_id)
    assert len(completed) == 1

    for _ in range(30):  # the exporter copies the pool's stats into the gauges once a second
        scrape = app[METRICS].registry.get_sample_value("coachline_stt_decoded", {"kind": "final"})
        if scrape is not None and scrape >= len(finals):
            break
        await asyncio.sleep(0.2)
    assert scrape is not None and scrape >= len(finals)


async def test_invalid_org_rule_set_falls_back_to_the_default_and_the_call_is_still_transcribed(server):
    app = server[0]
    pool = app[RUNTIME].pool
    other_org = await pool.fetchval(
        "INSERT INTO organizations (name, slug, settings) VALUES ('Broken', $1, $2) RETURNING id::text",
        f"broken-{uuid.uuid4().hex[:8]}", {"coaching_rules": {"keywords": "not a mapping"}})
    call_id = str(uuid.uuid4())
    bus = app[RUNTIME].bus
    sub = await bus.subscribe("transcript.final")
    got: list = []

    async def watch():
        async for delivery in sub:
            if delivery.event.payload.get("call_id") == call_id:
                got.append(delivery.event.payload)

    task = asyncio.create_task(watch())
    session = await app[CALL_SESSIONS].open(CallInfo(call_id, other_org, "sip", "inbound"))
    for n, frame in enumerate(_telephone_frames(["conf-full"], Party.REP)):
        session.push_audio(frame)
        if n % 10 == 0:
            await asyncio.sleep(0.02)
    await app[CALL_SESSIONS].close(call_id)
    await eventually(lambda: "conference" in " ".join(p["text"] for p in got).lower(), 30,
                     what="the transcript of the call")
    await sub.close()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert got and "conference" in " ".join(p["text"] for p in got).lower()
    assert json.dumps(got)  # payloads are JSON-ready


async def test_a_mixed_channel_call_is_transcribed_with_speakers_told_apart(server):
    """Vonage-style single channel: the diarizer labels each final with a voice."""
    import wave
    from pathlib import Path

    app, _, org_id, rep_id, _ = server
    with wave.open(str(Path(__file__).parent.parent / "data" / "diarization" / "sample.wav")) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).copy()
    call_id = str(uuid.uuid4())
    bus = app[RUNTIME].bus
    sub = await bus.subscribe("transcript.final")
    finals: list = []

    async def watch():
        async for delivery in sub:
            if delivery.event.payload.get("call_id") == call_id:
                finals.append(delivery.event.payload)

    task = asyncio.create_task(watch())
    session = await app[CALL_SESSIONS].open(CallInfo(call_id, org_id, "vonage", "inbound", rep_id=rep_id))
    for n, i in enumerate(range(0, len(pcm) - 319, 320)):  # 20 ms of 16 kHz L16, as Vonage sends
        session.push_audio(AudioFrame(pcm[i:i + 320].copy(), 16000, Party.MIXED, i // 16))
        if n % 10 == 0:
            await asyncio.sleep(0.2)  # real time: the labels come from a diarizer that runs live
    await app[CALL_SESSIONS].close(call_id)
    await eventually(lambda: {"speaker_1", "speaker_2"} <= {f["speaker"] for f in finals}, 30,
                     what="finals labelled with both speakers")
    await sub.close()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)

    assert finals and all(f["party"] == "mixed" for f in finals)
    speakers = {f["speaker"] for f in finals}
    # Two people talk in the sample: the segments carry two voice labels, not the channel name.
    assert speakers <= {"speaker_1", "speaker_2", "mixed"}
    assert {"speaker_1", "speaker_2"} <= speakers, [(f["speaker"], f["text"]) for f in finals]


async def test_customer_sentiment_is_stored_with_each_final_and_the_calls_list_filters_on_it(server):
    """A customer who says something clearly negative is found by the sentiment filter; a
    thankful one is not (the live path used to store no sentiment, so nothing matched)."""
    from crm_core.auth.tokens import create_api_token

    app, _, org_id, rep_id, client = server
    pool = app[RUNTIME].pool
    calls = {}
    for mood, clips in (("negative", ["something-terribly-wrong", "sorry-youre-having-problems"]),
                        ("positive", ["queue-thankyou"])):
        async with pool.acquire() as conn:
            row = await create_call(conn, NewCall(org_id=org_id, carrier="twilio", direction="inbound",
                                                  external_id=f"CA{uuid.uuid4().hex}", rep_id=rep_id,
                                                  status="in-progress"))
        call_id = calls[mood] = str(row["id"])
        session = await app[CALL_SESSIONS].open(CallInfo(call_id, org_id, "twilio", "inbound",
                                                         rep_id=rep_id))
        for n, frame in enumerate(_telephone_frames(clips, Party.CUSTOMER)):
            session.push_audio(frame)
            if n % 10 == 0:
                await asyncio.sleep(0.02)
        await app[CALL_SESSIONS].close(call_id, reason="hangup")

    async def scored(call_id):
        return await pool.fetch("SELECT text, sentiment FROM transcript_segments WHERE call_id = $1 "
                                "AND party = 'customer' AND sentiment IS NOT NULL", uuid.UUID(call_id))

    for call_id in calls.values():
        await eventually(lambda c=call_id: scored(c), 30, what="finals stored with their sentiment")
    negative = await scored(calls["negative"])
    assert min(r["sentiment"] for r in negative) < -0.3, [dict(r) for r in negative]

    async with pool.acquire() as conn:
        issued = await create_api_token(conn, org_id=org_id, user_id=rep_id, name="tests",
                                        scopes=["read"], expires_at=None)
    auth = {"Authorization": f"Bearer {issued.token}"}

    async def listed(**query):
        resp = await client.get("/api/v1/calls", params={**query, "limit": "100"}, headers=auth)
        assert resp.status == 200, await resp.text()
        return {c["id"] for c in (await resp.json())["data"]}

    unhappy = await listed(customer_sentiment_below="-0.2")
    assert calls["negative"] in unhappy and calls["positive"] not in unhappy
    happy = await listed(customer_sentiment_above="0.2")
    assert calls["positive"] in happy and calls["negative"] not in happy
