"""CRM REST API under load: latency and throughput of the hot endpoints on a real PostgreSQL.

    .venv/bin/python scripts/bench/api.py [--quick]

Starts a private PostgreSQL, fills it with leads and deals (100k / 20k; --quick:
10k / 2k), serves the real app in-process and drives it with an open-loop
load at a fixed request rate per endpoint: create lead (with scoring), score
lead, predict deal, list leads with a filter. Prints p50/p99 latency (ms),
achieved throughput and errors per endpoint; the last line is one JSON object.
On the 2-core shared machine the client and the server share the CPUs, so
these are upper bounds on latency.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from aiohttp.test_utils import TestClient, TestServer  # noqa: E402

from crm_core.auth.tokens import create_api_token  # noqa: E402
from storage.local_servers import LocalPostgres  # noqa: E402
from voice_server.app import create_app  # noqa: E402
from voice_server.runtime import Runtime  # noqa: E402
from voice_server.settings import load_settings  # noqa: E402

FILL_SQL = """
INSERT INTO leads (org_id, owner_id, first_name, last_name, email, company, title, company_size,
                   industry, source, status, ai_score, grade)
SELECT $1, $2, 'First' || i, 'Last' || i, 'p' || i || '@example.com', 'Company ' || (i % 5000),
       (ARRAY['CEO','VP Sales','Engineer','Manager','Analyst'])[1 + i % 5], 10 + (i * 37) % 5000,
       (ARRAY['software','retail','finance','health'])[1 + i % 4],
       (ARRAY['web','referral','event','outbound'])[1 + i % 4],
       (ARRAY['new','contacted','qualified','unqualified'])[1 + i % 4],
       (i * 7919) % 100, (ARRAY['A','B','C','D'])[1 + i % 4]
FROM generate_series(1, $3) AS i
"""
FILL_DEALS_SQL = """
INSERT INTO deals (org_id, owner_id, name, value, stage, expected_close)
SELECT $1, $2, 'Deal ' || i, (i * 131) % 100000,
       (ARRAY['qualification','discovery','demo','proposal','negotiation'])[1 + i % 5],
       current_date + (i % 120)
FROM generate_series(1, $3) AS i
"""


async def _drive(client, name, make_request, rate, count):
    """Open-loop: requests start on schedule whether or not earlier ones finished."""
    latencies: list[float] = []
    errors = 0

    async def one(i):
        nonlocal errors
        method, path, body = make_request(i)
        started = time.perf_counter()
        resp = await client.request(method, path, json=body, headers=HEADERS)
        await resp.read()
        latencies.append((time.perf_counter() - started) * 1000)
        if resp.status >= 400:
            errors += 1

    began = time.perf_counter()
    tasks = []
    for i in range(count):
        delay = began + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - began
    return {
        "endpoint": name, "target_rps": rate, "requests": count, "errors": errors,
        "throughput_rps": round(count / elapsed, 1),
        "p50_ms": round(float(np.percentile(latencies, 50)), 2),
        "p99_ms": round(float(np.percentile(latencies, 99)), 2),
    }


HEADERS: dict[str, str] = {}


async def main_async(quick: bool) -> dict:
    n_leads, n_deals = (10_000, 2_000) if quick else (100_000, 20_000)
    count, rate = (300, 100) if quick else (2000, 200)
    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp:
        pg = LocalPostgres(Path(tmp) / "pg").start()
        try:
            settings = load_settings({"DATABASE_URL": pg.dsn, "COACHLINE_EVENT_BUS": "memory",
                                      "COACHLINE_DATA_DIR": str(Path(tmp) / "data"),
                                      "COACHLINE_DB_POOL_MAX": "20", "COACHLINE_LOG_LEVEL": "WARNING",
                                      "COACHLINE_RATE_LIMIT_ENABLED": "false"})
            runtime = await Runtime(settings).start()
            try:
                async with runtime.pool.acquire() as conn:
                    org = await conn.fetchval("INSERT INTO organizations (name, slug) VALUES ('B', 'b') RETURNING id")
                    user = await conn.fetchval(
                        "INSERT INTO users (org_id, email, name, role) VALUES ($1, 'a@b.c', 'A', 'admin') RETURNING id",
                        org)
                    fill_started = time.perf_counter()
                    await conn.execute(FILL_SQL, org, user, n_leads)
                    await conn.execute(FILL_DEALS_SQL, org, user, n_deals)
                    await conn.execute("ANALYZE")
                    fill_s = time.perf_counter() - fill_started
                    issued = await create_api_token(conn, org_id=str(org), user_id=str(user), name="bench",
                                                    scopes=["read", "write"], expires_at=None)
                    lead_ids = [str(r["id"]) for r in await conn.fetch("SELECT id FROM leads LIMIT 2000")]
                    deal_ids = [str(r["id"]) for r in await conn.fetch("SELECT id FROM deals LIMIT 2000")]
                HEADERS["Authorization"] = f"Bearer {issued.token}"
                app = create_app(settings, runtime)
                client = TestClient(TestServer(app))
                await client.start_server()
                try:
                    results = [
                        await _drive(client, "create_lead", lambda i: ("POST", "/api/v1/leads", {
                            "first_name": f"B{i}", "company": "Bench", "title": "VP Sales",
                            "company_size": 200, "email": f"b{i}@bench.test"}), rate, count),
                        await _drive(client, "score_lead", lambda i: (
                            "POST", f"/api/v1/leads/{lead_ids[i % len(lead_ids)]}/score", None), rate, count),
                        await _drive(client, "predict_deal", lambda i: (
                            "POST", f"/api/v1/deals/{deal_ids[i % len(deal_ids)]}/predict", None), rate, count),
                        await _drive(client, "list_leads_filtered", lambda i: (
                            "GET", "/api/v1/leads?status=qualified&min_score=50&limit=50", None), rate, count),
                    ]
                finally:
                    await client.close()
            finally:
                await runtime.close()
        finally:
            pg.stop()
    for r in results:
        print(json.dumps(r))
    return {"bench": "api", "quick": quick, "leads": n_leads, "deals": n_deals, "fill_s": round(fill_s, 1),
            **{f"{r['endpoint']}_p50_ms": r["p50_ms"] for r in results},
            **{f"{r['endpoint']}_p99_ms": r["p99_ms"] for r in results},
            **{f"{r['endpoint']}_rps": r["throughput_rps"] for r in results},
            "errors": sum(r["errors"] for r in results), "target_rps": rate}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main_async(args.quick))))


if __name__ == "__main__":
    main()
