"""An organisation's own gradient-boosted deal model: calibrated on held-out generated deals,
learns a signal planted in its closed deals, and then predicts its open deals."""

import math
import sys
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from crm_core.scoring import deal_features
from crm_core.scoring.boosted_training import calibration_error, fit_boosted
from crm_core.scoring.deal_inputs import predict_and_store_row
from crm_core.scoring.deal_model_training import (
    TrainingRefused,
    active_deal_model,
    closing_snapshot,
    train_org_deal_model,
)
from crm_core.scoring.deal_prediction import deal_model
from crm_core.scoring.logistic_model import roc_auc
from crm_core.scoring.org_models import model_versions
from storage.database import create_pool

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "scripts"))
from train_deal_prediction import NOW, feature_matrix, generate_deals  # noqa: E402


def test_the_trained_deal_model_is_calibrated_on_held_out_deals():
    train, held_out = generate_deals(3000, seed=21), generate_deals(5000, seed=1021)
    model = fit_boosted(feature_matrix(train), train.labels, deal_features.FEATURES, version="cal", seed=0)
    p = model.probability(feature_matrix(held_out))
    y = held_out.labels
    ece = calibration_error(y, p)
    auc, oracle = roc_auc(y, p), roc_auc(y, held_out.true_probability)
    bins = [(float(y[c].mean()), float(p[c].mean())) for c in np.array_split(np.argsort(p), 10)]
    print(f"deal GBM held-out: AUC {auc:.3f} (oracle {oracle:.3f}), ECE {ece:.3f}, "
          f"reliability {[(round(o, 2), round(q, 2)) for o, q in bins]}")
    assert ece < 0.035
    assert all(abs(observed - predicted) < 0.06 for observed, predicted in bins)
    assert [q for _, q in bins] == sorted(q for _, q in bins)
    assert bins[0][0] < 0.15 and bins[-1][0] > 0.75
    assert auc > oracle - 0.03


def _closed(deal: dict, acts: list[dict], won: bool) -> tuple[dict, list[dict]]:
    """The generator's open deal (as of NOW), closed at NOW through the API's stage change."""
    stage = deal["stage"]
    closed = {**deal, "stage": "closed_won" if won else "closed_lost", "closed_at": NOW, "updated_at": NOW}
    closing = {"kind": "stage_changed", "occurred_at": NOW.isoformat(),
               "body": {"from": stage, "to": closed["stage"]}}
    later = {"kind": "call", "occurred_at": (NOW + timedelta(days=3)).isoformat(),
             "body": {"sentiment": -1.0, "competitor_hits": 5}}  # after the close: must not count
    return closed, [*acts, closing, later]


def test_a_closed_deal_is_read_as_it_looked_when_it_closed():
    gen = generate_deals(40, seed=3)
    for deal, acts in zip(gen.deals, gen.activities):
        closed, timeline = _closed(deal, acts, won=True)
        snap = closing_snapshot(closed, timeline)
        assert snap.won and snap.as_of == NOW and snap.deal["stage"] == deal["stage"]
        got = deal_features.vector_of(deal_features.profile_of(snap.deal, snap.activities, snap.as_of))
        want = deal_features.vector_of(deal_features.profile_of(deal, acts, NOW))
        np.testing.assert_allclose(got, want)
    # without a stage history: the cautious earliest stage, the clock at closed_at
    snap = closing_snapshot({"stage": "lost", "closed_at": NOW, "value": 5}, [])
    assert (snap.won, snap.deal["stage"], snap.as_of) == (False, "qualification", NOW)


def planted_log_odds(p: deal_features.DealProfile) -> float:
    """An enterprise seller: big deals win (the shipped model expects the opposite), a budget
    talk is decisive, and the stage hardly matters."""
    z = -0.4 + 1.6 * (math.log10(p.value + 1) - 4.1)
    z += 1.5 if p.budget_hits else -0.3
    return z


async def _insert_closed_deals(conn, org: str, n: int, seed: int) -> tuple[int, int]:
    gen = generate_deals(n, seed=seed)
    rng = np.random.default_rng(seed)
    deals, activities = [], []
    high = uuid.UUID(org).int >> 64 << 64
    for i, (deal, acts) in enumerate(zip(gen.deals, gen.activities)):
        z = planted_log_odds(deal_features.profile_of(deal, acts, NOW))
        won = rng.random() < 1 / (1 + math.exp(-z))
        closed, timeline = _closed(deal, acts, won)
        deal_id = uuid.UUID(int=high | i)
        deals.append((deal_id, org, closed["name"], closed["value"], closed["stage"],
                      datetime.fromisoformat(closed["created_at"]), NOW))
        activities += [(org, a["kind"], deal_id, a["body"], datetime.fromisoformat(a["occurred_at"]))
                       for a in timeline]
    await conn.executemany(
        "INSERT INTO deals (id, org_id, name, value, stage, created_at, closed_at, updated_at) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $7)", deals)
    await conn.executemany(
        "INSERT INTO activities (org_id, kind, subject_type, subject_id, deal_id, body, occurred_at) "
        "VALUES ($1, $2, 'deal', $3, $3, $4, $5)", activities)
    won = sum(1 for d in deals if d[4] == "closed_won")
    return won, len(deals) - won


@pytest.fixture
async def pool(migrated_database):
    pool = await create_pool(migrated_database)
    yield pool
    await pool.close()


async def test_an_org_deal_model_learns_the_planted_signal_and_predicts_open_deals(pool):
    async with pool.acquire() as conn:
        org = str(await conn.fetchval(
            "INSERT INTO organizations (name, slug) VALUES ('d', $1) RETURNING id", uuid.uuid4().hex))
        await _insert_closed_deals(conn, org, 700, seed=51)
        result = await train_org_deal_model(conn, org)
        print("deal training metrics:", result.metrics)
        assert result.examples == 700 and result.activated
        assert result.holdout_auc > result.shipped_holdout_auc + 0.15
        assert result.metrics["holdout_ece"] < 0.12
        assert (await active_deal_model(conn, org)).version == result.version

        big = await conn.fetchval(
            "INSERT INTO deals (org_id, name, value, stage, created_at) "
            "VALUES ($1, 'Hospital group', 900000, 'discovery', $2) RETURNING id", org, NOW - timedelta(days=20))
        small = await conn.fetchval(
            "INSERT INTO deals (org_id, name, value, stage, created_at) "
            "VALUES ($1, 'Corner shop', 900, 'negotiation', $2) RETURNING id", org, NOW - timedelta(days=20))
        await conn.execute(
            "INSERT INTO activities (org_id, kind, subject_type, subject_id, deal_id, body, occurred_at) "
            "VALUES ($1, 'call', 'deal', $2, $2, $3, $4)", org, big, {"sentiment": 0.2, "budget_hits": 1},
            NOW - timedelta(days=2))
        good, row = await predict_and_store_row(conn, org, big, now=NOW)
        bad, _ = await predict_and_store_row(conn, org, small, now=NOW)
        assert good.model_version == bad.model_version == row["model_version"] == result.version
        assert good.probability > 0.6 and bad.probability < 0.3
        assert good.reasons and any(r.startswith("Deal value") or r == "Budget discussed" for r in good.reasons[:2])
        assert any(r.startswith("Held back by: deal value") for r in bad.reasons)
        # the close date and risk rules are the shipped ones
        assert good.predicted_close > NOW.date() and isinstance(good.risk_flags, list)

        other = str(await conn.fetchval(
            "INSERT INTO organizations (name, slug) VALUES ('e', $1) RETURNING id", uuid.uuid4().hex))
        assert (await active_deal_model(conn, other)).version == deal_model().version


async def test_too_few_closed_deals_are_refused(pool):
    async with pool.acquire() as conn:
        org = str(await conn.fetchval(
            "INSERT INTO organizations (name, slug) VALUES ('f', $1) RETURNING id", uuid.uuid4().hex))
        won, lost = await _insert_closed_deals(conn, org, 60, seed=8)
        with pytest.raises(TrainingRefused, match=f"need at least 50 won deals and 50 lost deals to train, "
                                                  f"have {won} and {lost}"):
            await train_org_deal_model(conn, org)
        assert await model_versions(conn, org, "deal") == []
