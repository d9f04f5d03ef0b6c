"""An organisation's own gradient-boosted lead model: it learns a signal planted in generated
history, beats the organisation's ICP rules and the shipped model on held-out leads, is
versioned, and scores the organisation's leads with reasons."""

import math
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest

from crm_core.scoring.icp import icp_rules_of, score_icp
from crm_core.scoring.lead_features import profile_of, vector_of
from crm_core.scoring.lead_model_training import TrainingRefused, active_lead_model, train_org_lead_model
from crm_core.scoring.lead_scoring import lead_model
from crm_core.scoring.logistic_model import roc_auc
from crm_core.scoring.org_models import model_versions
from crm_core.scoring.rescoring import rescore_lead, score_in_context
from storage.database import create_pool

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "scripts"))
from train_lead_scoring import generate_leads  # noqa: E402

# The organisation's ICP says what most B2B sellers believe (founders, software, mid-size).
ICP = {"base": 10, "seniority": {"c_level": 30, "vp": 25, "director": 15},
       "industries": {"software": 25, "financial_services": 15},
       "company_size": [{"min": 50, "max": 1000, "points": 20}],
       "sources": {"referral": 15, "inbound_demo": 15}, "email": {"free": -5}}


def planted_probability(lead: dict) -> float:
    """This organisation sells to hospitals and factories of 500-50,000 people, and founders
    there do not buy (procurement does): the shipped model and the ICP both think otherwise."""
    p = profile_of(lead)
    z = -1.0
    z += 2.0 if p.industry in ("healthcare", "manufacturing") else 0.0
    z += 1.5 if p.company_size is not None and 500 <= p.company_size <= 50000 else 0.0
    z -= 1.5 if p.seniority == "c_level" else 0.0
    return 1 / (1 + math.exp(-z))


def planted_history(n: int, seed: int) -> tuple[list[dict], np.ndarray]:
    rng = np.random.default_rng(seed)
    leads = [{**lead, "engagement": None} for lead in generate_leads(n, seed=seed).leads]
    labels = np.asarray([int(rng.random() < planted_probability(lead)) for lead in leads])
    return leads, labels


async def _org(conn, icp=None) -> str:
    settings = {} if icp is None else {"icp": icp}
    return str(await conn.fetchval(
        "INSERT INTO organizations (name, slug, settings) VALUES ('o', $1, $2) RETURNING id",
        uuid.uuid4().hex, settings))


async def _insert(conn, org, leads, labels) -> None:
    # Ids from the leads' own numbers: training reads rows in id order, so each run splits alike.
    await conn.executemany(
        """INSERT INTO leads (id, org_id, title, company_size, industry, source, email, status)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)""",
        [(uuid.UUID(int=(uuid.UUID(org).int >> 64 << 64) | int(lead["last_name"])), org, lead["title"], lead["company_size"],
          lead["industry"], lead["source"], lead["email"], "converted" if y else "unqualified")
         for lead, y in zip(leads, labels)],
    )


@pytest.fixture
async def pool(migrated_database):
    pool = await create_pool(migrated_database)
    yield pool
    await pool.close()


async def test_the_org_model_learns_the_planted_signal_and_beats_icp_and_shipped(pool):
    async with pool.acquire() as conn:
        org = await _org(conn, ICP)
        leads, labels = planted_history(800, seed=31)
        await _insert(conn, org, leads, labels)
        result = await train_org_lead_model(conn, org)
        print("lead training metrics:", result.metrics)
        assert result.examples == 800 and result.activated
        assert result.incumbent == icp_rules_of(ICP).version  # the ICP was what scored leads before
        assert result.holdout_auc > result.icp_holdout_auc + 0.15
        assert result.holdout_auc > result.shipped_holdout_auc + 0.15
        assert result.version.startswith("lead-gbm-") and result.version.endswith("-v1")
        model = await active_lead_model(conn, org)
        assert model.version == result.version

    # On fresh leads from the same market, never seen in training:
    fresh, truth = planted_history(3000, seed=32)
    x = np.vstack([vector_of(profile_of(lead)) for lead in fresh])
    gbm_auc = roc_auc(truth, model.probability(x))
    icp_auc = roc_auc(truth, [score_icp(lead, icp_rules_of(ICP)).score for lead in fresh])
    shipped_auc = roc_auc(truth, lead_model().probability(x))
    print(f"fresh held-out AUC: gbm {gbm_auc:.3f}, icp {icp_auc:.3f}, shipped {shipped_auc:.3f}")
    assert gbm_auc > 0.65 and gbm_auc > icp_auc + 0.15 and gbm_auc > shipped_auc + 0.15

    async with pool.acquire() as conn:
        hospital = await conn.fetchval(
            """INSERT INTO leads (org_id, title, company_size, industry, source, email)
               VALUES ($1, 'Procurement Manager', 4000, 'Hospital & Health Care', 'website', 'p@h.org')
               RETURNING id""", org)
        founder = await conn.fetchval(
            """INSERT INTO leads (org_id, title, company_size, industry, source, email)
               VALUES ($1, 'Founder & CEO', 40, 'SaaS', 'referral', 'f@s.io') RETURNING id""", org)
        good = await rescore_lead(conn, org, str(hospital))
        bad = await rescore_lead(conn, org, str(founder))
        assert good.model_version == bad.model_version == result.version
        assert good.score > bad.score + 30
        assert good.grade in "AB" and bad.grade in "CDEF"
        effects = {f.factor: f.effect for f in good.factors}
        print("factors of the hospital lead:", effects)
        # the planted industry leads the reasons, for and against
        assert good.factors[0].factor == "industry" and effects["industry"] > 0.3
        assert {f.factor: f.effect for f in bad.factors}["industry"] < -0.1
        assert any(r.startswith("Industry: healthcare") for r in good.reasons)
        assert any("founder title" in r and r.startswith("Held back by") for r in bad.reasons), bad.reasons
        stored = await conn.fetchval("SELECT score_factors FROM leads WHERE id = $1", hospital)
        assert stored["model_version"] == result.version and stored["reasons"] == good.reasons
        # the API's path scores the same way
        row = dict(await conn.fetchrow("SELECT * FROM leads WHERE id = $1", hospital))
        assert (await score_in_context(conn, row)).score == good.score


async def test_too_little_history_is_refused_and_changes_nothing(pool):
    async with pool.acquire() as conn:
        org = await _org(conn)
        leads, _ = planted_history(300, seed=5)
        await _insert(conn, org, leads[:60], np.ones(60, dtype=int))
        await _insert(conn, org, leads[60:100], np.zeros(40, dtype=int))
        with pytest.raises(TrainingRefused, match="need at least 50 converted leads and 50 unqualified "
                                                  "leads to train, have 60 and 40"):
            await train_org_lead_model(conn, org)
        assert await model_versions(conn, org, "lead") == []
        assert (await active_lead_model(conn, org)).version == lead_model().version


async def test_versions_accumulate_and_the_active_flag_moves_only_for_a_better_model(pool):
    async with pool.acquire() as conn:
        org = await _org(conn)
        leads, labels = planted_history(1400, seed=41)
        # a small first history (100 converted, 100 unqualified), then all the rest
        small = np.concatenate([np.flatnonzero(labels == 1)[:100], np.flatnonzero(labels == 0)[:100]])
        rest = np.setdiff1d(np.arange(len(leads)), small)
        await _insert(conn, org, [leads[i] for i in small], labels[small])
        first = await train_org_lead_model(conn, org)
        assert first.activated and first.incumbent == lead_model().version

        same = await train_org_lead_model(conn, org)  # same data, same seed: same trees, no gain
        assert same.version != first.version and same.version.endswith("-v2")
        assert not same.activated and same.incumbent == first.version
        assert same.holdout_auc == pytest.approx(same.incumbent_holdout_auc)
        assert (await active_lead_model(conn, org)).version == first.version

        await _insert(conn, org, [leads[i] for i in rest], labels[rest])  # seven times the history
        more = await train_org_lead_model(conn, org)
        assert more.incumbent == first.version
        assert more.activated and more.holdout_auc > more.incumbent_holdout_auc
        versions = await model_versions(conn, org, "lead")
        assert [v.version for v in versions] == [more.version, same.version, first.version]
        assert [v.active for v in versions] == [True, False, False]
        assert versions[0].format == "boosted-trees-v1" and versions[0].metrics["examples"] == 1400
        assert (await active_lead_model(conn, org)).version == more.version
