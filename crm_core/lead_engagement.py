"""What the organization's calls say about a lead, in the shape lead scoring reads
(``crm_core.lead_features.engagement_of``): calls, talk time, customer sentiment,
buying-signal and objection counts."""

from __future__ import annotations

from typing import Any

import asyncpg


async def lead_engagement(conn: asyncpg.Connection, org_id: str, lead_id: str) -> dict[str, Any]:
    row = await conn.fetchrow(
        """
        SELECT count(*) AS calls, coalesce(sum(c.duration_s), 0) AS talk_time_s,
               (SELECT avg(s.sentiment) FROM transcript_segments s JOIN calls sc ON sc.id = s.call_id
                WHERE sc.org_id = $1 AND sc.lead_id = $2 AND s.party = 'customer'
                  AND s.sentiment IS NOT NULL) AS avg_sentiment,
               (SELECT count(*) FROM activities a WHERE a.org_id = $1 AND a.lead_id = $2
                  AND a.kind = 'buying_signal') AS keyword_hits,
               (SELECT count(*) FROM activities a WHERE a.org_id = $1 AND a.lead_id = $2
                  AND a.kind = 'objection') AS objection_hits
        FROM calls c
        WHERE c.org_id = $1 AND c.lead_id = $2 AND c.answered_at IS NOT NULL
        """,
        org_id, lead_id,
    )
    return {
        "calls": int(row["calls"]),
        "talk_time_s": float(row["talk_time_s"]),
        "avg_sentiment": None if row["avg_sentiment"] is None else float(row["avg_sentiment"]),
        "keyword_hits": int(row["keyword_hits"]),
        "objection_hits": int(row["objection_hits"]),
    }
