"""CRM REST API under load: latency and throughput of the hot endpoints on a real PostgreSQL.

    .venv/bin/python scripts/bench/api.py            # full: 100k leads, 20k deals, 200 req/s, 30 s per endpoint
    .venv/bin/python scripts/bench/api.py --quick    # 10k leads, 2k deals, 200 req/s, 5 s per endpoint (< 1 min)

Starts a private PostgreSQL and Redis, seeds them (leads, deals, their calls
and timelines) in batches with progress on stderr, then starts the real
server (``voice_server.server.serve``, rate limits on, speech off) in a
*separate process* and drives it from this one with an open-loop load: each
request has a scheduled send time at a fixed arrival rate, and its latency is
measured from that scheduled time, so a server (or client) that falls behind
shows up in the figures instead of silently slowing the arrivals (no
coordinated omission). Endpoints, one after another: create lead (with
scoring), score lead, predict deal, list leads with a filter, search leads
(``q=`` on the list) and search leads and deals at once (``/search``).

Per endpoint: achieved rate, p50/p95/p99/max latency, errors (by status),
the server's and PostgreSQL's CPU (percent of one core) and the client's own
CPU and send lag; ``client_limited`` says whether the load generator (not the
server) was the bottleneck. Load averages before/after are recorded because
the machine is shared. The last stdout line is one JSON object.

``--profile FILE`` runs the server under cProfile and writes its stats there
(``python -m pstats FILE``); ``--py-spy FILE`` samples the server with py-spy (when
installed) during the measured phases and writes collapsed stacks; ``--only
NAME[,NAME]`` drives a subset.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

OPERATIONS = (
    "create_lead", "score_lead", "predict_deal", "list_leads_filtered", "search_leads", "search_all",
    "pipeline_analytics",
)
SEED_BATCH = 10_000


def _progress(message: str) -> None:
    print(f"[bench-api] {message}", file=sys.stderr, flush=True)


# --- seeding -----------------------------------------------------------------------------
# Server-side INSERT ... SELECT over generate_series in batches: nothing crosses the socket
# but the batch bounds, which beats COPY from Python for synthetic rows.

LEADS_SQL = """
INSERT INTO leads (org_id, owner_id, first_name, last_name, email, company, title, company_size,
                   industry, source, status, territory, ai_score, grade, scored_at, updated_at)
SELECT $1, ($2::uuid[])[1 + i % array_length($2::uuid[], 1)], 'First' || i, 'Last' || i,
       'p' || i || '@example.com', 'Company ' || (i % 5000),
       (ARRAY['CEO','VP Sales','Engineer','Manager','Analyst'])[1 + i % 5], 10 + (i * 37) % 5000,
       (ARRAY['software','retail','finance','health'])[1 + i % 4],
       (ARRAY['web','referral','event','outbound'])[1 + i % 4],
       (ARRAY['new','contacted','qualified','unqualified'])[1 + (i / 3) % 4],
       (ARRAY['emea','amer','apac'])[1 + i % 3],
       (i * 7919) % 100, (ARRAY['A','B','C','D'])[1 + i % 4], now(), now()
FROM generate_series($3::int, $4::int) AS i
"""
DEALS_SQL = """
INSERT INTO deals (org_id, owner_id, name, value, stage, expected_close, created_at, updated_at)
SELECT $1, ($2::uuid[])[1 + i % array_length($2::uuid[], 1)], 'Deal ' || i, (i * 131) % 100000,
       (ARRAY['qualification','discovery','demo','proposal','negotiation'])[1 + i % 5],
       current_date + (i % 120), now() - make_interval(days => i % 60), now() - make_interval(days => i % 60)
FROM generate_series($3::int, $4::int) AS i
"""
# A timeline for every deal (3 entries) and an answered call on every 10th lead, both in the
# past: a call changed after its lead was scored would make the re-scoring job busy during the run.
DEAL_ACTIVITIES_SQL = """
INSERT INTO activities (org_id, kind, subject_type, subject_id, deal_id, occurred_at, body)
SELECT d.org_id, (ARRAY['note','call','email'])[1 + k], 'deal', d.id, d.id,
       now() - make_interval(days => (k * 7 + length(d.name)) % 40), '{}'::jsonb
FROM (SELECT * FROM deals WHERE org_id = $1 ORDER BY id OFFSET $2 LIMIT $3) d, generate_series(0, 2) AS k
"""
LEAD_CALLS_SQL = """
INSERT INTO calls (org_id, lead_id, rep_id, direction, carrier, status, answered_at, ended_at, duration_s,
                   created_at, updated_at)
SELECT l.org_id, l.id, l.owner_id, 'outbound', 'twilio', 'completed', now() - interval '1 day',
       now() - interval '1 day' + interval '5 minutes', 300, now() - interval '1 day',
       now() - interval '1 day' + interval '5 minutes'
FROM (SELECT * FROM leads WHERE org_id = $1 ORDER BY id OFFSET $2 LIMIT $3) l
WHERE hashtext(l.id::text) % 10 = 0
"""
# Each call: 8 transcript segments (the customer's with a sentiment) and a timeline entry on its
# lead with the call summary's counts, as crm_core.calls.events writes them.
CALL_DETAILS_SQL = """
WITH c AS (SELECT * FROM calls WHERE org_id = $1 ORDER BY id OFFSET $2 LIMIT $3),
segments AS (
    INSERT INTO transcript_segments (org_id, call_id, segment_key, party, start_ms, end_ms, text, sentiment)
    SELECT c.org_id, c.id, 's' || k, CASE WHEN k % 2 = 0 THEN 'rep' ELSE 'customer' END,
           k * 5000, k * 5000 + 4000, 'segment ' || k,
           CASE WHEN k % 2 = 1 THEN ((hashtext(c.id::text || k) % 100) / 100.0) END
    FROM c, generate_series(0, 7) AS k
)
INSERT INTO activities (org_id, kind, subject_type, subject_id, lead_id, call_id, occurred_at, body)
SELECT c.org_id, 'call.completed', 'lead', c.lead_id, c.lead_id, c.id, c.ended_at,
       jsonb_build_object('keyword_hits', abs(hashtext(c.id::text)) % 4, 'objection_hits', abs(hashtext(c.id::text)) % 2)
FROM c
"""


async def _batched(conn, label: str, total: int, run: Callable[[int, int], Any]) -> None:
    done = 0
    started = time.perf_counter()
    while done < total:
        size = min(SEED_BATCH, total - done)
        await run(done, size)
        done += size
        _progress(f"seeded {label}: {done}/{total} ({time.perf_counter() - started:.1f} s)")


async def seed(dsn: str, n_leads: int, n_deals: int) -> dict[str, Any]:
    import asyncpg

    from crm_core.auth.tokens import create_api_token
    from storage.migrations import apply_migrations

    conn = await asyncpg.connect(dsn)
    try:
        await apply_migrations(conn)
        org = await conn.fetchval(
            "INSERT INTO organizations (name, slug, settings) VALUES ('Bench', 'bench', $1::jsonb) RETURNING id",
            # Enterprise with a custom limit far above the bench's rate: the limiter runs on every
            # request (its Redis round trip is measured) but never refuses.
            json.dumps({"plan": "enterprise", "rate_limit_per_min": 1_000_000}),
        )
        admin = await conn.fetchval(
            "INSERT INTO users (org_id, email, name, role) VALUES ($1, 'admin@bench.test', 'Admin', 'admin') "
            "RETURNING id", org)
        reps = [await conn.fetchval(
            "INSERT INTO users (org_id, email, name, role) VALUES ($1, $2, $3, 'rep') RETURNING id",
            org, f"rep{i}@bench.test", f"Rep {i}") for i in range(20)]
        owners = [admin, *reps]
        await _batched(conn, "leads", n_leads, lambda done, size: conn.execute(
            LEADS_SQL, org, owners, done + 1, done + size))
        await _batched(conn, "deals", n_deals, lambda done, size: conn.execute(
            DEALS_SQL, org, owners, done + 1, done + size))
        await _batched(conn, "deal timelines", n_deals, lambda done, size: conn.execute(
            DEAL_ACTIVITIES_SQL, org, done, size))
        await _batched(conn, "lead calls", n_leads, lambda done, size: conn.execute(
            LEAD_CALLS_SQL, org, done, size))
        n_calls = await conn.fetchval("SELECT count(*) FROM calls WHERE org_id = $1", org)
        await _batched(conn, "call transcripts", n_calls, lambda done, size: conn.execute(
            CALL_DETAILS_SQL, org, done, size))
        await conn.execute("VACUUM ANALYZE")
        issued = await create_api_token(conn, org_id=str(org), user_id=str(admin), name="bench",
                                        scopes=["read", "write"], expires_at=None)
        lead_ids = [str(r["id"]) for r in await conn.fetch(
            "SELECT id FROM leads WHERE org_id = $1 ORDER BY random() LIMIT 5000", org)]
        deal_ids = [str(r["id"]) for r in await conn.fetch(
            "SELECT id FROM deals WHERE org_id = $1 ORDER BY random() LIMIT 5000", org)]
    finally:
        await conn.close()
    return {"token": issued.token, "lead_ids": lead_ids, "deal_ids": deal_ids}


# --- the server, in its own process ----------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class GcPauses:
    """The server's garbage-collector pauses (a full collection stops every request in flight),
    with their wall-clock start, so the client can pick those inside its measured windows."""

    def __init__(self) -> None:
        self.started = (0.0, 0.0)
        self.pauses: list[tuple[float, int, float]] = []  # (unix time, generation, ms)

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        # CPU time, not wall time: on a busy machine a collection may also wait for a core.
        # Only full collections are timed (a CPU clock read is a system call; young ones are many).
        generation = info["generation"]
        if phase == "start":
            self.started = (time.time(), time.thread_time() if generation == 2 else 0.0)
        else:
            at, t0 = self.started
            self.pauses.append((at, generation, (time.thread_time() - t0) * 1000 if generation == 2 else 0.0))


def gc_summary(pauses: list[list[float]], windows: list[tuple[float, float]]) -> dict[str, Any]:
    inside = [p for p in pauses if any(a <= p[0] <= b for a, b in windows)]
    out = {}
    for gen in (0, 1, 2):
        ms = [p[2] for p in inside if p[1] == gen]
        out[f"gen{gen}"] = {"count": len(ms)}
        if gen == 2:
            out["gen2"].update(max_cpu_ms=round(max(ms), 2) if ms else 0.0, total_cpu_ms=round(sum(ms), 1))
    return out


def serve_main(profile: str | None) -> None:
    """The child process: the real server until SIGTERM (optionally under cProfile)."""
    import atexit
    import gc

    from voice_server.server import serve
    from voice_server.settings import load_settings

    settings = load_settings()
    gc_pauses = GcPauses()
    gc.callbacks.append(gc_pauses)
    if os.environ.get("BENCH_GC_STATS"):
        atexit.register(lambda: Path(os.environ["BENCH_GC_STATS"]).write_text(json.dumps(gc_pauses.pauses)))

    async def run() -> None:
        await serve(settings)

    if profile is None:
        asyncio.run(run())
        return
    import cProfile

    profiler = cProfile.Profile()
    profiler.enable()
    try:
        asyncio.run(run())
    finally:
        profiler.disable()
        profiler.dump_stats(profile)


def start_server(pg_dsn: str, redis_url: str, data_dir: Path, port: int, pool_max: int,
                 profile: str | None, log_path: Path) -> subprocess.Popen:
    env = {**os.environ, "DATABASE_URL": pg_dsn, "REDIS_URL": redis_url,
           "COACHLINE_PORT": str(port), "COACHLINE_DATA_DIR": str(data_dir),
           "COACHLINE_EVENT_BUS": "memory", "COACHLINE_DB_POOL_MAX": str(pool_max),
           "COACHLINE_LOG_LEVEL": "WARNING", "COACHLINE_STT_ENABLED": "false",
           "COACHLINE_RECORDING_ENABLED": "false", "COACHLINE_WEBHOOKS_ENABLED": "false",
           "BENCH_GC_STATS": str(data_dir.parent / "gc.json")}
    command = [sys.executable, str(Path(__file__).resolve()), "--serve"]
    if profile:
        command += ["--profile", profile]
    with open(log_path, "wb") as log:
        return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=str(ROOT))


async def wait_ready(session, base: str, server: subprocess.Popen, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited ({server.returncode}) before it was ready")
        try:
            async with session.get(f"{base}/ready") as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        await asyncio.sleep(0.2)
    raise RuntimeError("the server did not become ready")


def _start_py_spy(pid: int, out: str) -> subprocess.Popen:
    spy = Path(sys.executable).with_name("py-spy")
    if not spy.exists():
        raise SystemExit("--py-spy needs py-spy in the venv (pip install py-spy)")
    return subprocess.Popen([str(spy), "record", "--pid", str(pid), "--format", "raw", "--rate", "200",
                             "--output", out, "--nonblocking", "--gil"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


# --- CPU accounting ------------------------------------------------------------------------

@dataclass
class CpuMeter:
    """CPU seconds of a set of processes (the server; PostgreSQL's postmaster and its backends)."""

    roots: list[psutil.Process]
    with_children: bool = False
    _seen: dict[int, float] = field(default_factory=dict)

    def total(self) -> float:
        procs = list(self.roots)
        if self.with_children:
            for root in self.roots:
                try:
                    procs += root.children(recursive=True)
                except psutil.Error:
                    pass
        for proc in procs:
            try:
                times = proc.cpu_times()
                self._seen[proc.pid] = times.user + times.system
            except psutil.Error:
                pass  # exited: keep its last reading
        return sum(self._seen.values())


# --- the load ------------------------------------------------------------------------------

def _pct(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 2) if values else 0.0


async def _pg_transactions(stats_conn) -> int | None:
    """Transactions PostgreSQL has counted (an autocommitted statement is one): per request,
    a steady measure of round trips and commits where timings are noisy."""
    if stats_conn is None:
        return None
    # Backends report their counts when idle, at most once a second: let the last ones land.
    await asyncio.sleep(1.1)
    return await stats_conn.fetchval(
        "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()")


async def drive(session, base: str, headers: dict[str, str], name: str,
                make_request: Callable[[int], tuple[str, str, Any]], rate: float, count: int,
                server_cpu: CpuMeter, pg_cpu: CpuMeter, stats_conn=None) -> dict[str, Any]:
    """Open loop: request i is due at start + i/rate and is sent then, whether or not earlier
    ones have finished; its latency runs from that due time to the last byte of the reply."""
    latencies: list[float] = []
    send_lags: list[float] = []
    statuses: dict[str, int] = {}

    async def one(i: int, due: float) -> None:
        method, path, body = make_request(i)
        send_lags.append((time.perf_counter() - due) * 1000)
        try:
            async with session.request(method, base + path, json=body, headers=headers) as resp:
                await resp.read()
                status = str(resp.status)
        except Exception as exc:  # noqa: BLE001 - counted, never fatal: the run goes on
            status = type(exc).__name__
        latencies.append((time.perf_counter() - due) * 1000)
        if not status.startswith("2"):
            statuses[status] = statuses.get(status, 0) + 1

    xacts0 = await _pg_transactions(stats_conn)
    loop_cpu0, server0, pg0 = time.process_time(), server_cpu.total(), pg_cpu.total()
    began, began_wall = time.perf_counter(), time.time()
    tasks = []
    for i in range(count):
        due = began + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, due)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - began
    window = (began_wall, time.time())
    client_cpu = (time.process_time() - loop_cpu0) / elapsed * 100
    server = (server_cpu.total() - server0) / elapsed * 100
    pg = (pg_cpu.total() - pg0) / elapsed * 100
    lag_p99 = _pct(send_lags, 99)
    achieved = count / elapsed
    xacts1 = await _pg_transactions(stats_conn)
    # The stats connection's own statement and its reading count too.
    xacts = None if xacts0 is None or xacts1 is None else round((xacts1 - xacts0 - 1) / count, 2)
    return {
        "endpoint": name, "target_rps": rate, "requests": count, "achieved_rps": round(achieved, 1),
        "errors": sum(statuses.values()), "error_statuses": statuses,
        "p50_ms": _pct(latencies, 50), "p95_ms": _pct(latencies, 95), "p99_ms": _pct(latencies, 99),
        "max_ms": round(max(latencies), 2) if latencies else 0.0,
        "server_cpu_pct": round(server, 1), "postgres_cpu_pct": round(pg, 1),
        # CPU per request is steadier than tail latency on a shared machine: compare changes by it.
        "server_cpu_ms_per_req": round(server * 10 / achieved, 3),
        "postgres_cpu_ms_per_req": round(pg * 10 / achieved, 3),
        "pg_transactions_per_req": xacts,
        "client_cpu_pct": round(client_cpu, 1), "client_send_lag_p99_ms": lag_p99,
        # The generator could not keep to its schedule: these figures measure it, not the server.
        "client_limited": bool(lag_p99 > 5.0 or client_cpu > 85.0),
        "_window": window,
    }


def request_makers(lead_ids: list[str], deal_ids: list[str], run_tag: str) -> dict[str, Callable]:
    return {
        "create_lead": lambda i: ("POST", "/api/v1/leads", {
            "first_name": f"B{i}", "last_name": "Bench", "company": f"Bench {i % 97}",
            "title": ("VP Sales", "CEO", "Engineer", "Analyst")[i % 4], "company_size": 50 + i % 900,
            "industry": ("software", "retail")[i % 2], "source": "web",
            "email": f"b{run_tag}-{i}@bench.test"}),
        "score_lead": lambda i: ("POST", f"/api/v1/leads/{lead_ids[i % len(lead_ids)]}/score", None),
        "predict_deal": lambda i: ("POST", f"/api/v1/deals/{deal_ids[i % len(deal_ids)]}/predict", None),
        "list_leads_filtered": lambda i: ("GET", "/api/v1/leads?status=qualified&min_score=50&limit=50", None),
        # q= on the list and the grouped search: a last name, an e-mail prefix, a company phrase
        "search_leads": lambda i: ("GET", "/api/v1/leads?limit=20&q=" + _search_text(i), None),
        "search_all": lambda i: ("GET", "/api/v1/search?limit=10&q=" + _search_text(i), None),
        # every deal of the organisation (the bench's admin): the heaviest reach
        "pipeline_analytics": lambda i: ("GET", "/api/v1/analytics/pipeline", None),
    }


def _search_text(i: int) -> str:
    n = (i * 7919) % 100_000
    return (f"Last{n}", f"p{n}%40exa", f"Company%20{n % 5000}")[i % 3]


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    import aiohttp
    import asyncpg

    from storage.local_servers import LocalPostgres, LocalRedis

    quick = args.quick
    n_leads, n_deals = (10_000, 2_000) if quick else (100_000, 20_000)
    rate = args.rate
    seconds = args.seconds or (5.0 if quick else 30.0)
    count = int(rate * seconds)
    only = [op for op in (args.only.split(",") if args.only else OPERATIONS)]
    unknown = set(only) - set(OPERATIONS)
    if unknown:
        raise SystemExit(f"unknown operation(s): {sorted(unknown)}; choose from {OPERATIONS}")
    load_before = os.getloadavg()
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp:
        _progress("starting PostgreSQL and Redis")
        pg = LocalPostgres(Path(tmp) / "pg").start()
        redis = LocalRedis(Path(tmp) / "redis").start()
        server: subprocess.Popen | None = None
        try:
            fill_started = time.perf_counter()
            seeded = await seed(pg.dsn, n_leads, n_deals)
            fill_s = time.perf_counter() - fill_started
            port = _free_port()
            base = f"http://127.0.0.1:{port}"
            log_path = Path(tmp) / "server.log"
            server = start_server(pg.dsn, redis.url, Path(tmp) / "data", port, args.pool_max,
                                  args.profile, log_path)
            pid_file = pg.pgdata / "postmaster.pid"
            postmaster = int(pid_file.read_text().split()[0]) if pid_file.exists() else None
            server_cpu = CpuMeter([psutil.Process(server.pid)])
            pg_cpu = CpuMeter([psutil.Process(postmaster)] if postmaster else [], with_children=True)
            headers = {"Authorization": f"Bearer {seeded['token']}"}
            makers = request_makers(seeded["lead_ids"], seeded["deal_ids"], run_tag=str(port))
            connector = aiohttp.TCPConnector(limit=0)
            timeout = aiohttp.ClientTimeout(total=30)
            stats_conn = await asyncpg.connect(pg.dsn)
            async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
                await wait_ready(session, base, server)
                _progress("server ready; warming up")
                for name in only:  # connections, prepared statements, caches: not measured
                    warm = request_makers(seeded["lead_ids"][::-1], seeded["deal_ids"][::-1], "warm")[name]
                    await drive(session, base, headers, f"warm-{name}", warm, min(rate, 100.0),
                                int(min(rate, 100.0)), server_cpu, pg_cpu)
                sampler = _start_py_spy(server.pid, args.py_spy) if args.py_spy else None
                for name in only:
                    _progress(f"driving {name}: {count} requests at {rate:g}/s")
                    result = await drive(session, base, headers, name, makers[name], rate, count,
                                         server_cpu, pg_cpu, stats_conn)
                    _progress(json.dumps({k: v for k, v in result.items() if k != "_window"}))
                    results.append(result)
                if sampler is not None:
                    sampler.send_signal(signal.SIGINT)
                    sampler.wait(timeout=60)
            await stats_conn.close()
        finally:
            if server is not None and server.poll() is None:
                server.send_signal(signal.SIGTERM)
                try:
                    server.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    server.kill()
                    server.wait()
            if server is not None and server.returncode not in (0, None, -signal.SIGTERM):
                _progress("server log tail:\n" + (Path(tmp) / "server.log").read_text()[-3000:])
            gc_file = Path(tmp) / "gc.json"
            windows = [r.pop("_window") for r in results]
            server_gc = gc_summary(json.loads(gc_file.read_text()), windows) if gc_file.exists() else None
            redis.stop()
            pg.stop()
    load_after = os.getloadavg()
    for r in results:
        print(json.dumps(r))
    summary: dict[str, Any] = {
        "bench": "api", "quick": quick, "leads": n_leads, "deals": n_deals, "fill_s": round(fill_s, 1),
        "target_rps": rate, "seconds_per_endpoint": seconds, "cpus": os.cpu_count(),
        "loadavg_before": [round(x, 2) for x in load_before], "loadavg_after": [round(x, 2) for x in load_after],
    }
    for r in results:
        name = r["endpoint"]
        for key in ("p50_ms", "p95_ms", "p99_ms", "max_ms", "achieved_rps", "errors", "server_cpu_pct",
                    "postgres_cpu_pct", "server_cpu_ms_per_req", "postgres_cpu_ms_per_req",
                    "pg_transactions_per_req"):
            summary[f"{name}_{key}"] = r[key]
    summary["server_gc_in_measured_windows"] = server_gc
    summary["errors"] = sum(r["errors"] for r in results)
    summary["client_limited"] = any(r["client_limited"] for r in results)
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="10k leads, 5 s per endpoint (< 1 minute)")
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second per endpoint")
    parser.add_argument("--seconds", type=float, default=None, help="seconds per endpoint")
    parser.add_argument("--only", default="", help="comma-separated subset of " + ",".join(OPERATIONS))
    parser.add_argument("--pool-max", type=int, default=20, help="the server's PostgreSQL pool size")
    parser.add_argument("--profile", default=None, help="run the server under cProfile, stats to FILE")
    parser.add_argument("--py-spy", default=None, help="sample the server with py-spy, collapsed stacks to FILE")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args()
    if args.serve:
        serve_main(args.profile)
        return
    if args.profile:
        args.profile = str(Path(args.profile).resolve())
    print(json.dumps(asyncio.run(main_async(args))))


if __name__ == "__main__":
    main()
