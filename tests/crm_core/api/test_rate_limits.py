"""Rate limits on the real CRM API: per organisation, sized by the organisation's plan settings."""

import json


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
