"""A rep's voice learnt on a two-track call labels the rep on a later mixed-channel call.

The rep is the voice of the Asterisk prompts (Debian asterisk-core-sounds-en-wav);
customers are the two speakers of the pyannote sample (tests/data/diarization).
First a Twilio-style call sends the rep and the customer on separate tracks: the
server keeps a voiceprint for the rep. Then a Vonage-style call sends one mixed
16 kHz stream of the rep (other prompts) and another customer: its finals are
labelled ``rep`` / ``customer`` by the enrolled print, and are coached.
"""

from __future__ import annotations

import asyncio
import uuid
import wave
from pathlib import Path

import numpy as np
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from crm_core.calls.records import NewCall, create_call
from crm_core.voiceprints import StoredVoiceprint, load_voiceprint, update_voiceprint
from media.frames import AudioFrame, Party
from media.g711 import ulaw_decode, ulaw_encode
from media.resample import resample
from media.speakers.encoder import EMBEDDING_SIZE, ENCODER_MODEL
from storage.database import connect
from tests.media.speech_corpus import load_clip, requires_corpus
from voice_server.app import create_app
from voice_server.app_keys import CALL_SESSIONS, RUNTIME
from voice_server.call_session import CallInfo
from voice_server.rep_voiceprints import MIN_SPEECH_MS, RepVoiceLearner
from voice_server.runtime import Runtime
from voice_server.settings import load_settings

pytestmark = requires_corpus

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "diarization" / "sample.wav"


def _sample() -> np.ndarray:
    with wave.open(str(SAMPLE)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).copy()


def _cut(pcm: np.ndarray, start_s: float, end_s: float) -> np.ndarray:
    return pcm[int(start_s * 16000):int(end_s * 16000)]


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
            "INSERT INTO organizations (name, slug) VALUES ('Voices', $1) RETURNING id::text",
            f"voices-{uuid.uuid4().hex[:8]}")
        rep_id = await conn.fetchval(
            "INSERT INTO users (org_id, email, name, role) VALUES ($1, 'vera@voices.test', 'Vera', 'rep') "
            "RETURNING id::text", org_id)
    finally:
        await conn.close()
    yield app, org_id, rep_id
    await client.close()
    await runtime.close()


async def _new_call(pool, org_id: str, rep_id: str, carrier: str) -> str:
    async with pool.acquire() as conn:
        call = await create_call(conn, NewCall(org_id=org_id, carrier=carrier, direction="inbound",
                                               external_id=uuid.uuid4().hex, rep_id=rep_id,
                                               status="in-progress"))
    return str(call["id"])


async def _collect(app, call_id: str, patterns=("transcript.final", "insight.*", "coaching.*")):
    events: list = []
    subs = [await app[RUNTIME].bus.subscribe(p) for p in patterns]

    async def watch(sub):
        async for delivery in sub:
            if delivery.event.payload.get("call_id") == call_id:
                events.append(delivery.event)

    tasks = [asyncio.create_task(watch(s)) for s in subs]

    async def stop():
        await asyncio.sleep(0.5)
        for sub in subs:
            await sub.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return events

    return stop


async def test_rep_voice_learnt_on_a_two_track_call_labels_the_rep_on_a_mixed_call(server):
    app, org_id, rep_id = server
    pool = app[RUNTIME].pool
    sample = _sample()

    # -- 1. Two-track call: the rep's track teaches the server the rep's voice. --------------
    rep_track = np.concatenate([ulaw_decode(ulaw_encode(load_clip(n)))
                                for n in ("screen-callee-options", "conf-invalid")])
    customer_track = np.zeros_like(rep_track)  # speaker90 answers on its own track
    said = resample(np.concatenate([_cut(sample, 10.6, 14.4), _cut(sample, 18.6, 21.4)]), 16000, 8000)
    customer_track[8000:8000 + len(said)] = said[:len(customer_track) - 8000]
    call_id = await _new_call(pool, org_id, rep_id, "twilio")
    session = await app[CALL_SESSIONS].open(CallInfo(call_id, org_id, "twilio", "inbound", rep_id=rep_id))
    for n, i in enumerate(range(0, len(rep_track) - 159, 160)):
        session.push_audio(AudioFrame(rep_track[i:i + 160].copy(), 8000, Party.REP, i // 8))
        session.push_audio(AudioFrame(customer_track[i:i + 160].copy(), 8000, Party.CUSTOMER, i // 8))
        if n % 10 == 0:
            await asyncio.sleep(0.01)
    await app[CALL_SESSIONS].close(call_id, reason="hangup")
    for _ in range(100):  # learnt in the background after the call ends
        async with pool.acquire() as conn:
            stored = await load_voiceprint(conn, org_id, rep_id)
        if stored is not None:
            break
        await asyncio.sleep(0.2)
    assert stored is not None and stored.model == ENCODER_MODEL
    assert len(stored.embedding) == 4 * EMBEDDING_SIZE
    # Only the rep's speech counts, and not its pauses: less than the track's 21.8 s.
    assert 10_000 < stored.speech_ms < len(rep_track) // 8 and stored.utterances >= 2

    # -- 2. Mixed call: the same rep (other prompts) and another customer on one stream. -----
    rep_says = [resample(load_clip(n), 8000, 16000)
                for n in ("all-circuits-busy-now", "vm-repeat", "confbridge-inc-list-vol-out")]
    customer_says = [_cut(sample, a, b) for a, b in ((14.8, 17.9), (22.0, 24.9), (24.9, 27.8))]
    pause = np.zeros(16000, np.int16)  # 1 s: each turn is its own transcript segment
    pieces, reference, t = [pause], [], 1000
    for rep_part, customer_part in zip(rep_says, customer_says, strict=True):
        # Outbound: the customer picks up and speaks first.
        for who, part in (("customer", customer_part), ("rep", rep_part)):
            reference.append((t, t + len(part) // 16, who))
            pieces += [part, pause]
            t += (len(part) + len(pause)) // 16
    mixed = np.concatenate(pieces)
    call_id = await _new_call(pool, org_id, rep_id, "vonage")
    stop = await _collect(app, call_id)
    session = await app[CALL_SESSIONS].open(CallInfo(call_id, org_id, "vonage", "inbound", rep_id=rep_id))
    for n, i in enumerate(range(0, len(mixed) - 319, 320)):
        session.push_audio(AudioFrame(mixed[i:i + 320].copy(), 16000, Party.MIXED, i // 16))
        if n % 10 == 0:
            await asyncio.sleep(0.2)  # real time: the diarizer labels live
    await app[CALL_SESSIONS].close(call_id)
    events = await stop()

    finals = [e.payload for e in events if e.type == "transcript.final"]
    assert finals and all(f["party"] == "mixed" for f in finals)
    assert {f["speaker"] for f in finals} <= {"rep", "customer"}, [(f["speaker"], f["text"]) for f in finals]
    right = total = 0
    for f in finals:
        by_time = {"rep": 0, "customer": 0}
        for start, end, who in reference:
            by_time[who] += max(0, min(f["end_ms"], end) - max(f["start_ms"], start))
        majority = max(by_time, key=by_time.get)
        total += f["end_ms"] - f["start_ms"]
        right += (f["end_ms"] - f["start_ms"]) if f["speaker"] == majority else 0
    assert {f["speaker"] for f in finals} == {"rep", "customer"}
    assert right / total > 0.8, [(f["speaker"], f["start_ms"], f["end_ms"], f["text"]) for f in finals]
    # Labelled segments are coached: both sides' talk time is measured.
    metrics = [e.payload for e in events if e.type == "insight.metrics"]
    assert metrics and metrics[-1]["talk_ms"]["rep"] > 0 and metrics[-1]["talk_ms"]["customer"] > 0
    assert any(e.type == "insight.summary" for e in events)


async def test_voiceprints_are_merged_by_speech_and_kept_only_for_members(migrated_database):
    one = np.zeros(EMBEDDING_SIZE, "<f4")
    one[0] = 1.0

    def replace(stored: StoredVoiceprint | None) -> StoredVoiceprint:
        ms = (stored.speech_ms if stored else 0) + 3000
        return StoredVoiceprint("test-model", one.tobytes(), ms, 1)

    conn = await connect(migrated_database)
    try:
        org_id = await conn.fetchval(
            "INSERT INTO organizations (name, slug) VALUES ('Voices', $1) RETURNING id::text",
            f"voices-{uuid.uuid4().hex[:8]}")
        other_org = await conn.fetchval(
            "INSERT INTO organizations (name, slug) VALUES ('Other', $1) RETURNING id::text",
            f"other-{uuid.uuid4().hex[:8]}")
        user = await conn.fetchval(
            "INSERT INTO users (org_id, email, name, role) VALUES ($1, 'x@voices.test', 'X', 'rep') "
            "RETURNING id::text", org_id)
        assert await update_voiceprint(conn, other_org, user, replace) is None
        assert await update_voiceprint(conn, org_id, "not-a-uuid", replace) is None
        assert await load_voiceprint(conn, org_id, "not-a-uuid") is None
        first = await update_voiceprint(conn, org_id, user, replace)
        second = await update_voiceprint(conn, org_id, user, replace)
        assert (first.speech_ms, second.speech_ms) == (3000, 6000)
        assert await load_voiceprint(conn, other_org, user) is None
        assert bytes((await load_voiceprint(conn, org_id, user)).embedding) == one.tobytes()
    finally:
        await conn.close()


async def test_learner_keeps_only_the_rep_tracks_speech():
    done: list = []
    learner = RepVoiceLearner(done.append)
    speech = ulaw_decode(ulaw_encode(load_clip("conf-invalid")))
    hiss = (np.random.default_rng(3).standard_normal(8000 * 4) * 30).astype(np.int16)
    for i in range(0, len(hiss) - 159, 160):  # line noise on the rep track: not speech
        learner.on_audio(AudioFrame(hiss[i:i + 160].copy(), 8000, Party.REP, i // 8))
    for i in range(0, len(speech) - 159, 160):  # speech on the customer track: not the rep
        learner.on_audio(AudioFrame(speech[i:i + 160].copy(), 8000, Party.CUSTOMER, i // 8))
    await learner.close(False)
    assert done == [] and learner.speech_ms < MIN_SPEECH_MS

    learner = RepVoiceLearner(done.append)
    for i in range(0, len(speech) - 159, 160):
        learner.on_audio(AudioFrame(speech[i:i + 160].copy(), 8000, Party.REP, i // 8))
    await learner.close(False)
    (utterances,) = done
    assert utterances and all(rate == 8000 for _, rate in utterances)
    assert MIN_SPEECH_MS <= sum(len(p) for p, _ in utterances) // 8 < len(speech) // 8
