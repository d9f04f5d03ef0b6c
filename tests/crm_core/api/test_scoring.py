"""/api/v1/scoring over HTTP: admins train lead and deal models and edit the ICP; the API then
scores and predicts with what they set up (who may call it: tests/crm_core/api/test_access.py)."""

import pytest

from crm_core.scoring.deal_prediction import deal_model
from crm_core.scoring.lead_scoring import lead_model
from tests.crm_core.scoring.test_org_deal_gbm import _insert_closed_deals
from tests.crm_core.scoring.test_org_lead_gbm import _insert, planted_history


async def test_admins_train_lead_models_and_new_leads_are_scored_by_the_active_one(world):
    org = await world.make_org()
    resp, err = await world.request("POST", "/api/v1/scoring/lead-models", as_=org.admin)
    assert (resp.status, err["error"]["code"]) == (422, "not_enough_history")
    assert "have 0 and 0" in err["error"]["message"]

    leads, labels = planted_history(600, seed=61)
    async with world.pool.acquire() as conn:
        await _insert(conn, org.id, leads, labels)
    resp, trained = await world.request("POST", "/api/v1/scoring/lead-models", as_=org.admin)
    assert resp.status == 201, trained
    assert trained["activated"] and trained["active"] and trained["kind"] == "lead"
    assert trained["format"] == "boosted-trees-v1" and trained["trained_by"] == org.admin.user_id
    assert trained["compared_with"] == lead_model().version and "is now active" in trained["summary"]
    assert trained["metrics"]["examples"] == 600
    assert trained["metrics"]["holdout_auc"] > trained["metrics"]["shipped_holdout_auc"]

    resp, again = await world.request("POST", "/api/v1/scoring/lead-models", as_=org.admin)
    assert resp.status == 201 and not again["activated"] and again["compared_with"] == trained["version"]
    assert "not activated" in again["summary"]
    _, page = await world.request("GET", "/api/v1/scoring/lead-models", as_=org.admin)
    assert [(m["version"], m["active"]) for m in page["data"]] == [(again["version"], False),
                                                                  (trained["version"], True)]

    lead = await world.create_lead(org.rep, title="Procurement Manager", company_size=4000,
                                   industry="Hospital & Health Care", email="p@h.org")
    assert lead["score_model_version"] == trained["version"] and lead["score_reasons"]
    _, icp = await world.request("GET", "/api/v1/scoring/icp", as_=org.admin)
    assert icp["scored_by"] == trained["version"] and not icp["in_use"]

    async with world.pool.acquire() as conn:
        audited = await conn.fetch("SELECT resource_id, actor_id::text FROM audit_log "
                                   "WHERE org_id = $1 AND action = 'scoring.lead_model.train' ORDER BY id", org.id)
    assert [(a["resource_id"], a["actor_id"]) for a in audited] == [
        (trained["version"], org.admin.user_id), (again["version"], org.admin.user_id)]
    other = await world.make_org()  # another organisation sees none of it
    _, page = await world.request("GET", "/api/v1/scoring/lead-models", as_=other.admin)
    assert page["data"] == []


async def test_admins_train_deal_models_and_predictions_use_them(world):
    org = await world.make_org()
    resp, err = await world.request("POST", "/api/v1/scoring/deal-models", as_=org.admin)
    assert (resp.status, err["error"]["code"]) == (422, "not_enough_history")
    assert "won deals" in err["error"]["message"]
    async with world.pool.acquire() as conn:
        await _insert_closed_deals(conn, org.id, 500, seed=71)
    resp, trained = await world.request("POST", "/api/v1/scoring/deal-models", as_=org.admin)
    assert resp.status == 201, trained
    assert trained["activated"] and trained["kind"] == "deal" and trained["compared_with"] == deal_model().version
    assert 0 <= trained["metrics"]["holdout_ece"] < 0.2
    _, page = await world.request("GET", "/api/v1/scoring/deal-models", as_=org.admin)
    assert [m["version"] for m in page["data"]] == [trained["version"]]

    deal = await world.create_deal(org.rep, value=250000, stage="proposal")
    resp, prediction = await world.request("POST", f"/api/v1/deals/{deal['id']}/predict", as_=org.rep)
    assert resp.status == 200 and prediction["model_version"] == trained["version"]
    assert prediction["reasons"]


@pytest.mark.parametrize("icp, message", [
    ({"seniority": {"ceo": 10}}, "unknown names"),
    ({"base": 150}, "-100..100"),
    ({"company_size": [{"min": 10, "max": 5, "points": 5}]}, "min/max"),
    ({}, "non-empty"),
    ({"colour": {"red": 1}}, "unknown keys"),
])
async def test_a_bad_icp_is_refused_with_the_reason(world, icp, message):
    org = await world.make_org()
    resp, err = await world.request("PUT", "/api/v1/scoring/icp", as_=org.admin, json={"icp": icp})
    assert (resp.status, err["error"]["code"]) == (422, "invalid_icp")
    assert message in err["error"]["message"]
    _, current = await world.request("GET", "/api/v1/scoring/icp", as_=org.admin)
    assert current["icp"] is None


async def test_admins_set_the_icp_and_leads_are_scored_by_it(world):
    org = await world.make_org()
    _, current = await world.request("GET", "/api/v1/scoring/icp", as_=org.admin)
    assert current == {"icp": None, "version": None, "problem": None, "in_use": False,
                       "scored_by": lead_model().version}
    rules = {"base": 10, "seniority": {"vp": 40}, "industries": {"healthcare": 30}}
    resp, saved = await world.request("PUT", "/api/v1/scoring/icp", as_=org.admin, json={"icp": rules})
    assert resp.status == 200 and saved["icp"] == rules and saved["in_use"]
    assert saved["version"].startswith("icp-rules-") and saved["scored_by"] == saved["version"]
    lead = await world.create_lead(org.rep, title="VP Operations", industry="Healthcare")
    assert lead["score_model_version"] == saved["version"] and lead["ai_score"] == 80
    assert any("ideal customer profile" in r for r in lead["score_reasons"])

    resp, cleared = await world.request("PUT", "/api/v1/scoring/icp", as_=org.admin, json={"icp": None})
    assert resp.status == 200 and cleared["icp"] is None and not cleared["in_use"]
    async with world.pool.acquire() as conn:
        audited = await conn.fetch("SELECT before, after FROM audit_log WHERE org_id = $1 "
                                   "AND action = 'scoring.icp.update' ORDER BY id", org.id)
        # the lead scored under the rules waits for the re-scoring job again
        assert await conn.fetchval("SELECT scored_at FROM leads WHERE id = $1", lead["id"]) is None
    assert [(a["before"]["icp"], a["after"]["icp"]) for a in audited] == [(None, rules), (rules, None)]

    async with world.pool.acquire() as conn:  # a config written around the API is reported, not used
        await conn.execute("""UPDATE organizations SET settings = settings || '{"icp": ["vp"]}'::jsonb
                              WHERE id = $1""", org.id)
    _, broken = await world.request("GET", "/api/v1/scoring/icp", as_=org.admin)
    assert broken["icp"] is None and "non-empty object" in broken["problem"] and not broken["in_use"]
    assert broken["scored_by"] == lead_model().version
