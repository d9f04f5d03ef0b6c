"""Loading a deal's prediction inputs from the database, and storing the prediction.

``predict_deal`` takes plain data; this gathers it: the deal row, its
timeline (``activities`` with ``deal_id``), and one ``call`` entry per
completed call on the deal carrying the customer's mean sentiment (merged
into the call's own timeline entry when there is one). Predictions use the
organisation's active trained deal model when it has one, else the shipped one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from crm_core.scoring.deal_features import FEATURES
from crm_core.scoring.deal_prediction import DealPrediction, deal_model, predict_deal, prediction_row
from crm_core.scoring.org_models import active_model
from crm_core.scoring.model import ScoringModel


async def deal_inputs(conn: asyncpg.Connection, org_id: Any, deal_id: Any
                      ) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    """``(deal, activities)`` for ``predict_deal``, or None when the deal does not exist."""
    # the stage's type and probability, not its name, say where the deal stands (deal_features)
    deal = await conn.fetchrow(
        "SELECT d.*, s.type AS stage_type, s.probability AS stage_probability FROM deals d "
        "JOIN pipeline_stages s ON s.org_id = d.org_id AND s.id = d.stage_id WHERE d.org_id = $1 AND d.id = $2",
        org_id, deal_id)
    if deal is None:
        return None
    return dict(deal), (await deal_timelines(conn, org_id, [deal["id"]]))[deal["id"]]


async def deal_timelines(conn: asyncpg.Connection, org_id: Any, deal_ids: list[Any]
                         ) -> dict[Any, list[dict[str, Any]]]:
    """Each deal's timeline (keys: the ids as asyncpg returns them), for one deal or a batch
    (training on an organisation's closed deals reads them the same way)."""
    timelines: dict[Any, list[dict[str, Any]]] = {d: [] for d in deal_ids}
    rows = await conn.fetch(
        "SELECT deal_id, kind, occurred_at, body, call_id FROM activities "
        "WHERE org_id = $1 AND deal_id = ANY($2::uuid[]) ORDER BY occurred_at",
        org_id, deal_ids,
    )
    by_call: dict[tuple[Any, Any], dict[str, Any]] = {}
    for r in rows:
        entry = {"kind": r["kind"], "occurred_at": r["occurred_at"], "body": dict(r["body"] or {}),
                 "call_id": r["call_id"]}
        timelines.setdefault(r["deal_id"], []).append(entry)
        if r["call_id"] is not None and r["kind"] == "call":
            by_call[(r["deal_id"], r["call_id"])] = entry
    calls = await conn.fetch(
        """
        SELECT c.id, c.deal_id, coalesce(c.ended_at, c.started_at, c.created_at) AS at,
               avg(s.sentiment) FILTER (WHERE s.party = 'customer') AS sentiment
        FROM calls c LEFT JOIN transcript_segments s ON s.call_id = c.id
        WHERE c.org_id = $1 AND c.deal_id = ANY($2::uuid[]) AND c.status = 'completed'
        GROUP BY c.id
        """,
        org_id, deal_ids,
    )
    for call in calls:
        entry = by_call.get((call["deal_id"], call["id"]))
        if entry is None:
            entry = {"kind": "call", "occurred_at": call["at"], "body": {}, "call_id": call["id"]}
            timelines.setdefault(call["deal_id"], []).append(entry)
        if call["sentiment"] is not None and "sentiment" not in entry["body"]:
            entry["body"]["sentiment"] = float(call["sentiment"])
    return timelines


async def predict_and_store(conn: asyncpg.Connection, org_id: Any, deal_id: Any,
                            *, now: datetime | None = None) -> DealPrediction | None:
    """Predict the deal from the database and insert the ``predictions`` row; None: no such deal."""
    stored = await predict_and_store_row(conn, org_id, deal_id, now=now)
    return None if stored is None else stored[0]


async def active_deal_model(conn: asyncpg.Connection, org_id: str) -> ScoringModel:
    """The organisation's active trained deal model, else the shipped one."""
    return await active_model(conn, org_id, "deal", FEATURES) or deal_model()


async def predict_and_store_row(conn: asyncpg.Connection, org_id: Any, deal_id: Any,
                                *, now: datetime | None = None
                                ) -> tuple[DealPrediction, asyncpg.Record] | None:
    """``predict_and_store`` that also returns the stored ``predictions`` row (its id and time)."""
    inputs = await deal_inputs(conn, org_id, deal_id)
    if inputs is None:
        return None
    model = await active_deal_model(conn, org_id)
    prediction = predict_deal(*inputs, now=now, model=model)
    row = prediction_row(prediction)
    stored = await conn.fetchrow(
        "INSERT INTO predictions (org_id, deal_id, model_version, win_probability, predicted_close, factors) "
        "VALUES ($1, $2, $3, $4, $5, $6) RETURNING *",
        row["org_id"], row["deal_id"], row["model_version"], row["win_probability"],
        row["predicted_close"], row["factors"],
    )
    return prediction, stored
