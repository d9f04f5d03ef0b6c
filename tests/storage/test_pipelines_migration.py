"""An existing database with free-text deal stages migrates onto pipelines without losing a deal.

The database is built at the schema before pipelines (migration 0018), filled the way the old
API and raw imports left it (typos, ``won`` that never closed, ``closed_won``, an unknown stage,
a second free-text pipeline), then migrated forward.
"""

import uuid
from datetime import UTC, datetime, timedelta

import asyncpg

from storage.migrations import apply_migrations

T0 = datetime(2026, 3, 1, tzinfo=UTC)

# (free-text stage, pipeline text, closed_at) -> (stage after, type, closed?, migrated_from kept)
CASES = [
    ("qualification", "default", None, "qualification", "open", False, None),
    ("negotiaton", "default", None, "negotiation", "open", False, "negotiaton"),
    ("Proposal", "default", None, "proposal", "open", False, "Proposal"),
    ("won", "default", None, "closed_won", "won", True, "won"),
    ("closed_won", "default", T0, "closed_won", "won", True, None),
    ("closed-lost", "default", None, "closed_lost", "lost", True, "closed-lost"),
    ("Lost", "default", T0, "closed_lost", "lost", True, "Lost"),
    ("legal_review", "default", None, "legal_review", "open", False, None),  # unknown: kept
    ("dem", "default", None, "dem", "open", False, None),  # too short to call a typo: kept
    ("discovery", "enterprise", None, "discovery", "open", False, None),
]


async def test_free_text_stages_move_onto_pipelines(empty_database):
    conn = await asyncpg.connect(empty_database)
    try:
        await apply_migrations(conn, up_to=18)
        assert await conn.fetchval("SELECT to_regclass('pipelines')") is None
        org = await conn.fetchval("INSERT INTO organizations (name, slug) VALUES ('Old', 'old') RETURNING id")
        ids = []
        for i, (stage, pipeline, closed, *_rest) in enumerate(CASES):
            deal = await conn.fetchval(
                "INSERT INTO deals (org_id, name, value, pipeline, stage, closed_at, created_at, updated_at) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
                org, f"deal {i}", 1000 + i, pipeline, stage, closed, T0 - timedelta(days=30), T0 + timedelta(days=i))
            ids.append(deal)
        # the API's record of entering the typo'd stage says when the deal entered it
        await conn.execute(
            "INSERT INTO activities (org_id, kind, subject_type, subject_id, deal_id, body, occurred_at) "
            "VALUES ($1, 'stage_changed', 'deal', $2, $2, $3::jsonb, $4)",
            org, ids[1], '{"from": "proposal", "to": "negotiaton"}', T0 - timedelta(days=3))

        await apply_migrations(conn)

        pipelines = {r["name"]: r for r in await conn.fetch("SELECT * FROM pipelines WHERE org_id = $1", org)}
        assert set(pipelines) == {"default", "enterprise"}
        assert pipelines["default"]["is_default"] and not pipelines["enterprise"]["is_default"]
        stages = await conn.fetch(
            "SELECT name, type, position FROM pipeline_stages WHERE pipeline_id = $1 ORDER BY position",
            pipelines["default"]["id"])
        assert [s["name"] for s in stages] == [
            "qualification", "discovery", "demo", "proposal", "negotiation", "dem", "legal_review",
            "closed_won", "closed_lost"]
        assert await conn.fetchval("SELECT count(*) FROM deals WHERE org_id = $1", org) == len(CASES)
        for deal_id, (text, pipeline, closed, stage, kind, is_closed, kept) in zip(ids, CASES, strict=True):
            row = await conn.fetchrow(
                "SELECT d.*, s.type, s.pipeline_id AS stage_pipeline FROM deals d "
                "JOIN pipeline_stages s ON s.id = d.stage_id WHERE d.id = $1", deal_id)
            assert (row["pipeline"], row["stage"], row["type"]) == (pipeline, stage, kind), text
            assert row["pipeline_id"] == row["stage_pipeline"] == pipelines[pipeline]["id"]
            assert (row["closed_at"] is not None) == is_closed, text
            if closed is not None:
                assert row["closed_at"] == closed  # a recorded close time is kept
            history = await conn.fetch("SELECT * FROM deal_stage_history WHERE deal_id = $1", deal_id)
            assert [(h["stage_name"], h["stage_type"], h["migrated_from"]) for h in history] == [(stage, kind, kept)]
        entered = await conn.fetchval("SELECT stage_entered_at FROM deals WHERE id = $1", ids[1])
        assert entered == T0 - timedelta(days=3)
        # "won" had no close time: it closed when it was last written
        assert await conn.fetchval("SELECT closed_at FROM deals WHERE id = $1", ids[3]) == T0 + timedelta(days=3)

        # after the migration the database keeps the rules: new orgs get a default pipeline,
        # unknown stages are refused, closing and reopening follow the stage type
        other = await conn.fetchval("INSERT INTO organizations (name, slug) VALUES ('New', 'new') RETURNING id")
        assert await conn.fetchval(
            "SELECT count(*) FROM pipeline_stages s JOIN pipelines p ON p.id = s.pipeline_id "
            "WHERE p.org_id = $1 AND p.is_default", other) == 7
        try:
            await conn.execute("INSERT INTO deals (org_id, name, stage) VALUES ($1, 'x', 'negotiaton')", other)
            raise AssertionError("a stage outside the pipeline was accepted")
        except asyncpg.ForeignKeyViolationError:
            pass
        deal = await conn.fetchrow("INSERT INTO deals (org_id, name) VALUES ($1, 'y') RETURNING *", other)
        assert (deal["pipeline"], deal["stage"], deal["closed_at"]) == ("default", "qualification", None)
        closed = await conn.fetchrow("UPDATE deals SET stage = 'closed_won' WHERE id = $1 RETURNING *", deal["id"])
        assert closed["closed_at"] is not None
        reopened = await conn.fetchrow("UPDATE deals SET stage = 'demo' WHERE id = $1 RETURNING *", deal["id"])
        assert reopened["closed_at"] is None
        assert [r["stage_name"] for r in await conn.fetch(
            "SELECT stage_name FROM deal_stage_history WHERE deal_id = $1 ORDER BY entered_at, left_at NULLS LAST",
            deal["id"])] == ["qualification", "closed_won", "demo"]
    finally:
        await conn.close()


async def test_an_org_without_deals_gets_its_default_pipeline(empty_database):
    conn = await asyncpg.connect(empty_database)
    try:
        await apply_migrations(conn, up_to=18)
        org = await conn.fetchval("INSERT INTO organizations (name, slug) VALUES ($1, $1) RETURNING id",
                                  uuid.uuid4().hex)
        await apply_migrations(conn)
        assert await conn.fetchval("SELECT count(*) FROM pipelines WHERE org_id = $1 AND is_default", org) == 1
    finally:
        await conn.close()
