"""Rate limits on the real CRM API: per organisation, sized by the organisation's plan settings."""

import json
import uuid

import pytest

from tests.crm_core.api_world import PASSWORD


async def test_an_organisation_spends_its_own_budget_and_gets_429_in_the_error_shape(world):
    org, other = await world.make_org(), await world.make_org()
    async with world.pool.acquire() as conn:
        await conn.execute("UPDATE organizations SET settings = $2 WHERE id = $1", org.id,
                           json.loads('{"plan": "enterprise", "rate_limit_per_min": 3}'))
    statuses = []
    for person in (org.admin, org.rep, org.manager):
        resp, _ = await world.request("GET", "/api/v1/leads", as_=person)
        statuses.append(resp.status)
    refused, body = await world.request("GET", "/api/v1/leads", as_=org.rep, check=False)
    assert statuses == [200, 200, 200]
    assert refused.status == 429
    assert int(refused.headers["Retry-After"]) >= 1
    assert body["error"]["code"] == "rate_limited" and body["error"]["details"]["limit"] == 3
    # Another organisation (default plan) is not affected.
    resp, _ = await world.request("GET", "/api/v1/leads", as_=other.admin)
    assert resp.status == 200


async def test_recording_and_gdpr_routes_spend_the_same_budget(world):
    org = await world.make_org()
    async with world.pool.acquire() as conn:
        await conn.execute("UPDATE organizations SET settings = $2 WHERE id = $1", org.id,
                           json.loads('{"plan": "enterprise", "rate_limit_per_min": 2}'))
    lead = await world.create_lead(org.admin)
    resp, _ = await world.request("GET", f"/api/v1/leads/{lead['id']}/export", as_=org.admin)
    assert resp.status == 200
    refused, body = await world.request("GET", f"/api/v1/leads/{lead['id']}/export", as_=org.admin)
    assert refused.status == 429 and body["error"]["code"] == "rate_limited"
    refused, body = await world.request("GET", "/api/v1/calls/00000000-0000-0000-0000-000000000000/recording",
                                        as_=org.admin)
    assert refused.status == 429 and int(refused.headers["Retry-After"]) >= 1


# Each signed-in user's browser requests have a small budget here, so tests can spend it.
INTERACTIVE_PER_MIN = 4


@pytest.fixture
def world_env() -> dict[str, str]:
    return {"COACHLINE_RATE_LIMIT_INTERACTIVE_PER_MIN": str(INTERACTIVE_PER_MIN)}


async def _browser_token(world, person) -> str:
    """A browser session's short-lived bearer token, as the sign-in form gets it."""
    resp = await world.client.post("/auth/token", json={"email": person.email, "password": PASSWORD})
    assert resp.status == 200, await resp.text()
    world.client.session.cookie_jar.clear()  # each person's requests carry only their token
    return (await resp.json())["token"]


async def _leads(world, token: str):
    return await world.request("GET", "/api/v1/leads", headers={"Authorization": f"Bearer {token}"},
                               check=False)


async def test_browser_sessions_spend_their_users_budget_not_the_organisations(world):
    org = await world.make_org()
    async with world.pool.acquire() as conn:
        await conn.execute("UPDATE organizations SET settings = $2 WHERE id = $1", org.id,
                           json.loads('{"rate_limit_per_min": 3}'))
    manager, rep = await _browser_token(world, org.manager), await _browser_token(world, org.rep)
    # The manager's pages spend the manager's own budget...
    served = [await _leads(world, manager) for _ in range(INTERACTIVE_PER_MIN)]
    assert [r.status for r, _ in served] == [200] * INTERACTIVE_PER_MIN
    assert [r.headers["RateLimit-Remaining"] for r, _ in served] == ["3", "2", "1", "0"]
    assert {r.headers["RateLimit-Limit"] for r, _ in served} == {str(INTERACTIVE_PER_MIN)}
    # ...so an integration (an API token) still has the organisation's whole budget, and spends it.
    statuses = [(await world.request("GET", "/api/v1/leads", as_=org.admin, check=False))[0].status
                for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    # With the organisation's budget spent, another user's pages still load.
    resp, body = await _leads(world, rep)
    assert resp.status == 200 and body["data"] == []
    # One user spending their own budget is refused alone, told when to come back.
    refused, body = await _leads(world, manager)
    assert refused.status == 429 and body["error"]["code"] == "rate_limited"
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.headers["RateLimit-Remaining"] == "0"
    # The session cookie (the page's own requests) is the same interactive budget.
    resp = await world.client.post("/auth/token", json={"email": org.other_rep.email, "password": PASSWORD})
    assert resp.status == 200
    by_cookie = await world.client.get("/api/v1/leads")
    assert by_cookie.status == 200 and by_cookie.headers["RateLimit-Limit"] == str(INTERACTIVE_PER_MIN)
    world.client.session.cookie_jar.clear()


async def test_every_api_response_says_what_is_left_of_its_budget(world):
    org = await world.make_org()
    async with world.pool.acquire() as conn:
        await conn.execute("UPDATE organizations SET settings = $2 WHERE id = $1", org.id,
                           json.loads('{"rate_limit_per_min": 5}'))
    seen = []
    for method, path, body in (("GET", "/api/v1/leads", None),
                               ("GET", f"/api/v1/leads/{uuid.uuid4()}", None),       # 404
                               ("POST", "/api/v1/leads", {"first_name": 7}),           # 422
                               ("GET", "/api/v1/leads?limit=nope", None)):             # 400
        resp, _ = await world.request(method, path, as_=org.admin, json=body, check=False)
        seen.append((resp.status, resp.headers.get("RateLimit-Limit"), resp.headers.get("RateLimit-Remaining"),
                     resp.headers.get("RateLimit-Reset")))
    assert [s[0] for s in seen] == [200, 404, 422, 400], seen
    assert [s[1:3] for s in seen] == [("5", "4"), ("5", "3"), ("5", "2"), ("5", "1")], seen
    assert all(s[3] is not None and 0 <= int(s[3]) <= 60 for s in seen), seen
    # A refused credential spends (and reports) its address's budget for unauthenticated requests.
    resp, _ = await world.request("GET", "/api/v1/leads", headers={"Authorization": "Bearer cl_nope"},
                                  check=False)
    assert resp.status == 401 and int(resp.headers["RateLimit-Remaining"]) >= 0
    assert "RateLimit-Limit" in resp.headers and "RateLimit-Reset" in resp.headers
