"""Failed sign-ins spend per-e-mail and per-IP budgets in Redis; past them, sign-in answers 429
before any password is checked, while signed-in users behind the same address carry on."""

import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient, TestServer

from storage.rate_limit import RateLimiter
from tests.crm_core.api_world import PASSWORD, ApiWorld
from voice_server.app import create_app
from voice_server.runtime import Runtime
from voice_server.settings import load_settings

IP_KEY = "signin:ip:127.0.0.1"


async def _forget_ip_budget(redis_url: str) -> None:
    # the budget is keyed by the loopback address every test shares: leave it full for them
    client = aioredis.from_url(redis_url)
    try:
        await RateLimiter(client).reset(IP_KEY)
    finally:
        await client.aclose()


async def _sign_in(client, email, password):
    resp = await client.post("/auth/token", json={"email": email, "password": password})
    return resp.status, resp.headers, await resp.json()


async def test_an_account_guessed_at_is_refused_even_with_the_right_password(world, redis_url):
    org = await world.make_org()
    client = world.client
    try:
        for _ in range(10):  # COACHLINE_RATE_LIMIT_SIGN_IN_FAILURES_PER_EMAIL_PER_MIN
            status, _, body = await _sign_in(client, org.rep.email, "not the password")
            assert (status, body["error"]["code"]) == (401, "unauthenticated")
        # the address is case-folded: the same account under another spelling is the same budget
        status, headers, body = await _sign_in(client, org.rep.email.upper(), PASSWORD)
        assert (status, body["error"]["code"]) == (429, "rate_limited")
        assert int(headers["Retry-After"]) >= 1
        # other accounts from the same address sign in; the rep's API token still works
        status, _, body = await _sign_in(client, org.manager.email, PASSWORD)
        assert status == 200 and body["token"]
        resp, me = await world.request("GET", "/api/v1/me", as_=org.rep)
        assert resp.status == 200 and me["user_id"] == org.rep.user_id
    finally:
        await _forget_ip_budget(redis_url)


async def test_right_passwords_give_their_attempts_back(world, redis_url):
    # A user signing in from many tabs or devices is never locked out by their own successes.
    org = await world.make_org()
    try:
        for _ in range(12):  # more than the account's 10 attempts a minute
            status, _, body = await _sign_in(world.client, org.rep.email, PASSWORD)
            assert status == 200 and body["token"]
    finally:
        await _forget_ip_budget(redis_url)


async def test_one_address_guessing_many_accounts_is_refused_and_others_are_not_locked_out(
    migrated_database, redis_url
):
    settings = load_settings({"DATABASE_URL": migrated_database, "REDIS_URL": redis_url,
                              "COACHLINE_EVENT_BUS": "memory",
                              "COACHLINE_RATE_LIMIT_ANONYMOUS_PER_MIN": "3"})
    runtime = await Runtime(settings).start()
    client = TestClient(TestServer(create_app(settings, runtime)))
    await client.start_server()
    world = ApiWorld(client, runtime.pool, runtime.bus, {})
    try:
        await _forget_ip_budget(redis_url)
        org = await world.make_org()
        for n in range(3):
            status, _, _ = await _sign_in(client, f"nobody-{n}@{org.slug}.test", PASSWORD)
            assert status == 401
        status, _, body = await _sign_in(client, org.admin.email, PASSWORD)
        assert (status, body["error"]["code"]) == (429, "rate_limited")
        assert body["error"]["details"]["limit"] == 3
        # requests that carry a token are never refused for the address's failed sign-ins
        resp, leads = await world.request("GET", "/api/v1/leads", as_=org.rep, check=False)
        assert resp.status == 200 and leads["data"] == []
        # a wrong token is still a plain 401, not a lock-out of the address
        resp = await client.get("/api/v1/leads", headers={"Authorization": "Bearer cla_wrong"})
        assert resp.status == 401
    finally:
        await _forget_ip_budget(redis_url)
        await client.close()
        await runtime.close()
