"""The running API for attack tests: ``tests/crm_core``'s world with budgets no attack spends.

A 429 would stop a hostile request before the parser or handler it is meant for; the limiters
still run (their own tests are in tests/crm_core/api). Import ``world`` from here as a fixture.
"""

from __future__ import annotations

import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from tests.crm_core.api_world import ApiWorld
from voice_server.app import create_app
from voice_server.runtime import Runtime
from voice_server.settings import load_settings


@pytest_asyncio.fixture(loop_scope="session")
async def world(migrated_database, redis_url):
    """The API as ``tests/crm_core``'s world, with budgets no attack here spends: a 429 would
    stop a hostile body before the parser it is meant for (the limiters still run)."""
    generous = "1000000"
    settings = load_settings(
        {
            "DATABASE_URL": migrated_database,
            "REDIS_URL": redis_url,
            "COACHLINE_EVENT_BUS": "memory",
            "COACHLINE_DB_POOL_MAX": "5",
            "COACHLINE_RATE_LIMIT_ANONYMOUS_PER_MIN": generous,
            "COACHLINE_RATE_LIMIT_STARTER_PER_MIN": generous,
        }
    )
    runtime = await Runtime(settings).start()
    client = TestClient(TestServer(create_app(settings, runtime)))
    await client.start_server()
    resp = await client.get("/api/v1/openapi.json")
    yield ApiWorld(client, runtime.pool, runtime.bus, await resp.json())
    await client.close()
    await runtime.close()
