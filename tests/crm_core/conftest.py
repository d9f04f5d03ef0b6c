import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from tests.crm_core.api_world import ApiWorld
from voice_server.app import create_app
from voice_server.runtime import Runtime
from voice_server.settings import load_settings


@pytest.fixture
def world_env() -> dict[str, str]:
    """Extra settings for the world's node (a test module may override this fixture)."""
    return {}


@pytest_asyncio.fixture(loop_scope="session")
async def world(migrated_database, redis_url, request):
    try:  # modules that import this fixture from elsewhere have no world_env: none is needed
        world_env = request.getfixturevalue("world_env")
    except pytest.FixtureLookupError:
        world_env = {}
    settings = load_settings({"DATABASE_URL": migrated_database, "REDIS_URL": redis_url,
                              "COACHLINE_EVENT_BUS": "memory", "COACHLINE_DB_POOL_MAX": "5",
                              # every test's requests come from 127.0.0.1 into one Redis: the
                              # per-address budget of unauthenticated requests must not fill up
                              "COACHLINE_RATE_LIMIT_UNAUTHENTICATED_PER_MIN": "1000000",
                              **world_env})
    runtime = await Runtime(settings).start()
    app = create_app(settings, runtime)
    client = TestClient(TestServer(app))
    await client.start_server()
    resp = await client.get("/api/v1/openapi.json")
    assert resp.status == 200
    yield ApiWorld(client, runtime.pool, runtime.bus, await resp.json())
    await client.close()
    await runtime.close()
