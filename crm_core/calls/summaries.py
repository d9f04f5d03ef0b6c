"""A finished call's summary lands in the CRM: on the call, on the lead/deal timeline, as deal signals.

The live path publishes ``insight.summary`` (coaching's ``CallSummary``,
JSON) before ``call.ended``. ``store_call_summary`` keeps it on the call,
adds a ``call.completed`` activity to the timeline of the call's deal (or
lead) whose body carries the counts deal prediction reads
(crm_core/scoring/deal_features.py: ``sentiment``, ``objection_hits``,
``competitor_hits``, ``budget_hits``), and emits ``crm.call.completed``
through the outbox, and materialises the call's row of team analytics
(``call_metrics``), all in one transaction. It runs at least once per
event, so a second delivery changes nothing.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from crm_core.changes import ChangeSet

# The view (storage/migrations/0020_call_metrics.sql) reads the figures out of the stored summary.
CALL_METRICS_COLUMNS = (
    "call_id, org_id, rep_id, started_at, duration_ms, rep_talk_ms, customer_talk_ms, "
    "rep_longest_monologue_ms, customer_longest_monologue_ms, rep_interruptions, "
    "customer_interruptions, rep_questions, customer_questions, patience_ms, patience_answers, "
    "rep_sentiment, customer_sentiment, prompts_fired, prompts_followed, checklist_total, "
    "checklist_done, competitors, competitor_mentions, objections, objection_mentions"
)


async def store_call_metrics(conn: asyncpg.Connection, org_id: str, call_id: str) -> None:
    """Materialise the summarised call's row of team analytics (once; a redelivery keeps it)."""
    await conn.execute(
        f"INSERT INTO call_metrics ({CALL_METRICS_COLUMNS}) SELECT {CALL_METRICS_COLUMNS} "
        "FROM call_metrics_from_summaries WHERE call_id = $1 AND org_id = $2 "
        "ON CONFLICT (call_id) DO NOTHING",
        call_id, org_id,
    )


def timeline_body(summary: dict[str, Any]) -> dict[str, Any]:
    """The activity body: what a rep reads on the timeline and what prediction counts."""
    counts = {str(k): int(v) for k, v in (summary.get("keyword_counts") or {}).items()}
    signals = dict(summary.get("signals") or {})
    customer_trend = (summary.get("sentiment_trend") or {}).get("customer") or []
    return {
        "summary": summary.get("text", ""),
        "key_points": list(summary.get("key_points") or []),
        "action_items": list(summary.get("action_items") or []),
        "next_steps": list(summary.get("next_steps") or []),
        "objections": list(summary.get("objections") or []),
        "competitors": list(summary.get("competitors") or []),
        "sentiment": float(customer_trend[-1][1]) if customer_trend else None,
        "objection_hits": sum(n for k, n in counts.items() if k.startswith("objection")),
        "competitor_hits": counts.get("competitor", 0),
        "budget_hits": counts.get("budget", 0),
        "duration_ms": int(summary.get("duration_ms") or 0),
        "signals": signals,
        "abnormal": bool(summary.get("abnormal")),
    }


async def store_call_summary(conn: asyncpg.Connection, org_id: str, call_id: str,
                             summary: dict[str, Any]) -> ChangeSet | None:
    """Store once; returns the change set to publish after commit, or None if already stored."""
    changes = ChangeSet(org_id=org_id, actor_id=None, actor_kind="system")
    async with conn.transaction():
        call = await conn.fetchrow(
            """
            UPDATE calls SET summary = $3, summarized_at = now()
            WHERE id = $1 AND org_id = $2 AND summary IS NULL
            RETURNING id::text, lead_id::text, deal_id::text, rep_id::text
            """,
            call_id, org_id, summary,
        )
        if call is None:
            return None  # unknown call, another tenant's, or already summarised
        await store_call_metrics(conn, org_id, call_id)
        body = timeline_body(summary)
        subject_type, subject_id = (
            ("deal", call["deal_id"]) if call["deal_id"] else
            ("lead", call["lead_id"]) if call["lead_id"] else ("call", call_id)
        )
        activity_id = await conn.fetchval(
            """
            INSERT INTO activities (org_id, kind, subject_type, subject_id, lead_id, deal_id,
                                    call_id, actor_id, body)
            VALUES ($1, 'call.completed', $2, $3, $4, $5, $6, $7, $8) RETURNING id::text
            """,
            org_id, subject_type, subject_id, call["lead_id"], call["deal_id"], call_id,
            call["rep_id"], body,
        )
        await changes.record(
            conn, action="call.summarized", resource_type="call", resource_id=call_id,
            after={"activity_id": activity_id}, event_type="crm.call.completed",
            payload={"call_id": call_id, "lead_id": call["lead_id"], "deal_id": call["deal_id"],
                     "rep_id": call["rep_id"], **body},
        )
    return changes
