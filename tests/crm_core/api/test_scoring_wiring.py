"""The API scores and predicts with what the database knows: an organisation's active trained
lead model, and a deal's whole timeline including the signals its calls carried."""

import uuid

from crm_core.scoring.lead_scoring import lead_model

HOT = {"first_name": "Ada", "title": "VP of Sales", "company": "Acme", "company_size": 800,
       "industry": "Software", "source": "referral", "email": "ada@acme.com"}


async def _activate_inverted_model(world, org_id: str) -> str:
    """An 'organisation model' that ranks leads the opposite way to the shipped one."""
    data = lead_model().to_json()
    version = f"lead-lr-org-test-{uuid.uuid4().hex[:8]}"
    data.update(version=version, weights=[-w for w in data["weights"]], bias=-data["bias"])
    async with world.pool.acquire() as conn:
        await conn.execute("INSERT INTO scoring_models (org_id, kind, version, model, active) "
                           "VALUES ($1, 'lead', $2, $3, true)", org_id, version, data)
    return version


async def test_create_and_rescore_use_the_orgs_active_model(world):
    plain, trained = await world.make_org(), await world.make_org()
    version = await _activate_inverted_model(world, trained.id)
    default = await world.create_lead(plain.rep, **HOT)
    own = await world.create_lead(trained.rep, **HOT)
    assert default["score_model_version"] == lead_model().version
    assert own["score_model_version"] == version
    assert own["ai_score"] < default["ai_score"]  # the inverted model dislikes the shipped model's A-lead

    resp, rescored = await world.request("POST", f"/api/v1/leads/{own['id']}/score", as_=trained.rep)
    assert resp.status == 200 and rescored["model_version"] == version
    assert abs(rescored["score"] - own["ai_score"]) < 1e-6
    resp, patched = await world.request("PATCH", f"/api/v1/leads/{own['id']}", as_=trained.rep,
                                        json={"title": "Intern"})
    assert resp.status == 200 and patched["score_model_version"] == version


async def test_a_completed_call_with_competitor_mentions_changes_the_prediction(world):
    org = await world.make_org()
    deal = await world.create_deal(org.rep, value=20000, stage="proposal")
    resp, before = await world.request("POST", f"/api/v1/deals/{deal['id']}/predict", as_=org.rep)
    assert resp.status == 200 and "competitor_mentioned" not in before["risk_flags"]

    async with world.pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO activities (org_id, kind, subject_type, subject_id, deal_id, body) "
            "VALUES ($1, 'call.completed', 'deal', $2, $2, $3)",
            org.id, deal["id"], {"competitor_hits": 4, "sentiment": -0.2},
        )
    resp, after = await world.request("POST", f"/api/v1/deals/{deal['id']}/predict", as_=org.rep)
    assert resp.status == 200
    assert "competitor_mentioned" in after["risk_flags"]
    assert after["win_probability"] != before["win_probability"]

    async with world.pool.acquire() as conn:
        rows = {str(r["id"]): r["factors"] for r in await conn.fetch(
            "SELECT id, factors FROM predictions WHERE deal_id = $1", deal["id"])}
    assert set(rows) == {before["id"], after["id"]}
    assert rows[before["id"]] != rows[after["id"]]
    assert "4" in str(rows[after["id"]])  # the stored factors name the four mentions


async def test_the_schema_takes_grades_a_to_f_only(world):
    import asyncpg
    import pytest

    org = await world.make_org()
    async with world.pool.acquire() as conn:
        for grade in "ABCDEF":
            await conn.execute("INSERT INTO leads (org_id, first_name, grade) VALUES ($1, 'G', $2)", org.id, grade)
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute("INSERT INTO leads (org_id, first_name, grade) VALUES ($1, 'G', 'G')", org.id)
