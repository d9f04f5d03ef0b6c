import asyncio
import uuid

import redis.asyncio as aioredis

from crm_core.scoring.rescoring import LeadRescoringJob, RescoringOptions, rescore_changed_leads, rescore_lead
from storage.database import create_pool


async def _setup(conn):
    org = await conn.fetchval("INSERT INTO organizations (name, slug) VALUES ('o', $1) RETURNING id",
                              uuid.uuid4().hex)
    new = await conn.fetchval(
        """INSERT INTO leads (org_id, title, company_size, industry, source, email)
           VALUES ($1, 'VP Sales', 400, 'SaaS', 'referral', 'v@acme.io') RETURNING id""", org)
    called = await conn.fetchval(
        """INSERT INTO leads (org_id, title, company_size, industry, source, email, scored_at, ai_score, grade)
           VALUES ($1, 'Analyst', 40, 'Retail', 'website', 'a@shop.com', now() - interval '1 hour', 10, 'D')
           RETURNING id""", org)
    quiet = await conn.fetchval(
        """INSERT INTO leads (org_id, title, source, scored_at, ai_score, grade)
           VALUES ($1, 'CEO', 'referral', now() - interval '1 hour', 55, 'B') RETURNING id""", org)
    await conn.execute("UPDATE leads SET updated_at = now() - interval '2 hours' WHERE org_id = $1", org)
    return org, new, called, quiet


async def test_only_leads_whose_inputs_changed_are_rescored_with_their_call_engagement(migrated_database):
    pool = await create_pool(migrated_database)
    try:
        async with pool.acquire() as conn:
            org, new, called, quiet = await _setup(conn)
            quiet_before = await conn.fetchval("SELECT scored_at FROM leads WHERE id = $1", quiet)
            # A call with this lead ends (what call.ended leads to), with upbeat customer speech.
            call = await conn.fetchval(
                """INSERT INTO calls (org_id, carrier, direction, lead_id, status, duration_s, answered_at, ended_at)
                   VALUES ($1, 'simulator', 'outbound', $2, 'completed', 1500, now(), now()) RETURNING id""",
                org, called)
            await conn.execute(
                """INSERT INTO transcript_segments (org_id, call_id, segment_key, party, start_ms, end_ms, text, sentiment)
                   VALUES ($1, $2, 'c:1', 'customer', 0, 1000, 'this is great', 0.8)""", org, call)
            await conn.execute(
                """INSERT INTO activities (org_id, kind, subject_type, subject_id, lead_id, body)
                   VALUES ($1, 'call_signal', 'lead', $2, $2, '{"signal": "buying_intent", "count": 4}'),
                          ($1, 'call_signal', 'lead', $2, $2, '{"signal": "objection", "count": "lots"}')""",
                org, called)

        run = await rescore_changed_leads(pool, batch_size=50)
        assert run.scored == 2 and run.unreadable == 0
        async with pool.acquire() as conn:
            rows = {r["id"]: r for r in await conn.fetch("SELECT * FROM leads WHERE org_id = $1", org)}
        assert rows[new]["grade"] in "AB" and rows[new]["score_factors"]["reasons"]
        assert rows[called]["ai_score"] > 10  # the call, the sentiment and the buying signals count
        factors = rows[called]["score_factors"]["reasons"]
        assert any("1 call, 25 min talk time" in r for r in factors) or any("buying-signal" in r for r in factors)
        assert rows[quiet]["scored_at"] == quiet_before  # untouched: nothing changed
        async with pool.acquire() as conn:
            events = await conn.fetch("SELECT payload FROM outbox WHERE type = 'crm.lead.scored'")
        # Each grade that changed (from none; from D if it moved) is announced once.
        expected = {str(new)} | ({str(called)} if rows[called]["grade"] != "D" else set())
        assert sorted(e["payload"]["lead_id"] for e in events) == sorted(expected)
        # A second run finds nothing to do.
        assert (await rescore_changed_leads(pool)).scored == 0
        async with pool.acquire() as conn:
            result = await rescore_lead(conn, str(org), str(quiet))
            assert result is not None and result.grade in "ABCDEF"
            assert await rescore_lead(conn, str(org), str(uuid.uuid4())) is None
    finally:
        await pool.close()


async def test_the_job_runs_as_a_singleton_across_nodes(migrated_database, redis_url):
    pools = [await create_pool(migrated_database) for _ in range(2)]
    clients = [aioredis.from_url(redis_url) for _ in range(2)]
    options = RescoringOptions(every_s=0.05, lease_ttl_s=2)
    jobs = [LeadRescoringJob(p, c, options) for p, c in zip(pools, clients)]
    stop = asyncio.Event()
    try:
        async with pools[0].acquire() as conn:
            org, *_ = await _setup(conn)
        tasks = [asyncio.create_task(j.run(stop)) for j in jobs]
        for _ in range(100):
            async with pools[0].acquire() as conn:
                left = await conn.fetchval(
                    "SELECT count(*) FROM leads WHERE org_id = $1 AND scored_at IS NULL", org)
            if left == 0:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)
        stop.set()
        await asyncio.gather(*tasks)
        assert left == 0
        # The lease stayed with one node: only one of them ever ran the job.
        assert sorted(j.runs > 0 for j in jobs) == [False, True]
    finally:
        for p in pools:
            await p.close()
        for c in clients:
            await c.aclose()
