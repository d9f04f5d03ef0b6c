"""Whole coached calls: the call simulator plays a scripted conversation, the rep watches /ws/live.

The conversation (``voice_server.simulator.carrier.conversation.SALES_CALL``) is real
telephone speech — asterisk prompts placed on a rep track and a customer
track with turns, an interruption and silences — played by the Twilio
simulator at real-time pace (both tracks of one Media Stream) into the real
server with the speech model on. The organization's rule set makes
"conference" a competitor, so the customer's first "conference" must prompt
the rep once, at that word; the customer's second mention (inside the rule's
cooldown) and the rep's own mention (the rule coaches customer mentions) must
not. Talk metrics are hand-computed from the script's turn table.

Tolerances: a final segment's span comes from the transcriber's VAD and
Whisper's word timings, not from the clip's energy-voiced span. Measured on
the 2-core machine (tiny.en, int8): finals started 40–130 ms before the voiced
start and ended 0–280 ms after the voiced end, so talk came out +500 ms
(rep) and +400 ms (customer) over four turns each, silence −0.9 s over seven
gaps, patience −81 ms; the prompt's at_ms (the end of "conference" by the
transcriber's word timing) was 60 ms after the clip's voiced end. Each
segment edge may therefore be off by EDGE_MS = 400 ms: a sum over n segments
within 2 × 400 × n ms, a single gap or length within 2 × 400 ms. Interruptions and prompt counts are exact.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid

import aiohttp
import pytest

from crm_core.auth.passwords import hash_password
from tests.media.speech_corpus import requires_corpus
from tests.voice_server.carrier_app import (
    OUR_NUMBER,
    PUBLIC_URL,
    TWILIO_TOKEN,
    start_carrier_app,
    stop_carrier_app,
)
from voice_server.simulator.carrier.call import SimulatedCall, simulate_call
from voice_server.simulator.carrier.conversation import SALES_CALL, Turn, build

pytestmark = [requires_corpus, pytest.mark.timeout(600)]

ORG_RULES = {"keywords": {"competitor": {"phrases": [{"phrase": "conference"}]}}}
PASSWORD = "correct horse battery staple 42"
EDGE_MS = 400  # per-turn edge tolerance (see the module docstring)


async def _coached_server(migrated_database, redis_url):
    ca = await start_carrier_app(migrated_database, redis_url, COACHLINE_STT_ENABLED="true",
                                 COACHLINE_LOG_FORMAT="text")
    digest = await asyncio.to_thread(hash_password, PASSWORD)
    async with ca.pool.acquire() as conn:
        await conn.execute("UPDATE organizations SET settings = $2 WHERE id = $1::uuid",
                           ca.org_id, {"coaching_rules": ORG_RULES})
        await conn.execute("UPDATE users SET password_hash = $2 WHERE id = $1::uuid", ca.rep_id, digest)
        other_org = await conn.fetchval(
            "INSERT INTO organizations (name, slug) VALUES ('Rival', $1) RETURNING id", f"rival-{uuid.uuid4().hex[:6]}")
        await conn.execute(
            "INSERT INTO users (org_id, email, name, role, password_hash) VALUES ($1, 'spy@rival.test', "
            "'Sam Spy', 'rep', $2)", other_org, digest)
        # A rep of the same organization who is not on the call: may not watch it either.
        await conn.execute(
            "INSERT INTO users (org_id, email, name, role, password_hash) VALUES ($1::uuid, "
            "'colleague@acme.test', 'Carl Colleague', 'rep', $2)", ca.org_id, digest)
    return ca


async def _token(http: aiohttp.ClientSession, base: str, email: str) -> str:
    async with http.post(base + "/auth/token", json={"email": email, "password": PASSWORD}) as resp:
        assert resp.status == 200, await resp.text()
        return (await resp.json())["token"]


class Feed:
    """One /ws/live connection and everything it received."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.messages: list[dict] = []
        self.ready: dict | None = None
        self._new = asyncio.Event()
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                message = json.loads(msg.data)
                if message["type"] == "feed.ready":
                    self.ready = message
                else:
                    self.messages.append(message)
                self._new.set()

    async def wait_for(self, predicate, timeout: float = 240.0) -> dict:
        async def poll():
            while True:
                for m in self.messages:
                    if predicate(m):
                        return m
                self._new.clear()
                await self._new.wait()
        return await asyncio.wait_for(poll(), timeout)

    async def close(self) -> None:
        await self.ws.close()
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    def of(self, call_id: str, kind: str) -> list[dict]:
        return [m for m in self.messages if m.get("call_id") == call_id and m["type"] == kind]


async def _feed(http, base: str, token: str) -> Feed:
    ws = await http.ws_connect(base.replace("http://", "ws://") + "/ws/live", params={"access_token": token})
    feed = Feed(ws)
    for _ in range(300):
        if feed.ready is not None:
            break
        await asyncio.sleep(0.1)
    assert feed.ready is not None
    return feed


def _expected_metrics(turns) -> dict:
    """Hand computation from the turn table (voiced clip spans), per the coaching definitions."""
    talk = {"rep": 0, "customer": 0}
    for t in turns:
        talk[t.turn.party] += t.end_ms - t.start_ms
    spans = sorted((t.start_ms, t.end_ms) for t in turns)
    silence, end = 0, spans[0][1]
    for a, b in spans[1:]:
        silence += max(0, a - end)
        end = max(end, b)
    # Interruptions: a turn of one party starting strictly inside the other's.
    interruptions = {"rep": 0, "customer": 0}
    for t in turns:
        if any(o.turn.party != t.turn.party and o.start_ms < t.start_ms < o.end_ms for o in turns):
            interruptions[t.turn.party] += 1
    # Patience: each rep turn that answers a (multi-word) customer turn, after it ended.
    gaps = []
    for prev, t in itertools.pairwise(turns):
        if t.turn.party == "rep" and prev.turn.party == "customer" and t.start_ms >= prev.end_ms:
            gaps.append(t.start_ms - prev.end_ms)
    return {"talk_ms": talk, "silence_ms": silence, "interruptions": interruptions,
            "patience_ms": sum(gaps) / len(gaps), "answers": len(gaps)}


async def test_a_coached_twilio_call_end_to_end(migrated_database, redis_url, tmp_path):
    ca = await _coached_server(migrated_database, redis_url)
    conversation = build(SALES_CALL)
    rep_wav, customer_wav = conversation.write(tmp_path)
    base = str(ca.client.make_url("")).rstrip("/")
    try:
        async with aiohttp.ClientSession() as http:
            # -- strangers are refused -----------------------------------------------------
            async with http.get(base + "/ws/live") as resp:
                assert resp.status == 401
            async with http.get(base + "/ws/live", params={"access_token": "forged-token"}) as resp:
                assert resp.status == 401

            token = await _token(http, base, "rep@acme.test")
            first = await _feed(http, base, token)
            spy = await _feed(http, base, await _token(http, base, "spy@rival.test"))
            colleague = await _feed(http, base, await _token(http, base, "colleague@acme.test"))

            call = asyncio.create_task(simulate_call(SimulatedCall(
                carrier="twilio", server=base, public_url=PUBLIC_URL, rep_wav=rep_wav,
                customer_wav=customer_wav, to_number=OUR_NUMBER, twilio_auth_token=TWILIO_TOKEN,
                realtime=True)))

            started = await first.wait_for(lambda m: m["type"] == "call.started")
            call_id = started["call_id"]
            # -- the competitor prompt reaches the rep; then the rep's browser reconnects mid-call
            prompt_msg = await first.wait_for(lambda m: m["type"] == "coaching.prompt")
            assert not call.done(), "the call must still run when the rep reconnects"
            await first.close()
            second = await _feed(http, base, token)
            assert call_id in second.ready["calls"]
            report = await asyncio.wait_for(call, 300)
            assert report.call_id == call_id
            await second.wait_for(lambda m: m["type"] == "call.ended" and m["call_id"] == call_id)

            # Strangers: another organization's rep and a colleague not on the call saw nothing
            # of it, and may not open its feed.
            for feed in (spy, colleague):
                assert call_id not in feed.ready["calls"]
                assert not [m for m in feed.messages if m.get("call_id") == call_id]
            spy_token = await _token(http, base, "spy@rival.test")
            for path in (f"/ws/calls/{call_id}", f"/ws/calls/{uuid.uuid4()}"):
                async with http.get(base + path, params={"access_token": spy_token}) as resp:
                    assert resp.status == 404  # the same answer as for a call that does not exist
            for feed in (spy, colleague, second):
                await feed.close()

        # -- the prompts: right rule, right time, once ------------------------------------
        prompts_first = [m["prompt"] for m in first.of(call_id, "coaching.prompt")]
        prompts_second = [m["prompt"] for m in second.of(call_id, "coaching.prompt")]
        live_second = [p for m, p in zip(second.of(call_id, "coaching.prompt"), prompts_second)
                       if not m.get("replay")]
        replayed = [p for m, p in zip(second.of(call_id, "coaching.prompt"), prompts_second)
                    if m.get("replay")]
        # The replay carries what the rep saw before, under the same ids (the browser
        # de-duplicates by them); no id arrives twice on one connection.
        assert prompt_msg["prompt"]["id"] in {p["id"] for p in replayed}
        for received in (prompts_first, prompts_second):
            ids = [p["id"] for p in received]
            assert len(ids) == len(set(ids)), ids
        everything = {p["id"]: p for p in prompts_first + prompts_second}
        competitor = [p for p in everything.values() if p["rule_id"] == "competitor-battlecard"]
        assert len(competitor) == 1, competitor  # not for the rep's mention, not inside the cooldown
        trigger = next(t for t in conversation.turns if t.turn.clip == "conf-leaderhasleft")
        # at_ms is the end of the word "conference" on the call clock. It is the last word of
        # the customer's first sentence ("The leader has left the conference."), so it ends
        # where that clip's speech ends: not at the customer's second mention, nor the rep's.
        assert abs(competitor[0]["at_ms"] - trigger.end_ms) <= EDGE_MS, (competitor, trigger)
        assert competitor[0]["party"] == "customer" and "conference" in competitor[0]["title"].lower()
        assert not [p for p in live_second if p["id"] in {q["id"] for q in prompts_first}]

        # -- the transcript per party ------------------------------------------------------
        finals = {m["id"]: m for m in first.of(call_id, "transcript.final") + second.of(call_id, "transcript.final")}
        text = {party: " ".join(f["text"] for f in sorted(finals.values(), key=lambda f: f["start_ms"])
                                if f["party"] == party).lower() for party in ("rep", "customer")}
        assert "locked" in text["customer"] and "echo" in text["customer"], text
        assert "only person" in text["rep"] and "logged" in text["rep"], text

        # -- talk metrics against the hand computation --------------------------------------
        summaries = second.of(call_id, "insight.summary")
        assert len(summaries) == 1
        final_metrics = summaries[0]["metrics"]
        expected = _expected_metrics(list(conversation.turns))
        turns_of = {p: sum(1 for t in conversation.turns if t.turn.party == p) for p in ("rep", "customer")}
        for party in ("rep", "customer"):
            assert abs(final_metrics["talk_ms"][party] - expected["talk_ms"][party]) <= 2 * EDGE_MS * turns_of[party], \
                (party, final_metrics["talk_ms"], expected["talk_ms"])
        assert final_metrics["interruptions"] == expected["interruptions"], final_metrics["interruptions"]
        assert abs(final_metrics["patience_ms"] - expected["patience_ms"]) <= 2 * EDGE_MS, \
            (final_metrics["patience_ms"], expected["patience_ms"])
        gaps = len(conversation.turns) - 1
        assert abs(final_metrics["silence_ms"] - expected["silence_ms"]) <= 2 * EDGE_MS * gaps, \
            (final_metrics["silence_ms"], expected["silence_ms"])
        longest = max(t.end_ms - t.start_ms for t in conversation.turns)
        assert abs(final_metrics["longest_monologue_ms"]["rep"] - longest) <= 2 * EDGE_MS, final_metrics
        # The live metrics the rep saw last agree with the summary's.
        live = second.of(call_id, "insight.metrics")
        assert live and live[-1]["interruptions"] == final_metrics["interruptions"]
    finally:
        await stop_carrier_app(ca)


# Nobody speaks for 12.9 s mid-call and the rep never says the recording disclosure:
# the default rules' time-based prompts must come once each, at their moments.
QUIET_CALL = [
    Turn("rep", "hello", 500),
    Turn("customer", "conf-full", 2000),
    Turn("rep", "agent-loginok", 4500),
    Turn("customer", "demo-echodone", 19000),
    Turn("rep", "agent-loggedoff", 23000),
    Turn("customer", "vm-goodbye", 30500),
]
TICK_SLACK_MS = 3000  # time prompts come from a once-a-second ticker on the audio clock, under load


async def test_silence_and_disclosure_deadline_prompt_once_at_their_time(migrated_database, redis_url,
                                                                         tmp_path):
    ca = await _coached_server(migrated_database, redis_url)
    conversation = build(QUIET_CALL)
    rep_wav, customer_wav = conversation.write(tmp_path)
    base = str(ca.client.make_url("")).rstrip("/")
    try:
        async with aiohttp.ClientSession() as http:
            feed = await _feed(http, base, await _token(http, base, "rep@acme.test"))
            report = await simulate_call(SimulatedCall(
                carrier="twilio", server=base, public_url=PUBLIC_URL, rep_wav=rep_wav,
                customer_wav=customer_wav, to_number=OUR_NUMBER, twilio_auth_token=TWILIO_TOKEN,
                realtime=True))
            await feed.wait_for(lambda m: m["type"] == "call.ended" and m["call_id"] == report.call_id)
            await feed.close()
        prompts = [m["prompt"] for m in feed.of(report.call_id, "coaching.prompt")]
        by_rule: dict[str, list[dict]] = {}
        for p in prompts:
            by_rule.setdefault(p["rule_id"], []).append(p)
        assert sorted(by_rule) == ["competitor-battlecard", "long-silence", "recording-disclosure"], prompts
        assert all(len(v) == 1 for v in by_rule.values()), prompts

        quiet_from = next(t for t in conversation.turns if t.turn.clip == "agent-loginok").end_ms
        silence_at = by_rule["long-silence"][0]["at_ms"]
        # 10 s after the last words (the default rule), counted from the transcriber's end of them.
        assert quiet_from + 10_000 - EDGE_MS <= silence_at <= quiet_from + 10_000 + TICK_SLACK_MS, silence_at
        disclosure_at = by_rule["recording-disclosure"][0]["at_ms"]
        assert 30_000 <= disclosure_at <= 30_000 + TICK_SLACK_MS, disclosure_at
        assert by_rule["recording-disclosure"][0]["party"] == "rep"
        trigger = next(t for t in conversation.turns if t.turn.clip == "conf-full")
        assert trigger.start_ms <= by_rule["competitor-battlecard"][0]["at_ms"] <= trigger.end_ms + EDGE_MS
        # The summary lists the disclosure as a checklist item the rep missed.
        [summary] = feed.of(report.call_id, "insight.summary")
        assert "recording-disclosure" in json.dumps(summary)
    finally:
        await stop_carrier_app(ca)
