"""What the organization's calls say about a lead, in the shape lead scoring reads
(``crm_core.scoring.lead_features.engagement_of``): calls, talk time, customer sentiment,
buying-signal and objection counts.

Where each number comes from (one contract for the API, the re-scoring job
and per-organisation training):

* calls / talk time: the lead's answered calls (``answered_at`` set), ``sum(duration_s)``;
* sentiment: mean ``transcript_segments.sentiment`` of the customer's speech;
* buying signals / objections: timeline entries of the lead — one per
  ``buying_signal`` / ``objection`` activity; ``call_signal`` / ``deal_signal``
  entries with ``body.signal`` = ``buying_intent`` | ``objection`` (optional
  ``body.count``); and the ``body.keyword_hits`` / ``body.objection_hits``
  counts on ``call`` / ``call.completed`` entries (the call summary's).
"""

from __future__ import annotations

from typing import Any

import asyncpg

# The leads columns the scorer reads.
LEAD_COLUMNS = "id, org_id, title, company_size, industry, source, email, status"


async def lead_engagement(conn: asyncpg.Connection, org_id: str, lead_id: str) -> dict[str, Any]:
    """One lead's engagement (``engagement_by_lead`` for many at once)."""
    rows = await engagement_by_lead(conn, [lead_id], org_id=org_id)
    found = next(iter(rows.values()), {})
    return {"calls": 0, "talk_time_s": 0.0, "avg_sentiment": None, "keyword_hits": 0,
            "objection_hits": 0, **found}


def _count_sql(key: str, default: int) -> str:
    # A hand-written body with "count": "lots" must not break the whole query.
    value = f"body->>'{key}'"
    return f"(CASE WHEN {value} ~ '^[0-9]{{1,6}}$' THEN ({value})::int ELSE {default} END)"


async def engagement_by_lead(conn: asyncpg.Connection, lead_ids: list[Any], *,
                             org_id: Any) -> dict[Any, dict[str, Any]]:
    """Engagement per lead id (keys as given), for a batch of one organisation's leads (the
    organisation is required: without it the lookups cannot use the (org_id, lead_id) indexes)."""
    engagement: dict[Any, dict[str, Any]] = {lid: {} for lid in lead_ids}
    if not lead_ids:
        return engagement
    keys = {str(lid): lid for lid in lead_ids}
    args: list[Any] = [list(keys), org_id]
    for row in await conn.fetch(
        """
        SELECT lead_id::text AS lead_id, count(*) AS calls, coalesce(sum(duration_s), 0) AS talk_time_s
        FROM calls WHERE org_id = $2 AND lead_id = any($1::uuid[]) AND answered_at IS NOT NULL
        GROUP BY lead_id
        """,
        *args,
    ):
        engagement[keys[row["lead_id"]]].update(calls=int(row["calls"]),
                                                talk_time_s=float(row["talk_time_s"]))
    for row in await conn.fetch(
        """
        SELECT lead_id::text AS lead_id, avg(s.sentiment) AS sentiment
        FROM transcript_segments s JOIN calls c ON c.id = s.call_id
        WHERE c.org_id = $2 AND c.lead_id = any($1::uuid[]) AND s.party = 'customer'
              AND s.sentiment IS NOT NULL
        GROUP BY c.lead_id
        """,
        *args,
    ):
        engagement[keys[row["lead_id"]]]["avg_sentiment"] = float(row["sentiment"])
    for row in await conn.fetch(
        f"""
        SELECT lead_id::text AS lead_id,
          sum(CASE
            WHEN kind = 'buying_signal' THEN 1
            WHEN kind IN ('call_signal', 'deal_signal') AND body->>'signal' = 'buying_intent'
              THEN {_count_sql("count", 1)}
            WHEN kind IN ('call', 'call.completed') THEN {_count_sql("keyword_hits", 0)}
            ELSE 0 END) AS intent,
          sum(CASE
            WHEN kind = 'objection' THEN 1
            WHEN kind IN ('call_signal', 'deal_signal') AND body->>'signal' = 'objection'
              THEN {_count_sql("count", 1)}
            WHEN kind IN ('call', 'call.completed') THEN {_count_sql("objection_hits", 0)}
            ELSE 0 END) AS objections
        FROM activities
        WHERE org_id = $2 AND lead_id = any($1::uuid[])
          AND kind IN ('buying_signal', 'objection', 'call', 'call.completed', 'call_signal', 'deal_signal')
        GROUP BY lead_id
        """,
        *args,
    ):
        engagement[keys[row["lead_id"]]].update(keyword_hits=max(0, int(row["intent"])),
                                                objection_hits=max(0, int(row["objections"])))
    return engagement
