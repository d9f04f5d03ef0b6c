"""/api/v1/analytics/team: figures equal to a hand computation on scripted calls, and who sees what."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import pytest_asyncio

from crm_core.auth.tokens import create_api_token
from crm_core.calls.summaries import store_call_summary
from tests.crm_core.api_world import Person
from tests.crm_core.team_calls import CALL_A, CALL_B, CALL_C, store_scripted_call

PERIOD = {"from": "2025-03-01", "to": "2025-03-31"}


def at(day: int, month: int = 3) -> datetime:
    return datetime(2025, month, day, 10, 0, tzinfo=UTC)


@pytest_asyncio.fixture(loop_scope="session")
async def seeded(world):
    org = await world.make_org()
    other = await world.make_org()
    async with world.pool.acquire() as conn:
        west = str(
            await conn.fetchval(
                "INSERT INTO teams (org_id, name) VALUES ($1, 'West') RETURNING id", org.id
            )
        )
    west_manager = await world.make_person(org.id, "manager", west, f"wm@{org.slug}.test")
    west_rep = await world.make_person(org.id, "rep", west, f"wr@{org.slug}.test")
    pool = world.pool
    calls = {}
    calls["a"], a = await store_scripted_call(pool, org.id, org.rep.user_id, at(3), CALL_A)
    calls["b"], b = await store_scripted_call(pool, org.id, org.rep.user_id, at(12), CALL_B)
    calls["c"], c = await store_scripted_call(pool, org.id, org.other_rep.user_id, at(4), CALL_C)
    calls["outsider_a"], _ = await store_scripted_call(
        pool, org.id, org.outsider_rep.user_id, at(5), CALL_A
    )
    calls["west_c"], _ = await store_scripted_call(pool, org.id, west_rep.user_id, at(6), CALL_C)
    calls["late_b"], _ = await store_scripted_call(pool, org.id, org.rep.user_id, at(1, 5), CALL_B)
    calls["other_org_a"], _ = await store_scripted_call(
        pool, other.id, other.rep.user_id, at(3), CALL_A
    )
    return {
        "org": org,
        "other": other,
        "west": west,
        "west_manager": west_manager,
        "west_rep": west_rep,
        "calls": calls,
        "sentiment": {
            "a": a["customer_sentiment"],
            "b": b["customer_sentiment"],
            "c": c["customer_sentiment"],
        },
    }


async def get(world, path: str, who: Person, **params):
    resp, body = await world.request("GET", path, as_=who, params={**PERIOD, **params})
    return resp.status, body


def by_id(body) -> dict:
    return {row["id"]: row for row in body["data"]}


async def test_per_rep_figures_equal_the_hand_computation(world, seeded):
    org, s = seeded["org"], seeded["sentiment"]
    status, body = await get(world, "/api/v1/analytics/team", org.manager)
    assert status == 200, body
    rows = by_id(body)
    # the manager's team: the rep (calls A, B) and the other rep (C); not the outsider, not West
    assert set(rows) == {org.rep.user_id, org.other_rep.user_id}
    rep = rows[org.rep.user_id]
    assert rep["calls"] == 2
    assert rep["talk_ms"] == 14000 + 11000 and rep["customer_talk_ms"] == 9500 + 1500
    assert rep["talk_share"] == round(25000 / 36000, 4)
    assert (
        rep["longest_monologue_ms"] == (6000 + 8000) / 2 and rep["max_longest_monologue_ms"] == 8000
    )
    assert rep["interruptions"] == 0 and rep["questions"] == 3
    assert rep["patience_ms"] == (1000 * 2 + 1000 * 1) / 3
    assert rep["customer_sentiment"] == pytest.approx((s["a"] + s["b"]) / 2, abs=1e-4)
    assert (rep["prompts_fired"], rep["prompts_followed"], rep["follow_rate"]) == (4, 3, 0.75)
    assert rep["checklist_completion"] == 2 / 4
    assert (rep["calls_with_competitors"], rep["competitor_mentions"]) == (1, 2)
    assert (rep["calls_with_objections"], rep["objection_mentions"]) == (2, 3)
    other = rows[org.other_rep.user_id]
    assert (other["calls"], other["talk_ms"], other["talk_share"]) == (
        1,
        5000,
        round(5000 / 10800, 4),
    )
    assert (other["questions"], other["patience_ms"], other["follow_rate"]) == (1, 500, 1.0)
    # the team: A, B, C
    total = body["total"]
    assert total["calls"] == 3 and total["talk_share"] == round(30000 / 46800, 4)
    assert total["longest_monologue_ms"] == (6000 + 8000 + 2500) / 3
    assert total["patience_ms"] == (1000 * 2 + 1000 + 500 * 2) / 5
    assert (total["prompts_fired"], total["prompts_followed"], total["follow_rate"]) == (5, 4, 0.8)
    assert total["checklist_completion"] == 3 / 6
    assert total["customer_sentiment"] == pytest.approx((s["a"] + s["b"] + s["c"]) / 3, abs=1e-4)
    assert body["competitors"] == [{"name": "Chorus", "calls": 1}, {"name": "Gong", "calls": 1}]
    assert {o["name"] for o in body["objections"]} == {
        "objection_brush_off",
        "objection_incumbent",
        "objection_price",
    }


async def test_team_rows_weekly_trends_and_drill_down(world, seeded):
    org, calls = seeded["org"], seeded["calls"]
    status, body = await get(world, "/api/v1/analytics/team", org.admin, group="team")
    assert status == 200, body
    teams = {row["name"]: row for row in body["data"]}
    assert {n: r["calls"] for n, r in teams.items()} == {"East": 3, "West": 1, "No team": 1}
    assert teams["East"]["id"] == org.team_id and teams["No team"]["id"] is None
    assert body["total"]["calls"] == 5  # the May call and the other organization's are out

    status, body = await get(
        world, "/api/v1/analytics/team/trends", org.manager, rep_id=org.rep.user_id
    )
    assert status == 200, body
    assert [(w["week"], w["calls"], w["talk_ms"]) for w in body["data"]] == [
        ("2025-03-03", 1, 14000),
        ("2025-03-10", 1, 11000),
    ]

    async def listed(who, **params):
        status, body = await get(world, "/api/v1/analytics/team/calls", who, **params)
        assert status == 200, body
        return [c["id"] for c in body["data"]]

    assert await listed(org.manager, metric="prompts_not_followed") == [calls["b"]]
    assert await listed(org.manager, metric="competitors", competitor="Gong") == [calls["a"]]
    assert await listed(org.admin, metric="competitors", competitor="Gong") == [
        calls["outsider_a"],
        calls["a"],
    ]
    assert await listed(org.manager, metric="checklist_missed") == [calls["b"], calls["c"]]
    assert await listed(org.manager, rep_id=org.rep.user_id) == [calls["b"], calls["a"]]
    # keyset pages
    status, page = await get(world, "/api/v1/analytics/team/calls", org.manager, limit="1")
    assert [c["id"] for c in page["data"]] == [calls["b"]] and page["next_cursor"]
    status, page = await get(
        world, "/api/v1/analytics/team/calls", org.manager, limit="1", cursor=page["next_cursor"]
    )
    assert [c["id"] for c in page["data"]] == [calls["c"]]


async def test_who_sees_what(world, seeded):
    org, other = seeded["org"], seeded["other"]
    # a rep: themselves only; not another rep, not team rows
    status, body = await get(world, "/api/v1/analytics/team", org.rep)
    assert status == 200 and set(by_id(body)) == {org.rep.user_id}
    assert (await get(world, "/api/v1/analytics/team", org.rep, rep_id=org.other_rep.user_id))[
        0
    ] == 404
    assert (await get(world, "/api/v1/analytics/team", org.rep, group="team"))[0] == 403
    assert (await get(world, "/api/v1/analytics/team/trends", org.rep, team_id=org.team_id))[
        0
    ] == 403
    status, body = await get(world, "/api/v1/analytics/team/calls", org.rep)
    assert {c["rep_id"] for c in body["data"]} == {org.rep.user_id}
    # a manager: not another team, nor its rep
    assert (await get(world, "/api/v1/analytics/team", org.manager, team_id=seeded["west"]))[
        0
    ] == 404
    assert (
        await get(
            world, "/api/v1/analytics/team/calls", org.manager, rep_id=seeded["west_rep"].user_id
        )
    )[0] == 404
    status, body = await get(world, "/api/v1/analytics/team", seeded["west_manager"])
    assert set(by_id(body)) == {seeded["west_rep"].user_id}
    # another organization's admin: its own calls only, and our team is not found
    status, body = await get(world, "/api/v1/analytics/team", other.admin)
    assert set(by_id(body)) == {other.rep.user_id} and body["total"]["calls"] == 1
    assert (await get(world, "/api/v1/analytics/team", other.admin, team_id=org.team_id))[0] == 404
    # an API token without calls:read
    async with world.pool.acquire() as conn:
        narrow = await create_api_token(
            conn,
            org_id=org.id,
            user_id=org.admin.user_id,
            name="narrow",
            scopes=["leads:read"],
            expires_at=None,
        )
    who = Person(org.admin.user_id, org.id, "admin", org.admin.email, narrow.token)
    assert (await get(world, "/api/v1/analytics/team", who))[0] == 403


@pytest.mark.parametrize(
    "params",
    [
        {"from": "2025-04-01", "to": "2025-03-01"},  # reversed
        {"from": "2025-02-30"},  # no such day
        {"from": "01/03/2025"},  # not ISO
        {"from": "2024-01-01", "to": "2025-12-31"},  # longer than 400 days
        {"group": "everyone"},
        {"rep_id": "not-a-uuid"},
        {"colour": "red"},
    ],
)
async def test_bad_queries_are_400(world, seeded, params):
    resp, body = await world.request(
        "GET", "/api/v1/analytics/team", as_=seeded["org"].manager, params={**PERIOD, **params}
    )
    assert resp.status == 400, body
    assert body["error"]["code"] in ("invalid_period", "invalid_query")


async def test_bad_drill_down_queries_are_400(world, seeded):
    for params in ({"metric": "everything"}, {"limit": "0"}, {"cursor": "!!"}):
        resp, body = await world.request(
            "GET",
            "/api/v1/analytics/team/calls",
            as_=seeded["org"].manager,
            params={**PERIOD, **params},
        )
        assert resp.status == 400, (params, body)


async def test_a_summary_without_analytics_still_gives_its_row(world, seeded):
    """Calls summarised before the figures existed (the migration's backfill reads them the same way)."""
    org = seeded["org"]
    call_id = seeded["calls"]["a"]
    async with world.pool.acquire() as conn:
        summary = await conn.fetchval("SELECT summary FROM calls WHERE id = $1", call_id)
        await conn.execute("DELETE FROM call_metrics WHERE call_id = $1", call_id)
        await conn.execute("UPDATE calls SET summary = NULL WHERE id = $1", call_id)
        await conn.execute(
            "INSERT INTO call_prompts (org_id, call_id, prompt_key, rule_id, kind, severity, title, at_ms)"
            " VALUES ($1, $2, 'k1', 'price-objection', 'keyword', 'warning', 'Price', 100)",
            org.id,
            call_id,
        )
        old = {k: v for k, v in summary.items() if k != "analytics"}
        assert await store_call_summary(conn, org.id, call_id, old) is not None
        row = await conn.fetchrow("SELECT * FROM call_metrics WHERE call_id = $1", call_id)
        # restore the scripted call for the other tests
        await conn.execute("DELETE FROM call_prompts WHERE call_id = $1", call_id)
        await conn.execute("DELETE FROM call_metrics WHERE call_id = $1", call_id)
        await conn.execute("UPDATE calls SET summary = NULL WHERE id = $1", call_id)
        await store_call_summary(conn, org.id, call_id, summary)
    assert (row["rep_talk_ms"], row["rep_longest_monologue_ms"], row["customer_interruptions"]) == (
        14000,
        6000,
        1,
    )
    assert row["rep_questions"] == 3  # the "?" of the stored rep segments
    assert (
        row["prompts_fired"] == 1
        and row["prompts_followed"] is None
        and row["checklist_total"] is None
    )
    assert row["competitors"] == ["Gong"] and row["objections"] == [
        "objection_incumbent",
        "objection_price",
    ]
