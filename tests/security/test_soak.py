"""A soak: 50 concurrent simulated calls (speech off) plus API traffic against a real node.

Default: one short round (about 20 s of calls); ``--slow``: 10 minutes of calls placed
back to back. Nothing may answer 5xx, no call may fail, and the node must end where it
began: its asyncio tasks and open file descriptors (sockets included) back to the count
before the soak within a small fixed slack, its memory within a generous bound. The
figures are printed as one JSON line (``SOAK_FIGURES``).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections import Counter

import aiohttp
import pytest

from tests.security.fault_world import FaultWorld, place_call, poll, start_world, stop_world

pytestmark = pytest.mark.timeout(1200)

CONCURRENT_CALLS = 50
TASK_SLACK = 10  # housekeeping loops that happen to be mid-iteration
FD_SLACK = 10  # a few more pooled database/Redis connections than the warm-up needed


async def _metric(http: aiohttp.ClientSession, world: FaultWorld, name: str) -> float:
    async with http.get(world.node.url + "/metrics") as resp:
        text = await resp.text()
    for line in text.splitlines():
        if line.startswith((name + " ", name + "{")):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in /metrics")


async def _api_traffic(world: FaultWorld, until: float, statuses: Counter) -> None:
    auth = {"Authorization": f"Bearer {world.token}"}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
        i = 0
        while time.monotonic() < until:
            path = ("/api/v1/calls", "/api/v1/leads", "/ready")[i % 3]
            i += 1
            async with http.get(world.node.url + path, headers=auth) as resp:
                await resp.read()
                statuses[resp.status] += 1
            await asyncio.sleep(0.05)  # paces the traffic: a steady trickle, not a flood


def _warnings(log_text: str) -> Counter:
    """The node's warnings and errors by message, ids and numbers blanked: why calls failed."""
    seen: Counter = Counter()
    for line in log_text.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("level") in ("warning", "error", "critical"):
            seen[re.sub(r"[0-9a-f-]{8,}|\d+", "#", str(entry.get("message", "")))[:120]] += 1
    return seen


async def _caller(world: FaultWorld, until: float, call_s: float, outcomes: Counter) -> None:
    while True:
        try:
            await place_call(world, call_s)
            outcomes["completed"] += 1
        except Exception as exc:  # noqa: BLE001 - counted and reported by the test
            outcomes[f"{type(exc).__name__}: {str(exc)[:80]}"] += 1
        if time.monotonic() >= until:
            return


async def test_fifty_concurrent_calls_leak_nothing(tmp_path, slow_mode):
    duration_s = 600.0 if slow_mode else 15.0
    call_s = 30.0 if slow_mode else 10.0
    world = await start_world(tmp_path, COACHLINE_DB_POOL_MAX="20",
                              COACHLINE_DB_CONNECT_TIMEOUT_S="5", COACHLINE_DB_COMMAND_TIMEOUT_S="30")
    try:
        async with aiohttp.ClientSession() as http:
            # Warm-up at full concurrency: first-use imports and caches, and the database and
            # Redis pools grown to what this load keeps open, are not leaks. Growth after it is.
            await asyncio.gather(*(place_call(world, 2) for _ in range(CONCURRENT_CALLS)))
            await poll(lambda: _no_live_calls(http, world), 30, what="the warm-up call to end")
            tasks_start = await _metric(http, world, "coachline_asyncio_tasks")
            fds_start, rss_start = world.node.open_fds(), world.node.rss_bytes()
            started = time.monotonic()
            until = started + duration_s
            outcomes: Counter = Counter()
            api: Counter = Counter()
            await asyncio.gather(
                _api_traffic(world, until, api),
                *(_caller(world, until, call_s, outcomes) for _ in range(CONCURRENT_CALLS)))
            elapsed = time.monotonic() - started
            await poll(lambda: _no_live_calls(http, world), 60, what="every call to end")
            rss_end = world.node.rss_bytes()

            async def settled() -> bool:
                tasks = await _metric(http, world, "coachline_asyncio_tasks")
                return tasks <= tasks_start + TASK_SLACK and world.node.open_fds() <= fds_start + FD_SLACK

            try:
                await poll(settled, 30, 0.5, "tasks and file descriptors back to their start")
            finally:
                tasks_end = await _metric(http, world, "coachline_asyncio_tasks")
                fds_end = world.node.open_fds()
                figures = {
                    "calls_concurrent": CONCURRENT_CALLS, "call_s": call_s,
                    "duration_s": round(elapsed, 1), "calls": sum(outcomes.values()),
                    "calls_failed": sum(n for k, n in outcomes.items() if k != "completed"),
                    "api_requests": sum(api.values()),
                    "5xx": sum(n for s, n in api.items() if s >= 500),
                    "rss_start_mb": round(rss_start / 2**20, 1), "rss_end_mb": round(rss_end / 2**20, 1),
                    "tasks_start": int(tasks_start), "tasks_end": int(tasks_end),
                    "fds_start": fds_start, "fds_end": fds_end,
                }
                print("SOAK_FIGURES " + json.dumps(figures, sort_keys=True))
        assert outcomes.keys() == {"completed"}, (outcomes, _warnings(world.node.log_text()))
        assert figures["5xx"] == 0, api
        # Generous: allocator arenas grow under 50 calls and are not all returned.
        assert rss_end <= rss_start * 1.5 + 64 * 2**20, figures
        assert "Task exception was never retrieved" not in world.node.log_text()
    finally:
        await stop_world(world)


async def _no_live_calls(http: aiohttp.ClientSession, world: FaultWorld) -> bool:
    return await _metric(http, world, "coachline_live_calls") == 0
