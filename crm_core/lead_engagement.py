"""What calls told us about a lead, read from the database.

The contract with whoever writes calls and timeline entries:

* calls: completed calls of the lead (count, ``sum(duration_s)`` as talk time);
* sentiment: mean ``transcript_segments.sentiment`` of the customer's speech;
* buying signals / objections: ``activities`` of the lead with ``kind`` in
  ``call_signal`` / ``deal_signal`` and ``body.signal`` = ``buying_intent`` or
  ``objection`` (``body.count`` optional), plus ``body.keyword_hits`` /
  ``body.objection_hits`` on ``kind = 'call'`` entries.
"""

from __future__ import annotations

from typing import Any

import asyncpg

# The leads columns the scorer reads.
LEAD_COLUMNS = "id, org_id, title, company_size, industry, source, email, status"


async def lead_engagement(conn: asyncpg.Connection, lead_ids: list[Any]) -> dict[Any, dict[str, Any]]:
    """Engagement per lead id (see the module docstring for where each number comes from)."""
    engagement: dict[Any, dict[str, Any]] = {lid: {} for lid in lead_ids}
    for row in await conn.fetch(
        """
        SELECT lead_id, count(*) AS calls, coalesce(sum(duration_s), 0) AS talk_time_s
        FROM calls WHERE lead_id = any($1::uuid[]) AND status = 'completed' GROUP BY lead_id
        """,
        lead_ids,
    ):
        engagement[row["lead_id"]].update(calls=int(row["calls"]), talk_time_s=float(row["talk_time_s"]))
    for row in await conn.fetch(
        """
        SELECT c.lead_id, avg(s.sentiment) AS sentiment
        FROM transcript_segments s JOIN calls c ON c.id = s.call_id
        WHERE c.lead_id = any($1::uuid[]) AND s.party = 'customer' AND s.sentiment IS NOT NULL
        GROUP BY c.lead_id
        """,
        lead_ids,
    ):
        engagement[row["lead_id"]]["avg_sentiment"] = float(row["sentiment"])
    for row in await conn.fetch(
        f"""
        SELECT lead_id,
          sum(CASE
            WHEN kind IN ('call_signal', 'deal_signal') AND body->>'signal' = 'buying_intent'
              THEN {_count_sql("count", 1)}
            WHEN kind = 'call' THEN {_count_sql("keyword_hits", 0)} ELSE 0 END) AS intent,
          sum(CASE
            WHEN kind IN ('call_signal', 'deal_signal') AND body->>'signal' = 'objection'
              THEN {_count_sql("count", 1)}
            WHEN kind = 'call' THEN {_count_sql("objection_hits", 0)} ELSE 0 END) AS objections
        FROM activities
        WHERE lead_id = any($1::uuid[]) AND kind IN ('call', 'call_signal', 'deal_signal')
        GROUP BY lead_id
        """,
        lead_ids,
    ):
        engagement[row["lead_id"]].update(keyword_hits=max(0, int(row["intent"])),
                                          objection_hits=max(0, int(row["objections"])))
    return engagement


def _count_sql(key: str, default: int) -> str:
    # A hand-written body with "count": "lots" must not break the whole query.
    value = f"body->>'{key}'"
    return f"(CASE WHEN {value} ~ '^[0-9]{{1,6}}$' THEN ({value})::int ELSE {default} END)"
