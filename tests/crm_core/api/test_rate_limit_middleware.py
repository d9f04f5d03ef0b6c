import uuid

import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from storage.rate_limit import RateLimiter
from crm_core.api.rate_limits import PRINCIPAL_KEY, RateLimitPolicy, rate_limit_middleware


async def _ok(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


pytestmark = pytest.mark.filterwarnings("ignore::aiohttp.web_exceptions.NotAppKeyWarning")


@web.middleware
async def _fake_auth(request, handler):
    # Stands in for the API's auth middleware: it only names the principal.
    org = request.headers.get("X-Test-Org")
    if org:
        request[PRINCIPAL_KEY] = {"org_id": org, "plan": request.headers.get("X-Test-Plan")}
    return await handler(request)


def _app(limiter: RateLimiter, policy: RateLimitPolicy) -> web.Application:
    app = web.Application(middlewares=[_fake_auth, rate_limit_middleware(limiter, policy)])
    app.router.add_get("/api/v1/leads", _ok)
    app.router.add_get("/live", _ok)
    return app


async def test_two_nodes_share_one_budget_and_refuse_with_429_in_the_api_error_shape(redis_url):
    clients = [aioredis.from_url(redis_url) for _ in range(2)]
    policy = RateLimitPolicy(anonymous_per_min=4, plan_limits_per_min={"starter": 3, "professional": 6})
    # Both nodes must use the same key space to share budgets.
    prefix = f"t{uuid.uuid4().hex}:"
    nodes = [TestClient(TestServer(_app(RateLimiter(c, prefix=prefix), policy))) for c in clients]
    for n in nodes:
        await n.start_server()
    try:
        statuses = [(await nodes[i % 2].get("/api/v1/leads")).status for i in range(4)]
        assert statuses == [200, 200, 200, 200]
        refused = await nodes[0].get("/api/v1/leads")
        assert refused.status == 429
        assert int(refused.headers["Retry-After"]) >= 1
        body = await refused.json()
        assert body["error"]["code"] == "rate_limited"
        assert body["error"]["details"]["limit"] == 4 and body["error"]["message"]
        # Probes are never limited.
        assert (await nodes[1].get("/live")).status == 200
        # An authenticated org spends its own plan-sized budget, not the IP's.
        org = {"X-Test-Org": str(uuid.uuid4()), "X-Test-Plan": "professional"}
        ok = await nodes[1].get("/api/v1/leads", headers=org)
        assert ok.status == 200 and ok.headers["RateLimit-Limit"] == "6"
        assert ok.headers["RateLimit-Remaining"] == "5"
        starter = {"X-Test-Org": str(uuid.uuid4())}
        got = [(await nodes[i % 2].get("/api/v1/leads", headers=starter)).status for i in range(4)]
        assert got == [200, 200, 200, 429]
    finally:
        for n in nodes:
            await n.close()
        for c in clients:
            await c.aclose()


async def test_requests_pass_when_redis_is_down():
    client = aioredis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    node = TestClient(TestServer(_app(RateLimiter(client), RateLimitPolicy(anonymous_per_min=1))))
    await node.start_server()
    try:
        assert [(await node.get("/api/v1/leads")).status for _ in range(3)] == [200, 200, 200]
    finally:
        await node.close()
        await client.aclose()
