import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from crm_core.api_context import OUTBOUND_DIALER
from crm_core.dialing import DialerError, OutboundCallRequest, PlacedCall
from tests.crm_core.api_world import ApiWorld
from voice_server.app import create_app
from voice_server.runtime import Runtime
from voice_server.settings import load_settings


class CarrierStandIn:
    """Stands in for a carrier's network (the one thing these tests cannot reach)."""

    carriers = frozenset({"twilio", "sip"})

    def __init__(self):
        self.placed: list[OutboundCallRequest] = []
        self.refuse = False

    async def place_call(self, request: OutboundCallRequest) -> PlacedCall:
        if self.refuse:
            raise DialerError("number is blocked")
        self.placed.append(request)
        return PlacedCall(external_id=f"CA{len(self.placed):04d}", status="ringing")


@pytest.fixture
def carrier(app_setup):
    # request this fixture before `world`, which reads app_setup when it starts the app
    dialer = CarrierStandIn()
    app_setup[OUTBOUND_DIALER] = dialer
    return dialer


@pytest.fixture
def app_setup():
    """Things a test puts on the app before it starts (e.g. a carrier's dialer)."""
    return {}


@pytest_asyncio.fixture(loop_scope="session")
async def world(migrated_database, redis_url, app_setup):
    settings = load_settings({"DATABASE_URL": migrated_database, "REDIS_URL": redis_url,
                              "COACHLINE_EVENT_BUS": "memory", "COACHLINE_DB_POOL_MAX": "5"})
    runtime = await Runtime(settings).start()
    app = create_app(settings, runtime)
    for key, value in app_setup.items():
        app[key] = value
    client = TestClient(TestServer(app))
    await client.start_server()
    resp = await client.get("/api/v1/openapi.json")
    assert resp.status == 200
    yield ApiWorld(client, runtime.pool, runtime.bus, await resp.json())
    await client.close()
    await runtime.close()
