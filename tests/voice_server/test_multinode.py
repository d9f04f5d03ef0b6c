"""Two ``coachline serve`` processes sharing one PostgreSQL and one Redis, as replicas do.

One pair of nodes serves every test in this module (starting a node loads a
speech model: slow on a loaded machine). Node A is where the rep's browser is
connected; node B is where the carrier's media lands. The last test stops
node B (SIGTERM mid-call), so it must stay last in the file.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from dataclasses import dataclass

import aiohttp
import asyncpg
import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from aiohttp import web

from crm_core.auth.tokens import create_api_token
from crm_core.webhooks.endpoints import create_endpoint
from tests.media.speech_corpus import load_clip, requires_corpus
from tests.voice_server.coachline_nodes import (
    FRAME_MS,
    OUR_NUMBER,
    TWILIO_TOKEN,
    CoachlineNode,
    Tenant,
    add_org_with_user,
    create_database,
    create_tenant,
    drop_database,
    free_port,
    node_env,
    send_paced,
    sign_in,
    speech,
    start_nodes,
    voice_webhook,
)
from voice_server.simulator.carrier.call import SimulatedCall, simulate_call
from voice_server.simulator.carrier.media_players import TwilioStream
from voice_server.simulator.carrier.rest_fake import stream_from_twiml
from voice_server.simulator.carrier.signing import twilio_socket_headers
from voice_server.simulator.carrier.wav import sound

pytestmark = [requires_corpus, pytest.mark.timeout(900)]

# The organization's own rule: "conference" is a competitor's name here, so the
# customer's prompt ("the conference is full") raises a battlecard prompt.
ORG_RULES = {"keywords": {"competitor": {"phrases": [{"phrase": "conference"}]}}}
LIMITED_PER_MIN = 20  # the budget of the rate-limited organisation, across both nodes
LIMITED_EMAIL = "ops@limited.test"


@dataclass
class Cluster:
    a: CoachlineNode  # where the rep's browser is connected
    b: CoachlineNode  # where the carrier's media lands
    tenant: Tenant
    pool: asyncpg.Pool  # the shared database, for checking what was stored
    redis_url: str


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def cluster(local_postgres, local_redis, tmp_path_factory):
    dsn = await create_database(local_postgres)
    tenant = await create_tenant(dsn)
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    await pool.execute("UPDATE organizations SET settings = $1::jsonb WHERE id = $2::uuid",
                       json.dumps({"coaching_rules": ORG_RULES}), tenant.org_id)
    root = tmp_path_factory.mktemp("multinode")
    await add_org_with_user(dsn, "limited", LIMITED_EMAIL, {"rate_limit_per_min": LIMITED_PER_MIN})
    env = node_env(tenant, local_redis.url, COACHLINE_RATE_LIMIT_ENABLED="true",
                   COACHLINE_WEBHOOKS_ALLOW_PRIVATE_URLS="true",
                   # Short periods, so the recording jobs renew their leases while the tests run.
                   COACHLINE_RECORDING_STALE_S="10", COACHLINE_RECORDING_PURGE_EVERY_S="5")
    nodes = [CoachlineNode(f"node-{name}", root / name, env) for name in ("a", "b")]
    try:
        await start_nodes(nodes)
        yield Cluster(nodes[0], nodes[1], tenant, pool, local_redis.url)
    finally:
        await asyncio.gather(*(node.stop() for node in nodes))
        await pool.close()
        await drop_database(local_postgres, dsn)
    for node in nodes:  # a clean stop is part of the contract
        assert node.process is not None and node.process.returncode == 0, node.log_tail()


async def _feed_until(ws: aiohttp.ClientWebSocketResponse, done, timeout_s: float) -> list[dict]:
    messages: list[dict] = []

    async def read() -> None:
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            messages.append(json.loads(msg.data))
            if done(messages):
                return

    try:
        await asyncio.wait_for(read(), timeout_s)
    except TimeoutError:
        pass
    return messages


async def test_a_rep_on_node_a_sees_a_call_whose_media_lands_on_node_b(cluster):
    a, b = cluster.a, cluster.b
    async with aiohttp.ClientSession() as http:
        token = await sign_in(http, a)
        async with http.ws_connect(f"{a.ws_url}/ws/live?access_token={token}", compress=0) as ws:
            hello = await ws.receive_json(timeout=30)
            assert hello["type"] == "feed.ready"
            report_task = asyncio.create_task(simulate_call(SimulatedCall(
                carrier="twilio", server=b.url, rep_wav=sound("agent-loginok"),
                customer_wav=sound("conf-full"), to_number=OUR_NUMBER,
                twilio_auth_token=TWILIO_TOKEN, rep_starts_ms=3000, realtime=True)))

            def ended(messages: list[dict]) -> bool:
                return any(m["type"] == "call.ended" for m in messages)

            messages = await _feed_until(ws, ended, timeout_s=300)
            report = await report_task

    ours = [m for m in messages if m.get("call_id") == report.call_id]
    types = [m["type"] for m in ours]
    assert "call.started" in types and "call.ended" in types, (types, b.log_tail())
    # Every event reaches the feed once, whichever node published it.
    ids = Counter(m["id"] for m in ours)
    assert all(n == 1 for n in ids.values()), ids.most_common(3)
    finals = [m for m in ours if m["type"] == "transcript.final"]
    customer = " ".join(f["text"] for f in finals if f["party"] == "customer").lower()
    assert "conference" in customer and "full" in customer, finals
    prompts = [m["prompt"] for m in ours if m["type"] == "coaching.prompt"]
    assert any(p["rule_id"] == "competitor-battlecard" for p in prompts), types
    assert {"insight.metrics", "insight.summary"} <= set(types), types

    # The CRM persisted each final segment once (both nodes read the bus; one consumer group).
    for _ in range(100):
        rows = await cluster.pool.fetch(
            "SELECT text FROM transcript_segments WHERE call_id = $1::uuid", report.call_id)
        if len(rows) >= len(finals):
            break
        await asyncio.sleep(0.3)
    assert sorted(r["text"] for r in rows) == sorted(f["text"] for f in finals)


async def test_webhooks_are_delivered_once_across_nodes_and_jobs_hold_leases(cluster):
    """Events created through either node reach the organisation's endpoint exactly once."""
    a, b = cluster.a, cluster.b
    received: Counter = Counter()
    got_all = asyncio.Event()
    leads = 6

    async def receive(request: web.Request) -> web.Response:
        body = await request.json()
        if body["type"] == "crm.lead.created":
            received[body["id"]] += 1
            if len(received) >= leads:
                got_all.set()
        return web.Response(status=204)

    receiver = web.Application()
    receiver.router.add_post("/hook", receive)
    runner = web.AppRunner(receiver)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        async with cluster.pool.acquire() as conn:
            await create_endpoint(conn, cluster.tenant.org_id, f"http://127.0.0.1:{port}/hook",
                                  ["crm.lead.*"], allow_private=True)
        async with aiohttp.ClientSession() as http:
            tokens = {node.node_id: await sign_in(http, node) for node in (a, b)}
            for i in range(leads):
                node = (a, b)[i % 2]
                async with http.post(node.url + "/api/v1/leads",
                                     json={"company": f"Lead {i} Ltd"},
                                     headers={"Authorization": f"Bearer {tokens[node.node_id]}"}) as resp:
                    assert resp.status == 201, await resp.text()
        await asyncio.wait_for(got_all.wait(), 180)
        # Until every delivery row is settled, a second node could still be sending one.
        for _ in range(300):
            unsettled = await cluster.pool.fetchval(
                "SELECT count(*) FROM webhook_deliveries WHERE event_type = 'crm.lead.created' "
                "AND status <> 'succeeded'")
            if unsettled == 0:
                break
            await asyncio.sleep(0.2)
        assert unsettled == 0
    finally:
        await runner.cleanup()
    assert len(received) == leads and set(received.values()) == {1}, received
    rows = await cluster.pool.fetchval(
        "SELECT count(*) FROM webhook_deliveries WHERE event_type = 'crm.lead.created'")
    assert rows == leads

    # The periodic jobs run under one Redis lease each, shared by both nodes.
    client = aioredis.from_url(cluster.redis_url)
    try:
        for job in ("lead-rescoring", "recording-recovery", "recording-retention", "call-recovery"):
            for _ in range(300):  # a lease may lapse for a moment between two renewals
                if await client.exists(f"coachline:lease:{job}"):
                    break
                await asyncio.sleep(0.2)
            else:
                raise AssertionError(f"no node holds the {job} lease")
    finally:
        await client.aclose()


async def test_rate_limit_budget_is_shared_by_both_nodes(cluster):
    """An organisation's API requests spend one budget, whichever node answers them."""
    a, b = cluster.a, cluster.b
    statuses: list[tuple[str, int, str | None]] = []
    loop = asyncio.get_running_loop()
    # An integration's API token spends the organisation's budget (a browser session would
    # spend its user's own).
    user = await cluster.pool.fetchrow("SELECT id, org_id FROM users WHERE email = $1", LIMITED_EMAIL)
    async with cluster.pool.acquire() as conn:
        token = (await create_api_token(conn, org_id=user["org_id"], user_id=user["id"], name="sync",
                                        scopes=["read"], expires_at=None)).token
    async with aiohttp.ClientSession() as http:
        began = loop.time()
        for i in range(2 * LIMITED_PER_MIN + 10):
            node = (a, b)[i % 2]
            async with http.get(node.url + "/api/v1/leads",
                                headers={"Authorization": f"Bearer {token}"}) as resp:
                statuses.append((node.node_id, resp.status, resp.headers.get("Retry-After")))
        spent_s = loop.time() - began
    limited = [s for s in statuses if s[1] == 429]
    served = [s for s in statuses if s[1] == 200]
    assert len(served) + len(limited) == len(statuses), Counter(s[1] for s in statuses)
    # One shared budget: a burst of LIMITED_PER_MIN plus what refilled meanwhile (a slow
    # machine takes longer; the budget refills at LIMITED_PER_MIN a minute). Budgets per
    # node would have answered 2 x LIMITED_PER_MIN.
    refilled = int(spent_s * LIMITED_PER_MIN / 60) + 1
    assert LIMITED_PER_MIN <= len(served) <= LIMITED_PER_MIN + refilled, (len(served), spent_s)
    # Both nodes refuse once it is spent, saying when to come back.
    assert {s[0] for s in limited} == {a.node_id, b.node_id}
    assert all(s[2] is not None and int(s[2]) >= 1 for s in limited)


async def test_node_b_drains_mid_call_while_node_a_keeps_serving(cluster):
    """Last in this module: node B is SIGTERMed mid-call while the rep watches through node A."""
    a, b = cluster.a, cluster.b
    async with aiohttp.ClientSession() as http:
        token = await sign_in(http, a)
        async with http.ws_connect(f"{a.ws_url}/ws/live?access_token={token}", compress=0) as feed:
            assert (await feed.receive_json(timeout=30))["type"] == "feed.ready"
            call_sid = "CAmndrain000000000000000000000001"
            async with await voice_webhook(http, b, call_sid) as resp:
                assert resp.status == 200, await resp.text()
                stream_url, params, _ = stream_from_twiml(await resp.text())
            call_id = params["call_id"]
            customer = speech("hello-world", "conf-full")
            messages = TwilioStream(params, call_sid, inbound=customer).messages()
            spoken_ms = (len(load_clip("hello-world")) + 8_000) // 8
            first = [m for m in messages if m[0] * FRAME_MS < spoken_ms]
            rest = messages[len(first):]
            async with http.ws_connect(b.ws_url + "/media/twilio", compress=0,
                                       headers=twilio_socket_headers(TWILIO_TOKEN, stream_url)) as media:
                started = asyncio.get_running_loop().time()
                await send_paced(media, first, started)
                b.terminate()
                rest_sent = asyncio.create_task(send_paced(media, rest[:-1], started))
                for _ in range(300):
                    if await b.ready_status(http) == 503:
                        break
                    await asyncio.sleep(0.1)
                assert await b.ready_status(http) == 503, b.log_tail()
                assert await a.ready_status(http) == 200
                # New calls go to node A; node B refuses them.
                async with await voice_webhook(http, b, "CAmndrain000000000000000000000002") as r:
                    assert r.status == 503
                async with await voice_webhook(http, a, "CAmndrain000000000000000000000003") as r:
                    assert r.status == 200
                await rest_sent
                assert not media.closed and b.process.poll() is None
                await media.send_str(rest[-1][1])  # "stop": the call ends

            def ended(messages: list[dict]) -> bool:
                return any(m["type"] == "call.ended" and m.get("call_id") == call_id for m in messages)

            watched = await _feed_until(feed, ended, timeout_s=300)
    assert await b.wait_exit(timeout_s=240) == 0, b.log_tail()

    ours = [m for m in watched if m.get("call_id") == call_id]
    types = [m["type"] for m in ours]
    assert "call.ended" in types, types
    heard = " ".join(m["text"] for m in ours if m["type"] == "transcript.final").lower()
    # Words spoken after the SIGTERM reached the rep on node A, and the database.
    assert "conference" in heard, (types, b.log_tail())
    stored = " ".join(r["text"] for r in await cluster.pool.fetch(
        "SELECT text FROM transcript_segments WHERE call_id = $1::uuid ORDER BY start_ms",
        call_id)).lower()
    assert "hello" in stored and "conference" in stored, stored
    recording = await cluster.pool.fetchrow(
        "SELECT status, duration_ms FROM recordings WHERE call_id = $1::uuid", call_id)
    assert recording["status"] == "complete", recording
    assert recording["duration_ms"] >= len(customer) // 8 - 500, recording
