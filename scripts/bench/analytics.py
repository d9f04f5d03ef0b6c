"""Team analytics queries on a real PostgreSQL: one team of 50 reps, 50,000 finished calls.

    .venv/bin/python scripts/bench/analytics.py            # 50 reps, 50,000 calls over a year, 60 requests each
    .venv/bin/python scripts/bench/analytics.py --quick    # 50 reps, 5,000 calls, 20 requests each

Starts a private PostgreSQL (storage/local_servers) and Redis, migrates, seeds an
organization with one team (a manager and 50 reps) and its calls with their
``call_metrics`` rows spread over the last 365 days (server-side INSERT ... SELECT),
then serves the real application in this process and asks, as the team's manager,
through HTTP, one request after another (so each latency is one query's, not a queue's):

- team: ``GET /api/v1/analytics/team`` per rep over the last quarter (91 days);
- team_by_team: the same with ``group=team``;
- rep: one rep's figures over the quarter (a different rep each request);
- trends: ``/trends`` for the team over the quarter (13 weeks);
- drill_down: ``/calls?metric=prompts_not_followed`` over the quarter, first page of 50.

Per query: p50, p95, max in ms. Goal: p95 <= 300 ms. The last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

GOAL_P95_MS = 300.0


def _progress(message: str) -> None:
    print(f"[bench-analytics] {message}", file=sys.stderr, flush=True)


async def seed(dsn: str, reps: int, calls: int) -> dict[str, Any]:
    import asyncpg

    from crm_core.auth.tokens import create_api_token
    from storage.migrations import apply_migrations

    conn = await asyncpg.connect(dsn)
    try:
        await apply_migrations(conn)
        org = str(await conn.fetchval(
            "INSERT INTO organizations (name, slug, settings) VALUES ('Bench', 'bench', $1) RETURNING id",
            json.dumps({"plan": "enterprise", "rate_limit_per_min": 1_000_000})))
        team = str(await conn.fetchval("INSERT INTO teams (org_id, name) VALUES ($1, 'Sales') RETURNING id", org))
        manager = str(await conn.fetchval(
            "INSERT INTO users (org_id, email, name, role, team_id) VALUES ($1, 'm@bench.test', 'Manager', "
            "'manager', $2) RETURNING id", org, team))
        rep_ids = [str(r["id"]) for r in await conn.fetch(
            "INSERT INTO users (org_id, email, name, role, team_id) SELECT $1, 'rep' || i || '@bench.test', "
            "'Rep ' || i, 'rep', $2 FROM generate_series(1, $3) AS i RETURNING id", org, team, reps)]
        # calls, then their metrics: pseudo-random but fixed figures per call (hashes of the index)
        await conn.execute(
            """
            INSERT INTO calls (org_id, carrier, direction, rep_id, status, started_at, ended_at, duration_s)
            SELECT $1, 'simulator', 'outbound', ($2::uuid[])[1 + i % array_length($2::uuid[], 1)], 'completed',
                   now() - (i * (365.0 / $3)) * interval '1 day',
                   now() - (i * (365.0 / $3)) * interval '1 day' + interval '5 minutes', 300
            FROM generate_series(0, $3 - 1) AS i
            """, org, rep_ids, calls)
        await conn.execute(
            """
            INSERT INTO call_metrics (call_id, org_id, rep_id, started_at, duration_ms, rep_talk_ms,
                customer_talk_ms, rep_longest_monologue_ms, customer_longest_monologue_ms, rep_interruptions,
                customer_interruptions, rep_questions, customer_questions, patience_ms, patience_answers,
                rep_sentiment, customer_sentiment, prompts_fired, prompts_followed, checklist_total,
                checklist_done, competitors, competitor_mentions, objections, objection_mentions)
            SELECT c.id, c.org_id, c.rep_id, c.started_at, 300000, 120000 + h % 60000, 100000 + h % 50000,
                   20000 + h % 40000, 15000 + h % 30000, h % 5, h % 4, h % 12, h % 6, 500 + h % 1500, 1 + h % 20,
                   (h % 200 - 100) / 100.0, (h % 180 - 90) / 100.0, h % 6, (h % 6) / 2, 2, h % 3,
                   CASE WHEN h % 4 = 0 THEN ARRAY['Gong'] WHEN h % 7 = 0 THEN ARRAY['Chorus'] ELSE '{}' END,
                   CASE WHEN h % 4 = 0 OR h % 7 = 0 THEN 1 + h % 3 ELSE 0 END,
                   CASE WHEN h % 3 = 0 THEN ARRAY['objection_price'] ELSE '{}' END,
                   CASE WHEN h % 3 = 0 THEN 1 ELSE 0 END
            FROM (SELECT id, org_id, rep_id, started_at, abs(hashtext(id::text)) AS h FROM calls WHERE org_id = $1) c
            """, org)
        await conn.execute("ANALYZE")
        token = await create_api_token(conn, org_id=org, user_id=manager, name="bench", scopes=["read"],
                                       expires_at=None)
        return {"org": org, "team": team, "reps": rep_ids, "token": token.token}
    finally:
        await conn.close()


def _summary(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return {"n": len(ordered), "p50_ms": round(statistics.median(ordered), 1), "p95_ms": round(p95, 1),
            "max_ms": round(ordered[-1], 1)}


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    from aiohttp.test_utils import TestClient, TestServer

    from storage.local_servers import LocalPostgres, LocalRedis
    from voice_server.app import create_app
    from voice_server.runtime import Runtime
    from voice_server.settings import load_settings

    reps, calls = 50, (5_000 if args.quick else 50_000)
    requests = args.requests or (20 if args.quick else 60)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-analytics-") as tmp:
        _progress("starting PostgreSQL and Redis")
        pg = LocalPostgres(Path(tmp) / "pg").start()
        redis = LocalRedis(Path(tmp) / "redis").start()
        try:
            started = time.perf_counter()
            seeded = await seed(pg.dsn, reps, calls)
            _progress(f"seeded {reps} reps and {calls} calls in {time.perf_counter() - started:.1f} s")
            settings = load_settings({"DATABASE_URL": pg.dsn, "REDIS_URL": redis.url,
                                      "COACHLINE_EVENT_BUS": "memory",
                                      "COACHLINE_DATA_DIR": str(Path(tmp) / "data")})
            runtime = await Runtime(settings).start()
            client = TestClient(TestServer(create_app(settings, runtime)))
            await client.start_server()
            try:
                today = datetime.now(UTC).date()
                quarter = {"from": (today - timedelta(days=90)).isoformat(), "to": today.isoformat()}
                headers = {"Authorization": f"Bearer {seeded['token']}"}
                queries = {
                    "team": lambda i: ("/api/v1/analytics/team", quarter),
                    "team_by_team": lambda i: ("/api/v1/analytics/team", {**quarter, "group": "team"}),
                    "rep": lambda i: ("/api/v1/analytics/team",
                                      {**quarter, "rep_id": seeded["reps"][i % reps]}),
                    "trends": lambda i: ("/api/v1/analytics/team/trends", quarter),
                    "drill_down": lambda i: ("/api/v1/analytics/team/calls",
                                             {**quarter, "metric": "prompts_not_followed"}),
                }
                results: dict[str, Any] = {}
                for name, make in queries.items():
                    latencies = []
                    for i in range(requests + 3):  # the first 3 warm the caches and are not counted
                        path, params = make(i)
                        t0 = time.perf_counter()
                        resp = await client.get(path, params=params, headers=headers)
                        body = await resp.read()
                        elapsed = (time.perf_counter() - t0) * 1000
                        if resp.status != 200:
                            raise SystemExit(f"{name}: {resp.status} {body[:300]!r}")
                        if i >= 3:
                            latencies.append(elapsed)
                    results[name] = _summary(latencies)
                    _progress(f"{name}: {results[name]}")
                quarter_calls = (await (await client.get("/api/v1/analytics/team", params=quarter,
                                                         headers=headers)).json())["total"]["calls"]
            finally:
                await client.close()
                await runtime.close()
        finally:
            redis.stop()
            pg.stop()
    worst = max(r["p95_ms"] for r in results.values())
    return {"bench": "analytics", "reps": reps, "calls": calls, "calls_in_quarter": quarter_calls,
            "requests_per_query": requests, "queries": results, "worst_p95_ms": worst,
            "goal_p95_ms": GOAL_P95_MS, "meets_goal": worst <= GOAL_P95_MS,
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in os.getloadavg()], "cpus": os.cpu_count()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5,000 calls and 20 requests per query")
    parser.add_argument("--requests", type=int, default=0, help="requests per query (default 60, quick 20)")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main_async(args))))


if __name__ == "__main__":
    main()
