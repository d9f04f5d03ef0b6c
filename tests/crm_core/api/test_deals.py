"""Deals: stage changes become activities and events; predictions are stored."""

import asyncio


async def test_stage_change_is_an_activity_an_audit_row_and_an_event(world):
    org = await world.make_org()
    deal = await world.create_deal(org.rep, value=5000, stage="qualification")
    sub = await world.bus.subscribe("crm.deal.stage_changed")
    async with sub:
        resp, updated = await world.request("PATCH", f"/api/v1/deals/{deal['id']}", as_=org.rep,
                                            json={"stage": "proposal", "value": 7500})
        delivery = await asyncio.wait_for(sub.__anext__(), 5)
    assert resp.status == 200 and (updated["stage"], updated["value"]) == ("proposal", 7500.0)
    assert delivery.event.payload == {"from": "qualification", "to": "proposal", "deal_id": deal["id"]}
    _, timeline = await world.request("GET", "/api/v1/activities", as_=org.rep, params={"deal_id": deal["id"]})
    assert [(a["kind"], a["body"]["from"], a["body"]["to"]) for a in timeline["data"]] == [
        ("stage_changed", "qualification", "proposal")]
    resp, closed = await world.request("PATCH", f"/api/v1/deals/{deal['id']}", as_=org.rep,
                                       json={"stage": "closed_won"})
    assert closed["closed_at"] is not None
    # same stage again: no new activity
    await world.request("PATCH", f"/api/v1/deals/{deal['id']}", as_=org.rep, json={"stage": "closed_won"})
    _, timeline = await world.request("GET", "/api/v1/activities", as_=org.rep,
                                      params={"deal_id": deal["id"], "kind": "stage_changed"})
    assert len(timeline["data"]) == 2
    async with world.pool.acquire() as conn:
        audit = await conn.fetch(
            "SELECT action, before, after FROM audit_log WHERE resource_id = $1 AND action = 'deal.stage_change'"
            " ORDER BY id", deal["id"])
    assert [(a["before"]["stage"], a["after"]["stage"]) for a in audit] == [
        ("qualification", "proposal"), ("proposal", "closed_won")]


async def test_deal_validation_and_filters(world):
    org = await world.make_org()
    for body in ({"name": ""}, {"name": "x", "value": -1}, {"name": "x", "value": 1e12},
                 {"name": "x", "currency": "usd"},
                 {"name": "x", "stage": "Closed Won!"}):
        resp, err = await world.request("POST", "/api/v1/deals", as_=org.rep, json=body)
        assert resp.status == 422, body
    small = await world.create_deal(org.rep, value=100)
    big = await world.create_deal(org.rep, value=90_000, stage="negotiation")
    _, page = await world.request("GET", "/api/v1/deals", as_=org.rep, params={"min_value": "1000"})
    assert [d["id"] for d in page["data"]] == [big["id"]]
    _, page = await world.request("GET", "/api/v1/deals", as_=org.rep, params={"sort": "value"})
    assert [d["id"] for d in page["data"]] == [small["id"], big["id"]]
    resp, err = await world.request("PATCH", f"/api/v1/deals/{small['id']}", as_=org.rep, json={"name": None})
    assert resp.status == 422
    resp, err = await world.request("PATCH", f"/api/v1/deals/{small['id']}", as_=org.rep, json={})
    assert (resp.status, err["error"]["code"]) == (400, "empty_update")


async def test_predict_stores_a_prediction(world):
    org = await world.make_org()
    deal = await world.create_deal(org.rep, value=20_000, stage="proposal")
    await world.request("POST", "/api/v1/activities", as_=org.rep,
                        json={"deal_id": deal["id"], "text": "demo went well"})
    resp, prediction = await world.request("POST", f"/api/v1/deals/{deal['id']}/predict", as_=org.rep)
    assert resp.status == 200, prediction
    assert 0 <= prediction["win_probability"] <= 1 and prediction["model_version"]
    async with world.pool.acquire() as conn:
        row = await conn.fetchrow("SELECT * FROM predictions WHERE id = $1", prediction["id"])
    assert str(row["deal_id"]) == deal["id"] and abs(row["win_probability"] - prediction["win_probability"]) < 1e-6
    resp, _ = await world.request("POST", f"/api/v1/deals/{deal['id']}/predict", as_=org.other_rep)
    assert resp.status == 404
