"""Team analytics in SQL over ``call_metrics`` (one row per finished call).

Every query takes a ``Reach``: the organization, the period [start, end) and
the reps whose calls count (already narrowed to what the caller may see, by
crm_core/api/team_analytics.py). Figures per group of calls:

- calls; talk time (the rep's, summed) and talk share (the rep's talk over all
  talk, time-weighted: sum of rep talk / sum of both parties' talk);
- longest monologue: the mean over calls of the rep's longest turn, and the longest;
- interruptions and questions: the rep's, summed (and per call);
- patience: the mean gap before the rep answered, over every answered customer turn;
- customer sentiment: the mean over calls of the customer's mean segment score;
- prompts fired and followed, summed; follow rate = followed / fired, over the
  calls where following is known;
- checklist completion: items ticked / items, summed over calls;
- competitors and objections heard: the calls that heard any, and the mentions.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

FIGURES_SQL = """
    count(*)::integer AS calls,
    coalesce(sum(m.duration_ms), 0)::bigint AS duration_ms,
    coalesce(sum(m.rep_talk_ms), 0)::bigint AS talk_ms,
    coalesce(sum(m.customer_talk_ms), 0)::bigint AS customer_talk_ms,
    round(sum(m.rep_talk_ms)::numeric / nullif(sum(m.rep_talk_ms + m.customer_talk_ms), 0), 4)::float8
        AS talk_share,
    round(avg(m.rep_longest_monologue_ms))::bigint AS longest_monologue_ms,
    max(m.rep_longest_monologue_ms)::bigint AS max_longest_monologue_ms,
    coalesce(sum(m.rep_interruptions), 0)::bigint AS interruptions,
    coalesce(sum(m.rep_questions), 0)::bigint AS questions,
    round((sum(m.patience_ms * coalesce(m.patience_answers, 1)) FILTER (WHERE m.patience_ms IS NOT NULL)
           / nullif(sum(coalesce(m.patience_answers, 1)) FILTER (WHERE m.patience_ms IS NOT NULL), 0))::numeric,
          1)::float8 AS patience_ms,
    round(avg(m.customer_sentiment)::numeric, 4)::float8 AS customer_sentiment,
    coalesce(sum(m.prompts_fired), 0)::bigint AS prompts_fired,
    coalesce(sum(m.prompts_followed), 0)::bigint AS prompts_followed,
    round(sum(m.prompts_followed)::numeric
          / nullif(sum(m.prompts_fired) FILTER (WHERE m.prompts_followed IS NOT NULL), 0), 4)::float8
        AS follow_rate,
    round(sum(m.checklist_done)::numeric / nullif(sum(m.checklist_total), 0), 4)::float8
        AS checklist_completion,
    (count(*) FILTER (WHERE m.competitor_mentions > 0))::integer AS calls_with_competitors,
    coalesce(sum(m.competitor_mentions), 0)::bigint AS competitor_mentions,
    (count(*) FILTER (WHERE m.objection_mentions > 0))::integer AS calls_with_objections,
    coalesce(sum(m.objection_mentions), 0)::bigint AS objection_mentions
"""

# The calls behind each figure (the drill-down's ``metric``): its condition on a call's row.
DRILL_DOWN = {
    "calls": "TRUE",
    "talk_time": "m.rep_talk_ms > 0",
    "interruptions": "m.rep_interruptions > 0",
    "questions": "m.rep_questions > 0",
    "patience": "m.patience_ms IS NOT NULL",
    "negative_sentiment": "m.customer_sentiment < 0",
    "prompts_fired": "m.prompts_fired > 0",
    "prompts_followed": "m.prompts_followed > 0",
    "prompts_not_followed": "m.prompts_followed < m.prompts_fired",
    "checklist_missed": "m.checklist_done < m.checklist_total",
    "competitors": "m.competitor_mentions > 0",
    "objections": "m.objection_mentions > 0",
}


@dataclass(frozen=True, slots=True)
class Reach:
    """Whose calls count: the organization, the period, and the reps (None: the whole organization)."""

    org_id: str
    start: datetime
    end: datetime
    rep_ids: tuple[str, ...] | None


def _where(reach: Reach, args: list[Any]) -> str:
    args.extend([reach.org_id, reach.start, reach.end])
    # the tenant condition (m.org_id = $1) is spelled in each statement
    where = "m.started_at >= $2 AND m.started_at < $3"
    if reach.rep_ids is not None:
        args.append(list(reach.rep_ids))
        where += f" AND m.rep_id = ANY(${len(args)}::uuid[])"
    return where


async def figures_by_rep(conn: asyncpg.Connection, reach: Reach) -> list[asyncpg.Record]:
    args: list[Any] = []
    where = _where(reach, args)
    return await conn.fetch(
        f"""
        SELECT u.name, u.team_id::text AS team_id, g.*
        FROM (SELECT m.rep_id::text AS id, {FIGURES_SQL} FROM call_metrics m
              WHERE m.org_id = $1 AND {where} AND m.rep_id IS NOT NULL GROUP BY m.rep_id) g
        JOIN users u ON u.id = g.id::uuid AND u.org_id = $1
        ORDER BY u.name, u.id
        """,
        *args,
    )


async def figures_by_team(conn: asyncpg.Connection, reach: Reach) -> list[asyncpg.Record]:
    """One row per team of the reps (by the team each rep is in now); ``id`` None: reps in no team."""
    args: list[Any] = []
    where = _where(reach, args)
    return await conn.fetch(
        f"""
        SELECT u.team_id::text AS id, coalesce(t.name, 'No team') AS name, {FIGURES_SQL}
        FROM call_metrics m
        JOIN users u ON u.id = m.rep_id AND u.org_id = $1
        LEFT JOIN teams t ON t.id = u.team_id AND t.org_id = $1
        WHERE m.org_id = $1 AND {where}
        GROUP BY u.team_id, t.name
        ORDER BY t.name NULLS LAST
        """,
        *args,
    )


async def figures_total(conn: asyncpg.Connection, reach: Reach) -> asyncpg.Record:
    args: list[Any] = []
    where = _where(reach, args)
    return await conn.fetchrow(f"SELECT {FIGURES_SQL} FROM call_metrics m WHERE m.org_id = $1 AND {where}", *args)


async def weekly(conn: asyncpg.Connection, reach: Reach) -> list[asyncpg.Record]:
    """The figures per ISO week (Monday 00:00 UTC), weeks without calls left out."""
    args: list[Any] = []
    where = _where(reach, args)
    return await conn.fetch(
        f"""
        SELECT (date_trunc('week', m.started_at AT TIME ZONE 'UTC'))::date AS week, {FIGURES_SQL}
        FROM call_metrics m WHERE m.org_id = $1 AND {where}
        GROUP BY 1 ORDER BY 1
        """,
        *args,
    )


async def heard(
    conn: asyncpg.Connection, reach: Reach, column: str, limit: int = 10
) -> list[asyncpg.Record]:
    """The competitors (or objection categories) heard most, by calls that heard them."""
    assert column in ("competitors", "objections")
    args: list[Any] = []
    where = _where(reach, args)
    return await conn.fetch(
        f"""
        SELECT h.name, count(*)::integer AS calls
        FROM call_metrics m CROSS JOIN LATERAL unnest(m.{column}) AS h(name)
        WHERE m.org_id = $1 AND {where} AND m.{column} <> '{{}}'
        GROUP BY h.name ORDER BY calls DESC, h.name LIMIT {int(limit)}
        """,
        *args,
    )


async def calls_behind(
    conn: asyncpg.Connection,
    reach: Reach,
    *,
    metric: str,
    competitor: str | None,
    objection: str | None,
    limit: int,
    after: tuple[datetime, str] | None,
) -> list[asyncpg.Record]:
    """The calls behind a figure, newest first, keyset-paged by (started_at, call id)."""
    args: list[Any] = []
    where = _where(reach, args) + f" AND {DRILL_DOWN[metric]}"
    if competitor is not None:
        args.append(competitor)
        where += f" AND ${len(args)} = ANY(m.competitors)"
    if objection is not None:
        args.append(objection)
        where += f" AND ${len(args)} = ANY(m.objections)"
    if after is not None:
        args.extend(after)
        where += f" AND (m.started_at, m.call_id) < (${len(args) - 1}, ${len(args)}::uuid)"
    args.append(limit)
    return await conn.fetch(
        f"""
        SELECT m.*, m.call_id::text AS id, m.rep_id::text AS rep_id, u.name AS rep_name
        FROM call_metrics m
        LEFT JOIN users u ON u.id = m.rep_id AND u.org_id = $1
        WHERE m.org_id = $1 AND {where}
        ORDER BY m.started_at DESC, m.call_id DESC
        LIMIT ${len(args)}
        """,
        *args,
    )
