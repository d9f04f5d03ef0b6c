"""GET /api/v1/analytics/pipeline: value by stage, the two weighted forecasts side by side,
velocity from the stage history, win/loss by reason, by rep and team, within the caller's reach."""

from datetime import UTC, datetime

import pytest

from crm_core.api.pipeline_analytics import quarter_bounds


def test_quarters_roll_over_the_year():
    from datetime import date

    assert quarter_bounds(date(2026, 11, 30)) == [
        ("current_quarter", date(2026, 10, 1), date(2027, 1, 1)),
        ("next_quarter", date(2027, 1, 1), date(2027, 4, 1))]
    assert quarter_bounds(date(2026, 1, 1))[1] == ("next_quarter", date(2026, 4, 1), date(2026, 7, 1))


async def test_a_pipeline_without_deals_has_zero_figures(world):
    org = await world.make_org()
    resp, empty = await world.request("GET", "/api/v1/analytics/pipeline", as_=org.rep)
    assert resp.status == 200, empty
    assert [(q["open_deals"], q["open_value"], q["weighted_by_model"]) for q in empty["forecast"]] == [(0, 0, 0)] * 2
    assert empty["win_loss"]["win_rate"] is None and empty["by_rep"] == [] and empty["currencies"] == []
    assert all(s["deals"] == 0 and s["conversion_to_later"] is None for s in empty["stages"])


async def test_pipeline_figures(world):
    org = await world.make_org()
    [(_, current, _), (_, upcoming, _)] = quarter_bounds(datetime.now(UTC).date())
    today = datetime.now(UTC).date().isoformat()
    a = await world.create_deal(org.rep, value=1000, stage="proposal", expected_close=today)
    await world.create_deal(org.rep, value=2000, stage="demo", expected_close=upcoming.isoformat())
    c = await world.create_deal(org.rep, value=500, stage="proposal")
    d = await world.create_deal(org.rep, value=300, stage="negotiation")
    await world.create_deal(org.other_rep, value=700, stage="negotiation", expected_close=today)
    for deal, body in ((c, {"stage": "closed_won"}), (d, {"stage": "closed_lost", "lost_reason": "price"})):
        resp, _ = await world.request("PATCH", f"/api/v1/deals/{deal['id']}", as_=org.rep, json=body)
        assert resp.status == 200
    async with world.pool.acquire() as conn:  # c sat in proposal four days before it was won
        await conn.execute("UPDATE deal_stage_history SET entered_at = left_at - interval '4 days' "
                           "WHERE deal_id = $1 AND stage_name = 'proposal'", c["id"])
    resp, prediction = await world.request("POST", f"/api/v1/deals/{a['id']}/predict", as_=org.rep)
    assert resp.status == 200

    resp, mine = await world.request("GET", "/api/v1/analytics/pipeline", as_=org.rep)
    assert resp.status == 200, mine
    assert mine["pipeline"] == "default" and mine["currencies"] == ["USD"]
    stages = {s["name"]: s for s in mine["stages"]}
    assert [s["name"] for s in mine["stages"]][:5] == ["qualification", "discovery", "demo", "proposal",
                                                       "negotiation"]
    assert (stages["demo"]["deals"], stages["demo"]["value"]) == (1, 2000)
    assert stages["demo"]["weighted_value"] == pytest.approx(800)
    assert (stages["proposal"]["deals"], stages["proposal"]["entered"]) == (1, 2)  # a now, c before it was won
    assert stages["proposal"]["conversion_to_later"] == pytest.approx(0.5)
    assert stages["proposal"]["avg_days_in_stage"] == pytest.approx(4.0)  # only ended stays count
    assert stages["negotiation"]["conversion_to_later"] == 0.0  # d went to a lost stage
    assert stages["closed_won"]["conversion_to_later"] is None
    assert stages["qualification"]["avg_days_in_stage"] is None

    now, nxt = mine["forecast"]
    assert (now["period"], now["start"], nxt["start"]) == ("current_quarter", current.isoformat(),
                                                           upcoming.isoformat())
    assert (now["open_deals"], now["open_value"], now["predicted_deals"]) == (1, 1000, 1)
    assert now["weighted_by_stage"] == pytest.approx(600)
    assert now["weighted_by_model"] == pytest.approx(1000 * prediction["win_probability"], rel=1e-5)
    assert now["won_value"] == 500
    assert (nxt["open_deals"], nxt["open_value"], nxt["predicted_deals"], nxt["weighted_by_model"]) == (
        1, 2000, 0, 0)
    assert nxt["weighted_by_stage"] == pytest.approx(800)

    assert mine["win_loss"] == {"won": 1, "lost": 1, "won_value": 500, "lost_value": 300, "win_rate": 0.5,
                                "lost_by_reason": [{"reason": "price", "deals": 1, "value": 300}]}
    assert [(r["id"], r["open_deals"], r["won"], r["lost"]) for r in mine["by_rep"]] == [
        (org.rep.user_id, 2, 1, 1)]

    # the admin sees the other rep's deal too; the team adds both up
    _, everyone = await world.request("GET", "/api/v1/analytics/pipeline", as_=org.admin)
    assert everyone["forecast"][0]["open_deals"] == 2
    assert {r["id"]: r["open_value"] for r in everyone["by_rep"]} == {org.rep.user_id: 3000,
                                                                      org.other_rep.user_id: 700}
    [team] = everyone["by_team"]
    assert (team["id"], team["open_deals"], team["win_rate"]) == (org.team_id, 3, 0.5)

    # another pipeline by id; an unknown one is 404
    _, pipelines = await world.request("GET", "/api/v1/pipelines", as_=org.rep)
    resp, same = await world.request("GET", "/api/v1/analytics/pipeline", as_=org.rep,
                                     params={"pipeline_id": pipelines["data"][0]["id"]})
    assert resp.status == 200 and same["stages"] == mine["stages"]
    for bad in ("00000000-0000-0000-0000-000000000000", "nope"):
        resp, _ = await world.request("GET", "/api/v1/analytics/pipeline", as_=org.rep, params={"pipeline_id": bad})
        assert resp.status == 404
