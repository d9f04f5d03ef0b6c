"""GET /api/v1/analytics/pipeline: one pipeline's value by stage, quarterly forecast, velocity and win/loss.

Every figure counts the deals the caller may see (a rep their own, a manager their team's, an
admin the organisation's: ``access.visible_clause``), of one pipeline (``pipeline_id``, else the
default). Stages are read by type and probability, never by name. The forecast puts the stage's
probability and the model's latest predicted probability side by side; velocity reads the stage
history (migration 0021).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import asyncpg

from crm_core.api.access import visible_clause
from crm_core.api.endpoint import Endpoint, QueryParam
from crm_core.api.listing import SqlParams
from crm_core.api.records import parse_uuid
from crm_core.api.reply import Call, Reply
from crm_core.api.schemas.pipeline_analytics import PipelineAnalytics
from crm_core.api_errors import NotFound


def quarter_bounds(today: date) -> list[tuple[str, date, date]]:
    """(label, first day, first day after) of the quarter holding ``today`` and of the next one."""
    start = date(today.year, 3 * ((today.month - 1) // 3) + 1, 1)
    bounds = [start]
    for _ in range(2):
        last = bounds[-1]
        bounds.append(date(last.year + (last.month > 9), (last.month + 2) % 12 + 1, 1))
    return [("current_quarter", bounds[0], bounds[1]), ("next_quarter", bounds[1], bounds[2])]


def _rate(won: int, lost: int) -> float | None:
    return won / (won + lost) if won + lost else None


async def _pipeline(conn: asyncpg.Connection, org_id: Any, raw_id: str | None) -> asyncpg.Record:
    if raw_id is None:
        row = await conn.fetchrow("SELECT id, name FROM pipelines WHERE org_id = $1 AND is_default", org_id)
    else:
        row = await conn.fetchrow("SELECT id, name FROM pipelines WHERE org_id = $1 AND id = $2", org_id,
                                  parse_uuid(raw_id, "pipeline_id"))
    if row is None:
        raise NotFound("no such pipeline", {"pipeline_id": raw_id})
    return row


def _scope(call: Call, pipeline_id: Any) -> tuple[str, SqlParams]:
    """The caller's visible deals of the pipeline, with their stage's type and probability, as a CTE."""
    params = SqlParams()
    where = visible_clause(call.me, params, alias="d", owner_column="owner_id")
    where.append(f"d.pipeline_id = {params.add(pipeline_id)}")
    cte = f"""
        WITH scope AS (
            SELECT d.id, d.org_id, d.owner_id, d.value, d.currency, d.stage_id, d.expected_close, d.closed_at,
                   d.lost_reason, s.type, s.probability, s.position
            FROM deals d JOIN pipeline_stages s ON s.org_id = d.org_id AND s.id = d.stage_id
            WHERE {" AND ".join(where)}
        )"""
    return cte, params


async def pipeline_analytics(call: Call) -> Reply:
    me = call.me
    today = datetime.now(UTC).date()
    async with call.pool.acquire() as conn:
        pipeline = await _pipeline(conn, me.org_id, call.request.query.get("pipeline_id"))
        cte, scope = _scope(call, pipeline["id"])
        base = list(scope.values)  # each query adds its own parameters after the scope's
        params = SqlParams(*base)
        org, pid = params.add(me.org_id), params.add(pipeline["id"])
        stages = await conn.fetch(
            cte + f"""
            , stays AS (
                -- later_max: the furthest stage (by position, lost ones left out) the deal reached after this stay
                SELECT h.deal_id, h.stage_id, h.entered_at, h.left_at, s.position,
                       max(CASE WHEN s.type <> 'lost' THEN s.position END) OVER (
                           PARTITION BY h.deal_id ORDER BY h.entered_at, h.left_at NULLS LAST, h.id
                           ROWS BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING) AS later_max
                FROM deal_stage_history h JOIN scope sc ON sc.id = h.deal_id
                JOIN pipeline_stages s ON s.org_id = h.org_id AND s.id = h.stage_id
                WHERE h.org_id = {org}
            ), flow AS (
                SELECT stage_id, count(DISTINCT deal_id) AS entered,
                       avg(extract(epoch FROM left_at - entered_at) / 86400.0)
                           FILTER (WHERE left_at IS NOT NULL) AS avg_days,
                       count(DISTINCT deal_id) FILTER (WHERE later_max > position) AS advanced
                FROM stays GROUP BY stage_id
            )
            SELECT s.id, s.name, s.type, s.position, s.probability,
                   count(sc.id) AS deals, coalesce(sum(sc.value), 0)::float8 AS value,
                   coalesce(f.entered, 0) AS entered, f.avg_days, coalesce(f.advanced, 0) AS advanced
            FROM pipeline_stages s
            LEFT JOIN scope sc ON sc.stage_id = s.id
            LEFT JOIN flow f ON f.stage_id = s.id
            WHERE s.org_id = {org} AND s.pipeline_id = {pid}
            GROUP BY s.id, f.entered, f.avg_days, f.advanced ORDER BY s.position
            """, *params.values)
        quarters = quarter_bounds(today)
        q_params = SqlParams(*base)
        bounds = [q_params.add(quarters[0][1]), q_params.add(quarters[1][1]), q_params.add(quarters[1][2])]
        rows = await conn.fetch(
            cte + f"""
            , f AS MATERIALIZED (
                SELECT sc.value, sc.probability, sc.type, sc.expected_close, sc.closed_at,
                       -- the latest prediction, looked up only for the deals the forecast counts
                       CASE WHEN sc.type = 'open' AND sc.expected_close >= {bounds[0]}::date
                                 AND sc.expected_close < {bounds[2]}::date
                            THEN (SELECT p.win_probability FROM predictions p
                                  WHERE p.org_id = sc.org_id AND p.deal_id = sc.id
                                  ORDER BY p.created_at DESC LIMIT 1) END AS predicted
                FROM scope sc
            )
            SELECT q.n, count(*) FILTER (WHERE open_in) AS open_deals,
                   coalesce(sum(value) FILTER (WHERE open_in), 0)::float8 AS open_value,
                   coalesce(sum(value * probability) FILTER (WHERE open_in), 0)::float8 AS by_stage,
                   coalesce(sum(value * predicted) FILTER (WHERE open_in), 0)::float8 AS by_model,
                   count(predicted) FILTER (WHERE open_in) AS predicted_deals,
                   coalesce(sum(value) FILTER (WHERE type = 'won' AND closed_at >= q.lo AND closed_at < q.hi),
                            0)::float8 AS won_value
            FROM (VALUES (0, {bounds[0]}::date, {bounds[1]}::date), (1, {bounds[1]}::date, {bounds[2]}::date))
                 AS q (n, lo, hi)
            LEFT JOIN LATERAL (  -- LEFT: a quarter row even with no deal at all
                SELECT f.*, (f.type = 'open' AND f.expected_close >= q.lo AND f.expected_close < q.hi) AS open_in FROM f
            ) x ON true
            GROUP BY q.n ORDER BY q.n
            """, *q_params.values)
        forecast = [{"period": label, "start": start, "end": end, "open_deals": row["open_deals"],
                     "open_value": row["open_value"], "weighted_by_stage": row["by_stage"],
                     "weighted_by_model": row["by_model"], "predicted_deals": row["predicted_deals"],
                     "won_value": row["won_value"]} for (label, start, end), row in zip(quarters, rows, strict=True)]
        closed = await conn.fetch(
            cte + """
            SELECT type, lost_reason, count(*) AS deals, coalesce(sum(value), 0)::float8 AS value
            FROM scope WHERE type <> 'open' GROUP BY type, lost_reason ORDER BY type, count(*) DESC, lost_reason
            """, *base)
        groups = {}
        params = SqlParams(*base)
        org = params.add(me.org_id)
        for key, label_sql, join in (
            ("by_rep", "u.id, u.name", ""),
            ("by_team", "t.id, t.name", f"LEFT JOIN teams t ON t.org_id = {org} AND t.id = u.team_id"),
        ):
            groups[key] = await conn.fetch(
                cte + f"""
                SELECT {label_sql},
                       count(*) FILTER (WHERE sc.type = 'open') AS open_deals,
                       coalesce(sum(sc.value) FILTER (WHERE sc.type = 'open'), 0)::float8 AS open_value,
                       coalesce(sum(sc.value * sc.probability) FILTER (WHERE sc.type = 'open'), 0)::float8 AS weighted,
                       count(*) FILTER (WHERE sc.type = 'won') AS won,
                       count(*) FILTER (WHERE sc.type = 'lost') AS lost,
                       coalesce(sum(sc.value) FILTER (WHERE sc.type = 'won'), 0)::float8 AS won_value
                FROM scope sc LEFT JOIN users u ON u.org_id = {org} AND u.id = sc.owner_id {join}
                GROUP BY {label_sql} ORDER BY open_value DESC, 2
                """, *params.values)
        currencies = [r["c"] for r in await conn.fetch(
            cte + " SELECT DISTINCT btrim(currency) AS c FROM scope ORDER BY 1", *base)]

    won = sum(r["deals"] for r in closed if r["type"] == "won")
    lost = sum(r["deals"] for r in closed if r["type"] == "lost")
    out = PipelineAnalytics.model_validate({
        "pipeline_id": pipeline["id"], "pipeline": pipeline["name"], "as_of": today, "currencies": currencies,
        "stages": [{
            "stage_id": s["id"], "name": s["name"], "type": s["type"], "position": s["position"],
            "probability": s["probability"], "deals": s["deals"], "value": s["value"],
            "weighted_value": s["value"] * s["probability"], "entered": s["entered"],
            "avg_days_in_stage": float(s["avg_days"]) if s["avg_days"] is not None else None,
            "conversion_to_later": (s["advanced"] / s["entered"]) if s["type"] == "open" and s["entered"] else None,
        } for s in stages],
        "forecast": forecast,
        "win_loss": {
            "won": won, "lost": lost, "win_rate": _rate(won, lost),
            "won_value": sum(r["value"] for r in closed if r["type"] == "won"),
            "lost_value": sum(r["value"] for r in closed if r["type"] == "lost"),
            "lost_by_reason": [{"reason": r["lost_reason"], "deals": r["deals"], "value": r["value"]}
                               for r in closed if r["type"] == "lost"],
        },
        **{key: [{"id": r["id"], "name": r["name"], "open_deals": r["open_deals"], "open_value": r["open_value"],
                  "weighted_by_stage": r["weighted"], "won": r["won"], "lost": r["lost"],
                  "won_value": r["won_value"], "win_rate": _rate(r["won"], r["lost"])} for r in rows]
           for key, rows in groups.items()},
    })
    return Reply(out)


ENDPOINTS = (
    Endpoint("GET", "/api/v1/analytics/pipeline", pipeline_analytics,
             "Pipeline value by stage, quarterly forecast, velocity and win/loss", "analytics",
             response=PipelineAnalytics, resource="deals",
             query=(QueryParam("pipeline_id", {"type": "string", "format": "uuid"},
                               "The pipeline (GET /api/v1/pipelines); left out: the default one."),),
             description="Over the deals the caller may see (a rep: their own; a manager: their team's; an admin: "
                         "the organisation's). The forecast shows the stage-probability and the model-probability "
                         "weighting side by side for the current and the next quarter (by expected_close); "
                         "velocity comes from the stage history. Values in different currencies are summed as "
                         "they are (see currencies)."),
)
