"""/metrics behind a bearer token when the operator sets COACHLINE_METRICS_TOKEN."""

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from voice_server.app import create_app
from voice_server.runtime import Runtime
from voice_server.settings import load_settings

pytestmark = pytest.mark.asyncio(loop_scope="session")
TOKEN = "metrics-scrape-token-of-some-length"


@pytest_asyncio.fixture(loop_scope="session")
async def node(empty_database, local_redis):
    async def start(env: dict[str, str]) -> TestClient:
        settings = load_settings({"DATABASE_URL": empty_database, "REDIS_URL": local_redis.url,
                                  **env})
        runtime = await Runtime(settings).start()
        client = TestClient(TestServer(create_app(settings, runtime)))
        await client.start_server()
        started.append((client, runtime))
        return client

    started: list = []
    yield start
    for client, runtime in started:
        await client.close()
        await runtime.close()


async def test_metrics_need_the_configured_bearer_token(node):
    client = await node({"COACHLINE_METRICS_TOKEN": TOKEN})
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"},
                    {"Authorization": f"Bearer {TOKEN}x"}):
        resp = await client.get("/metrics", headers=headers)
        assert resp.status == 401, headers
        body = await resp.json()
        assert body["error"]["code"] == "unauthenticated"
        assert TOKEN not in await resp.text()
    resp = await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert resp.status == 200
    assert "coachline_http_requests_total" in await resp.text()
    # probes stay open for the orchestrator
    assert (await client.get("/live")).status == 200


async def test_metrics_stay_open_without_a_token(node):
    client = await node({})
    assert (await client.get("/metrics")).status == 200
