import asyncio
import uuid

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from voice_server.app import create_app
from voice_server.rate_limits import api_rate_limit_middleware
from voice_server.runtime import Runtime
from voice_server.settings import load_settings


async def _pong(request):
    return web.json_response({"pong": True})


@pytest.fixture
async def served(migrated_database, redis_url):
    settings = load_settings({
        "DATABASE_URL": migrated_database, "REDIS_URL": redis_url,
        "COACHLINE_LEAD_RESCORING_EVERY_S": "0.05", "COACHLINE_WEBHOOKS_ALLOW_PRIVATE_URLS": "true",
        "COACHLINE_RATE_LIMIT_ANONYMOUS_PER_MIN": "2",
    })
    runtime = await Runtime(settings).start()
    app = create_app(settings, runtime)
    app.middlewares.append(api_rate_limit_middleware(app))
    app.router.add_get("/x/ping", _pong)
    client = TestClient(TestServer(app))
    await client.start_server()
    yield client, runtime
    await client.close()
    await runtime.close()


async def test_a_running_node_rescores_leads_delivers_webhooks_and_limits_requests(served):
    client, runtime = served
    got: list[dict] = []

    async def hook(request):
        got.append(await request.json())
        return web.Response(status=200)

    receiver_app = web.Application()
    receiver_app.router.add_post("/in", hook)
    receiver = TestServer(receiver_app, host="127.0.0.1")
    await receiver.start_server()
    try:
        async with runtime.pool.acquire() as conn:
            org = await conn.fetchval("INSERT INTO organizations (name, slug) VALUES ('o', $1) RETURNING id",
                                      uuid.uuid4().hex)
            lead = await conn.fetchval("INSERT INTO leads (org_id, title, source) VALUES ($1, 'CEO', 'referral') "
                                       "RETURNING id", org)
            await conn.execute("INSERT INTO webhook_endpoints (org_id, url, secret) VALUES ($1, $2, $3)",
                               org, str(receiver.make_url("/in")), "whsec_" + "x" * 20)
            event_id = uuid.uuid4()
            await conn.execute("INSERT INTO outbox (event_id, org_id, type, payload) "
                               "VALUES ($1, $2, 'crm.lead.created', '{}')", event_id, org)
        for _ in range(200):
            async with runtime.pool.acquire() as conn:
                grade = await conn.fetchval("SELECT grade FROM leads WHERE id = $1", lead)
            if grade and len(got) >= 2:
                break
            await asyncio.sleep(0.05)
        assert grade in ("A", "B", "C", "D", "E", "F")
        # The written event, and the re-scoring job's announcement of the lead's new grade.
        assert str(event_id) in [e["id"] for e in got]
        (scored,) = [e for e in got if e["type"] == "crm.lead.scored"]
        assert scored["data"]["lead_id"] == str(lead) and scored["data"]["grade"] == grade
        assert len(got) == 2

        statuses = [(await client.get("/x/ping")).status for _ in range(3)]
        assert statuses == [200, 200, 429]
        assert (await client.get("/live")).status == 200
    finally:
        await receiver.close()
