"""The configurable rule-based ideal-customer-profile score, alone and as the API uses it."""

import asyncio
import uuid

import pytest

from crm_core.scoring.icp import IcpConfigError, icp_rules_of, score_icp
from crm_core.scoring.lead_features import LeadInputError
from crm_core.scoring.lead_scoring import lead_model

ICP = {
    "base": 10,
    "seniority": {"vp": 25, "director": 15, "individual": -5},
    "industries": {"software": 25, "other": -10},
    "company_size": [{"min": 50, "max": 1000, "points": 20}, {"min": 1001, "points": 10}],
    "sources": {"referral": 15, "purchased_list": -10},
    "email": {"corporate": 5, "free": -5},
    "engagement": {"per_call": 4, "max_call_points": 8, "per_objection": -3},
}
FIT = {"title": "VP of Sales", "industry": "Software", "company_size": 200, "source": "referral",
       "email": "ada@acme.com"}
MISFIT = {"title": "Intern", "industry": "Farming", "company_size": 3, "source": "purchased list",
          "email": "bob@gmail.com"}


def test_the_score_is_the_sum_of_the_rules_met_and_every_point_is_explained():
    rules = icp_rules_of(ICP)
    fit = score_icp(FIT, rules)
    assert fit.score == 10 + 25 + 25 + 20 + 15 + 5 == 100 and fit.grade == "A"
    assert fit.model_version == rules.version and rules.version.startswith("icp-rules-")
    assert fit.reasons[0].startswith("Matches the ideal customer profile") and "(+25 points)" in fit.reasons[0]
    misfit = score_icp(MISFIT, rules)
    assert misfit.score == 0 and misfit.grade == "F"  # 10 - 5 - 10 - 10 - 5, clamped at 0
    # the two strongest penalties, in words
    assert sorted(r for r in misfit.reasons if r.startswith("Held back by")) == [
        "Held back by industry: other (-10 points)", "Held back by source: purchased list (-10 points)"]
    called = score_icp({**MISFIT, "engagement": {"calls": 5, "objection_hits": 1}}, rules)
    assert called.score == 0  # calls capped at +8, one objection -3: still below zero
    big = score_icp({**FIT, "company_size": 5000}, rules)
    assert big.score == 90  # the second size band: +10 instead of +20
    assert icp_rules_of(dict(ICP)).version == rules.version
    assert icp_rules_of({**ICP, "base": 11}).version != rules.version


@pytest.mark.parametrize("config", [
    {}, [], {"bonus": 5}, {"base": 500}, {"base": True}, {"seniority": {"ceo": 10}},
    {"industries": {"software": "lots"}}, {"company_size": [{"min": 10, "max": 5, "points": 1}]},
    {"company_size": {"min": 1}}, {"engagement": {"per_email": 3}},
])
def test_unreadable_configs_are_refused_with_the_key_named(config):
    with pytest.raises(IcpConfigError):
        icp_rules_of(config)


def test_unreadable_leads_raise_like_the_model():
    with pytest.raises(LeadInputError):
        score_icp({"company_size": -4}, icp_rules_of(ICP))


async def _set_icp(world, org_id, icp):
    async with world.pool.acquire() as conn:
        await conn.execute("UPDATE organizations SET settings = jsonb_set(settings, '{icp}', $2) WHERE id = $1",
                           org_id, icp)


async def test_the_api_scores_with_the_orgs_icp_until_it_has_a_trained_model(world):
    org = await world.make_org()
    await _set_icp(world, org.id, ICP)
    lead = await world.create_lead(org.rep, first_name="Ada", **FIT)
    assert lead["score_model_version"] == icp_rules_of(ICP).version
    assert (lead["ai_score"], lead["grade"]) == (100, "A")
    assert lead["score_reasons"][0].startswith("Matches the ideal customer profile")
    resp, rescored = await world.request("POST", f"/api/v1/leads/{lead['id']}/score", as_=org.rep)
    assert resp.status == 200 and rescored["model_version"] == icp_rules_of(ICP).version

    # An active trained model (enough labelled history) takes over from the rules.
    version = f"lead-lr-org-test-{uuid.uuid4().hex[:8]}"
    async with world.pool.acquire() as conn:
        await conn.execute("INSERT INTO scoring_models (org_id, kind, version, model, active) "
                           "VALUES ($1, 'lead', $2, $3, true)", org.id, version,
                           {**lead_model().to_json(), "version": version})
    resp, rescored = await world.request("POST", f"/api/v1/leads/{lead['id']}/score", as_=org.rep)
    assert resp.status == 200 and rescored["model_version"] == version


async def test_a_broken_icp_falls_back_to_the_shipped_model(world):
    org = await world.make_org()
    await _set_icp(world, org.id, {"seniority": {"emperor": 50}})
    lead = await world.create_lead(org.rep, first_name="Ada", **FIT)
    assert lead["score_model_version"] == lead_model().version


async def test_csv_imports_score_with_the_orgs_icp_too(world):
    org = await world.make_org()
    await _set_icp(world, org.id, ICP)
    csv = b"first_name,title,industry,company_size,source,email\nAda,VP of Sales,Software,200,referral,a@acme.com\n"
    resp, job = await world.request("POST", "/api/v1/leads/import", as_=org.admin, data=csv,
                                    headers={"Content-Type": "text/csv"})
    assert resp.status == 202, job
    for _ in range(100):
        _, job = await world.request("GET", f"/api/v1/imports/{job['id']}", as_=org.admin)
        if job["status"] != "running":
            break
        await asyncio.sleep(0.05)
    assert job["status"] == "completed" and job["imported_rows"] == 1
    _, page = await world.request("GET", "/api/v1/leads", as_=org.admin)
    assert [(x["ai_score"], x["score_model_version"]) for x in page["data"]] == [(100, icp_rules_of(ICP).version)]
