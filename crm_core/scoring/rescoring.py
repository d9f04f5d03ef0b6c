"""Re-scoring leads whose inputs changed, as one job across all nodes.

A lead needs a (new) score when it has none, when its row changed after it
was scored (``updated_at > scored_at``), or when one of its calls or timeline
entries changed after that (a call ended, a signal was heard). So nothing
has to remember "dirty" leads: the job asks the database, and a call.ended
event re-scores its lead simply by the call row's ``updated_at`` moving.

Each run scores at most ``batch_size`` leads, oldest score first, and stamps
them with the database time taken *before* it read their inputs: a change
that lands while the run is working is newer than that stamp and is picked
up by the next run. A changed grade is announced as ``crm.lead.scored``
through the outbox (so webhooks and the bus hear it) and audited. ``LeadRescoringJob.run`` keeps one runner across nodes
via ``storage.leases.run_singleton``. Each organisation's leads are scored
with its active trained model when it has one (``crm_core.scoring.lead_model_training``),
else with its configured ideal customer profile (``crm_core.scoring.icp``).
Engagement comes from ``crm_core.scoring.engagement``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import redis.asyncio as aioredis

from crm_core.changes import ChangeSet
from crm_core.scoring.engagement import LEAD_COLUMNS, engagement_by_lead, lead_engagement
from crm_core.scoring.icp import IcpConfigError, icp_rules_of, score_icp
from crm_core.scoring.lead_features import LeadInputError
from crm_core.scoring.lead_model_training import active_lead_model
from crm_core.scoring.lead_scoring import LeadScore, lead_model, lead_score_columns, score_lead
from storage.leases import run_singleton

log = logging.getLogger(__name__)

JOB_NAME = "lead-rescoring"


@dataclass(frozen=True, slots=True)
class RescoringOptions:
    batch_size: int = 200
    every_s: float = 30.0
    lease_ttl_s: float = 60.0


@dataclass(frozen=True, slots=True)
class RescoreRun:
    scored: int
    unreadable: int


async def _write_score(conn: asyncpg.Connection, org_id: Any, lead_id: Any, result: LeadScore,
                       at: datetime) -> None:
    cols = lead_score_columns(result, scored_at=at)
    await conn.execute(
        "UPDATE leads SET ai_score = $2, grade = $3, score_factors = $4, scored_at = $5"
        " WHERE id = $1 AND org_id = $6",
        lead_id, cols["ai_score"], cols["grade"], cols["score_factors"], cols["scored_at"], org_id,
    )


LeadScorer = Callable[[dict[str, Any]], LeadScore]


async def lead_scorer_for_org(conn: asyncpg.Connection, org_id: Any) -> LeadScorer:
    """How this organisation's leads are scored: its active trained model when it has one;
    else its rule-based ideal customer profile (``settings.icp``) when it configured one;
    else the shipped model. A broken ICP config is logged and the shipped model used."""
    model = await active_lead_model(conn, org_id)
    if model.version == lead_model().version:
        config = await conn.fetchval("SELECT settings->'icp' FROM organizations WHERE id = $1", org_id)
        if isinstance(config, str):  # a pool without the jsonb codec
            config = json.loads(config)
        if config is not None:
            try:
                rules = icp_rules_of(config)
            except IcpConfigError as exc:
                log.warning("organisation %s: ignoring settings.icp (%s); using the shipped model", org_id, exc)
            else:
                return lambda lead: score_icp(lead, rules)
    return lambda lead: score_lead(lead, model)


async def score_in_context(conn: asyncpg.Connection, lead: dict[str, Any]) -> LeadScore:
    """Score a leads row (dict with ``id`` and ``org_id``) with its calls' engagement, as its
    organisation scores (``lead_scorer_for_org``); writes nothing. For the API's lead routes."""
    engagement = await lead_engagement(conn, lead["org_id"], lead["id"]) if lead.get("id") else {}
    scorer = await lead_scorer_for_org(conn, lead["org_id"])
    return scorer({**lead, "engagement": engagement})


async def rescore_lead(conn: asyncpg.Connection, org_id: str, lead_id: str) -> LeadScore | None:
    """Score one lead now from its row and its engagement, and store it (None: no such lead)."""
    at = await conn.fetchval("SELECT now()")
    row = await conn.fetchrow(f"SELECT {LEAD_COLUMNS} FROM leads WHERE org_id = $1 AND id = $2",
                              org_id, lead_id)
    if row is None:
        return None
    result = await score_in_context(conn, dict(row))
    await _write_score(conn, org_id, row["id"], result, at)
    return result


async def rescore_changed_leads(pool: asyncpg.Pool, *, batch_size: int = 200) -> RescoreRun:
    """Score up to ``batch_size`` leads whose inputs changed since they were last scored."""
    async with pool.acquire() as conn:
        snapshot = await conn.fetchval("SELECT now()")
        leads = await conn.fetch(
            f"""
            SELECT {LEAD_COLUMNS}, grade AS previous_grade FROM leads l
            WHERE l.status <> 'converted' AND (
                l.scored_at IS NULL OR l.updated_at > l.scored_at
                OR EXISTS (SELECT 1 FROM calls c
                           WHERE c.org_id = l.org_id AND c.lead_id = l.id AND c.updated_at > l.scored_at)
                OR EXISTS (SELECT 1 FROM activities a
                           WHERE a.org_id = l.org_id AND a.lead_id = l.id AND a.created_at > l.scored_at))
            ORDER BY l.scored_at NULLS FIRST, l.id
            LIMIT $1
            """,
            batch_size,
        )
        if not leads:
            return RescoreRun(0, 0)
        orgs = {r["org_id"] for r in leads}
        engagement: dict = {}
        for org in orgs:  # per organisation, so the (org_id, lead_id) indexes serve the lookups
            engagement.update(await engagement_by_lead(
                conn, [r["id"] for r in leads if r["org_id"] == org], org_id=org))
        scorers = {org: await lead_scorer_for_org(conn, org) for org in orgs}
        scored = unreadable = 0
        async with conn.transaction():
            for row in leads:
                try:
                    result = scorers[row["org_id"]]({**dict(row), "engagement": engagement[row["id"]]})
                except LeadInputError as exc:
                    # Stamp it anyway, so one bad row is not retried every run.
                    log.error("lead %s cannot be scored: %s", row["id"], exc)
                    await conn.execute("UPDATE leads SET scored_at = $2 WHERE id = $1 AND org_id = $3",
                                       row["id"], snapshot, row["org_id"])
                    unreadable += 1
                    continue
                await _write_score(conn, row["org_id"], row["id"], result, snapshot)
                if result.grade != row["previous_grade"]:
                    # Subscribers (webhooks, the rep's screen) hear about grade changes only;
                    # the API's outbox relay publishes the event, the audit log keeps the change.
                    changes = ChangeSet(org_id=str(row["org_id"]), actor_id=None, actor_kind="system")
                    await changes.record(
                        conn, action="lead.rescore", resource_type="lead", resource_id=str(row["id"]),
                        before={"grade": row["previous_grade"]},
                        after={"ai_score": result.score, "grade": result.grade},
                        event_type="crm.lead.scored",
                        payload={"lead_id": str(row["id"]), "score": result.score, "grade": result.grade,
                                 "previous_grade": row["previous_grade"], "reasons": result.reasons,
                                 "model_version": result.model_version},
                    )
                scored += 1
    if scored or unreadable:
        log.info("re-scored %d leads (%d unreadable)", scored, unreadable)
    return RescoreRun(scored, unreadable)


class LeadRescoringJob:
    """Run on every node; the lease makes exactly one of them do the work at a time."""

    def __init__(self, pool: asyncpg.Pool, redis: aioredis.Redis,
                 options: RescoringOptions | None = None) -> None:
        self._pool = pool
        self._redis = redis
        self.options = options or RescoringOptions()
        self.runs = 0

    async def run_once(self) -> RescoreRun:
        self.runs += 1
        # Drain a backlog within one lease turn, but never past a few batches.
        total = RescoreRun(0, 0)
        for _ in range(5):
            run = await rescore_changed_leads(self._pool, batch_size=self.options.batch_size)
            total = RescoreRun(total.scored + run.scored, total.unreadable + run.unreadable)
            if run.scored + run.unreadable < self.options.batch_size:
                break
        return total

    async def run(self, stop: asyncio.Event) -> None:
        async def job() -> None:
            await self.run_once()

        await run_singleton(self._redis, JOB_NAME, job, every_s=self.options.every_s,
                            ttl_s=self.options.lease_ttl_s, stop=stop)
