"""Password sign-in fails closed while Redis, which counts its attempts, is down.

A node on a Redis of its own: once that Redis is stopped, a password sign-in is answered 503
with ``Retry-After`` in the API's error shape (and a warning), even with the right password,
so an outage never lifts the limit on guessing. Traffic that is already signed in keeps
flowing: the other limits stay open while Redis is down.
"""

import json
import logging

import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from storage.local_servers import LocalRedis
from tests.crm_core.api_world import PASSWORD, ApiWorld
from voice_server.app import create_app
from voice_server.runtime import Runtime
from voice_server.settings import load_settings


@pytest_asyncio.fixture(loop_scope="session")
async def outage(migrated_database, tmp_path):
    redis = LocalRedis(tmp_path / "redis").start()
    settings = load_settings(
        {
            "DATABASE_URL": migrated_database,
            "REDIS_URL": redis.url,
            "COACHLINE_EVENT_BUS": "memory",
        }
    )
    runtime = await Runtime(settings).start()
    client = TestClient(TestServer(create_app(settings, runtime)))
    await client.start_server()
    try:
        yield ApiWorld(client, runtime.pool, runtime.bus, {}), redis
    finally:
        await client.close()
        await runtime.close()
        redis.stop()


async def _sign_in(client, email: str, password: str):
    resp = await client.post(
        "/auth/token",
        data=json.dumps({"email": email, "password": password}),
        headers={"Content-Type": "application/json"},
    )
    return resp, await resp.json()


async def test_password_sign_in_answers_503_while_redis_is_down(outage, caplog):
    world, redis = outage
    org = await world.make_org()
    resp, _ = await _sign_in(world.client, org.rep.email, "not the password")
    assert resp.status == 401  # counted and checked while Redis is up

    redis.stop()
    with caplog.at_level(logging.WARNING, logger="crm_core.api.sign_in_limits"):
        resp, body = await _sign_in(world.client, org.rep.email, PASSWORD)
    assert resp.status == 503, body
    assert body["error"]["code"] == "service_unavailable"
    assert int(resp.headers["Retry-After"]) > 0
    assert "set-cookie" not in {k.lower() for k in resp.headers}
    assert any("sign-in refused" in r.getMessage() for r in caplog.records), caplog.text
    assert PASSWORD not in caplog.text

    # Signed-in traffic is not refused: the organisation's limit stays open without Redis.
    resp, _ = await world.request("GET", "/api/v1/leads", as_=org.rep, check=False)
    assert resp.status == 200
