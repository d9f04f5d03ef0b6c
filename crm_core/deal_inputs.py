"""Loading a deal's prediction inputs from the database, and storing the prediction.

``predict_deal`` takes plain data; this gathers it: the deal row, its
timeline (``activities`` with ``deal_id``), and one ``call`` entry per
completed call on the deal carrying the customer's mean sentiment (merged
into the call's own timeline entry when there is one).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from crm_core.deal_prediction import DealPrediction, predict_deal, prediction_row


async def deal_inputs(conn: asyncpg.Connection, org_id: Any, deal_id: Any
                      ) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    """``(deal, activities)`` for ``predict_deal``, or None when the deal does not exist."""
    deal = await conn.fetchrow("SELECT * FROM deals WHERE org_id = $1 AND id = $2", org_id, deal_id)
    if deal is None:
        return None
    rows = await conn.fetch(
        "SELECT kind, occurred_at, body, call_id FROM activities WHERE org_id = $1 AND deal_id = $2 "
        "ORDER BY occurred_at",
        org_id, deal_id,
    )
    activities = [{"kind": r["kind"], "occurred_at": r["occurred_at"], "body": dict(r["body"] or {}),
                   "call_id": r["call_id"]} for r in rows]
    by_call = {a["call_id"]: a for a in activities if a["call_id"] is not None and a["kind"] == "call"}
    calls = await conn.fetch(
        """
        SELECT c.id, coalesce(c.ended_at, c.started_at, c.created_at) AS at,
               avg(s.sentiment) FILTER (WHERE s.party = 'customer') AS sentiment
        FROM calls c LEFT JOIN transcript_segments s ON s.call_id = c.id
        WHERE c.org_id = $1 AND c.deal_id = $2 AND c.status = 'completed'
        GROUP BY c.id
        """,
        org_id, deal_id,
    )
    for call in calls:
        entry = by_call.get(call["id"])
        if entry is None:
            entry = {"kind": "call", "occurred_at": call["at"], "body": {}, "call_id": call["id"]}
            activities.append(entry)
        if call["sentiment"] is not None and "sentiment" not in entry["body"]:
            entry["body"]["sentiment"] = float(call["sentiment"])
    return dict(deal), activities


async def predict_and_store(conn: asyncpg.Connection, org_id: Any, deal_id: Any,
                            *, now: datetime | None = None) -> DealPrediction | None:
    """Predict the deal from the database and insert the ``predictions`` row; None: no such deal."""
    stored = await predict_and_store_row(conn, org_id, deal_id, now=now)
    return None if stored is None else stored[0]


async def predict_and_store_row(conn: asyncpg.Connection, org_id: Any, deal_id: Any,
                                *, now: datetime | None = None
                                ) -> tuple[DealPrediction, asyncpg.Record] | None:
    """``predict_and_store`` that also returns the stored ``predictions`` row (its id and time)."""
    inputs = await deal_inputs(conn, org_id, deal_id)
    if inputs is None:
        return None
    prediction = predict_deal(*inputs, now=now)
    row = prediction_row(prediction)
    stored = await conn.fetchrow(
        "INSERT INTO predictions (org_id, deal_id, model_version, win_probability, predicted_close, factors) "
        "VALUES ($1, $2, $3, $4, $5, $6) RETURNING *",
        row["org_id"], row["deal_id"], row["model_version"], row["win_probability"],
        row["predicted_close"], row["factors"],
    )
    return prediction, stored
