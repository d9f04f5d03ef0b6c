"""Two ``coachline serve`` processes sharing one PostgreSQL and one Redis, as replicas do.

One pair of nodes serves every test in this module (starting a node loads a
speech model: slow on a loaded machine). Node A is where the rep's browser is
connected; node B is where the carrier's media lands.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter

import aiohttp
import asyncpg
import pytest
import pytest_asyncio

from scripts.carrier_sim.call import SimulatedCall, simulate_call
from scripts.carrier_sim.wav import sound
from tests.media.speech_corpus import requires_corpus
from tests.voice_server.coachline_nodes import (
    OUR_NUMBER,
    TWILIO_TOKEN,
    CoachlineNode,
    create_database,
    create_tenant,
    drop_database,
    node_env,
    sign_in,
    start_nodes,
)

pytestmark = [requires_corpus, pytest.mark.timeout(900)]

# The organization's own rule: "conference" is a competitor's name here, so the
# customer's prompt ("the conference is full") raises a battlecard prompt.
ORG_RULES = {"keywords": {"competitor": {"phrases": [{"phrase": "conference"}]}}}
ANONYMOUS_PER_MIN = 40  # the shared budget of one client address, across both nodes


class Cluster:
    def __init__(self, a: CoachlineNode, b: CoachlineNode, tenant, pool: asyncpg.Pool) -> None:
        self.a, self.b, self.tenant, self.pool = a, b, tenant, pool


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def cluster(local_postgres, local_redis, tmp_path_factory):
    dsn = await create_database(local_postgres)
    tenant = await create_tenant(dsn)
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    await pool.execute("UPDATE organizations SET settings = $1::jsonb WHERE id = $2::uuid",
                       json.dumps({"coaching_rules": ORG_RULES}), tenant.org_id)
    root = tmp_path_factory.mktemp("multinode")
    env = node_env(tenant, local_redis.url,
                   COACHLINE_RATE_LIMIT_ENABLED="true",
                   COACHLINE_RATE_LIMIT_ANONYMOUS_PER_MIN=str(ANONYMOUS_PER_MIN))
    nodes = [CoachlineNode(f"node-{name}", root / name, env) for name in ("a", "b")]
    try:
        await start_nodes(nodes)
        yield Cluster(nodes[0], nodes[1], tenant, pool)
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
    except asyncio.TimeoutError:
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


async def test_rate_limit_budget_is_shared_by_both_nodes(cluster):
    """Anonymous requests from one address spend one budget, whichever node answers."""
    a, b = cluster.a, cluster.b
    statuses: list[tuple[str, int, str | None]] = []
    async with aiohttp.ClientSession() as http:
        for i in range(ANONYMOUS_PER_MIN + 10):
            node = (a, b)[i % 2]
            async with http.get(node.url + "/api/v1/leads") as resp:
                statuses.append((node.node_id, resp.status, resp.headers.get("Retry-After")))
    limited = [s for s in statuses if s[1] == 429]
    served = [s for s in statuses if s[1] != 429]
    # One shared budget: at most ANONYMOUS_PER_MIN answered in total (a per-node budget would
    # answer all of them), and both nodes refuse once it is spent.
    assert len(served) <= ANONYMOUS_PER_MIN, Counter(s[1] for s in statuses)
    assert {s[0] for s in limited} == {a.node_id, b.node_id}
    assert all(s[2] is not None and int(s[2]) >= 1 for s in limited)
