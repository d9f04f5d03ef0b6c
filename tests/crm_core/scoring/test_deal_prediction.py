import sys
import uuid
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from crm_core.scoring.deal_features import FEATURES
from crm_core.scoring.deal_prediction import DealInputError, deal_model, predict_deal, prediction_row
from crm_core.scoring.logistic_model import fit_logistic, roc_auc
from storage.database import connect

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "scripts"))
from train_deal_prediction import calibration_error, feature_matrix, generate_deals  # noqa: E402

NOW = datetime(2026, 11, 20, 12, tzinfo=timezone.utc)


def _days_ago(d: float) -> str:
    return (NOW - timedelta(days=d)).isoformat()


def _call(days_ago: float, sentiment: float, **hits) -> dict:
    return {"kind": "call", "occurred_at": _days_ago(days_ago), "body": {"sentiment": sentiment, **hits}}


HEALTHY = (
    {"id": str(uuid.uuid4()), "org_id": str(uuid.uuid4()), "stage": "negotiation", "value": 20000,
     "created_at": _days_ago(40)},
    [{"kind": "stage_change", "occurred_at": _days_ago(5), "body": {"to": "negotiation"}},
     _call(20, 0.1), _call(10, 0.4, budget_hits=1), _call(1, 0.7)],
)
RISKY = (
    {"id": str(uuid.uuid4()), "org_id": str(uuid.uuid4()), "stage": "discovery", "value": 400000,
     "created_at": _days_ago(90), "expected_close": (NOW - timedelta(days=3)).date()},
    [{"kind": "stage_change", "occurred_at": _days_ago(60), "body": {"to": "discovery"}},
     _call(58, 0.5), _call(45, -0.4, objection_hits=2),
     {"kind": "deal_signal", "occurred_at": _days_ago(44), "body": {"signal": "competitor"}}],
)


def test_a_healthy_late_stage_deal_beats_a_stalled_one_and_the_flags_say_why():
    good, bad = predict_deal(*HEALTHY, now=NOW), predict_deal(*RISKY, now=NOW)
    assert good.probability > 0.6 > 0.2 > bad.probability
    assert good.risk_flags == []
    assert {"stalled_in_stage", "no_recent_activity", "negative_sentiment", "competitor_mentioned",
            "objections_raised", "past_expected_close"} <= set(bad.risk_flags)
    assert good.predicted_close < bad.predicted_close
    assert good.predicted_close > NOW.date()
    assert any("negotiation" in r for r in good.reasons)
    assert any(r.startswith("Held back by") for r in bad.reasons)
    assert good.model_version == deal_model().version


def test_closed_deals_are_certain():
    won = predict_deal({"stage": "Closed Won", "value": 10}, [], now=NOW)
    lost = predict_deal({"stage": "closed_lost"}, [], now=NOW)
    assert (won.probability, lost.probability) == (1.0, 0.0)


@pytest.mark.parametrize("deal, acts", [
    ({"stage": 3}, []),
    ({"stage": "demo", "value": "lots"}, []),
    ({"stage": "demo", "value": -1}, []),
    ({"stage": "demo"}, [{"kind": "call"}]),
    ({"stage": "demo"}, [{"kind": "call", "occurred_at": "yesterday"}]),
    ({"stage": "demo"}, [{"kind": "call", "occurred_at": _days_ago(1), "body": {"objection_hits": -2}}]),
    ({"stage": "demo"}, "not a list"),
])
def test_unreadable_input_is_a_clear_error(deal, acts):
    with pytest.raises(DealInputError):
        predict_deal(deal, acts, now=NOW)


def test_learned_model_is_discriminating_and_calibrated_on_held_out_deals():
    train, holdout = generate_deals(3000, seed=31), generate_deals(2000, seed=32)
    model = fit_logistic(feature_matrix(train), train.labels, FEATURES, version="t")
    p = model.probability(feature_matrix(holdout))
    assert roc_auc(holdout.labels, p) > 0.75
    assert roc_auc(holdout.labels, p) > roc_auc(holdout.labels, holdout.true_probability) - 0.03
    assert calibration_error(holdout.labels, p) < 0.05
    assert abs(float(p.mean()) - float(holdout.labels.mean())) < 0.03
    # A stage-only rule (the usual CRM default) does clearly worse.
    stage_rank = feature_matrix(holdout)[:, :4] @ np.arange(1, 5)
    assert roc_auc(holdout.labels, p) > roc_auc(holdout.labels, stage_rank) + 0.05


async def test_prediction_row_inserts_into_the_predictions_table(migrated_database):
    conn = await connect(migrated_database)
    try:
        org = await conn.fetchval("INSERT INTO organizations (name, slug) VALUES ('o', 'o') RETURNING id")
        deal_id = await conn.fetchval(
            "INSERT INTO deals (org_id, name, stage, value) VALUES ($1, 'd', 'negotiation', 20000) RETURNING id",
            org)
        deal = {**HEALTHY[0], "id": deal_id, "org_id": org}
        row = prediction_row(predict_deal(deal, HEALTHY[1], now=NOW))
        cols = list(row)
        await conn.execute(
            f"INSERT INTO predictions ({', '.join(cols)}) VALUES ({', '.join(f'${i + 1}' for i in range(len(cols)))})",
            *row.values())
        stored = await conn.fetchrow("SELECT * FROM predictions WHERE deal_id = $1", deal_id)
        assert stored["model_version"] == deal_model().version
        assert isinstance(stored["predicted_close"], date)
        assert stored["factors"][0]["factor"] and "effect" in stored["factors"][0]
    finally:
        await conn.close()
    with pytest.raises(DealInputError):
        prediction_row(predict_deal({"stage": "demo"}, [], now=NOW))


async def test_predict_and_store_reads_the_timeline_and_call_sentiment(migrated_database):
    from crm_core.scoring.deal_inputs import deal_inputs, predict_and_store

    conn = await connect(migrated_database)
    try:
        org = await conn.fetchval("INSERT INTO organizations (name, slug) VALUES ('o', 'o') RETURNING id")
        deal_id = await conn.fetchval(
            "INSERT INTO deals (org_id, name, stage, value, created_at) "
            "VALUES ($1, 'd', 'proposal', 5000, now() - interval '30 days') RETURNING id", org)
        await conn.execute(
            """INSERT INTO activities (org_id, kind, subject_type, subject_id, deal_id, body, occurred_at)
               VALUES ($1, 'stage_change', 'deal', $2, $2, '{"from": "demo", "to": "proposal"}',
                       now() - interval '40 days'),
                      ($1, 'call_signal', 'deal', $2, $2, '{"signal": "competitor"}', now() - interval '39 days')""",
            org, deal_id)
        call = await conn.fetchval(
            """INSERT INTO calls (org_id, carrier, direction, deal_id, status, ended_at)
               VALUES ($1, 'simulator', 'outbound', $2, 'completed', now() - interval '38 days') RETURNING id""",
            org, deal_id)
        await conn.execute(
            """INSERT INTO transcript_segments (org_id, call_id, segment_key, party, start_ms, end_ms, text, sentiment)
               VALUES ($1, $2, 'c:1', 'customer', 0, 10, 'hmm', -0.6), ($1, $2, 'r:1', 'rep', 0, 10, 'hi', 0.9)""",
            org, call)
        deal, activities = await deal_inputs(conn, org, deal_id)
        sentiments = [a["body"].get("sentiment") for a in activities if a["kind"] == "call"]
        assert sentiments == [pytest.approx(-0.6)]  # the customer's speech only
        pred = await predict_and_store(conn, org, deal_id)
        assert {"stalled_in_stage", "no_recent_activity", "competitor_mentioned",
                "negative_sentiment"} <= set(pred.risk_flags)
        stored = await conn.fetchrow("SELECT * FROM predictions WHERE deal_id = $1", deal_id)
        assert abs(stored["win_probability"] - pred.probability) < 1e-6
        assert await predict_and_store(conn, org, uuid.uuid4()) is None
    finally:
        await conn.close()
