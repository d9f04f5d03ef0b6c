"""Faults under load against a real ``coachline serve``: a stalled, killed or lost dependency
answers 503 (never 500), live calls keep their audio and recording, and the node recovers.

Each test has a PostgreSQL, a Redis and a node of its own (``fault_world``). The stall is
20 s under ``--slow``; by default it is shorter but still longer than every timeout the
node applies to the database (``DB_TIMEOUT_S`` for connect and statement, the readiness
probe, the API's admission queue), so the same paths fail the same way.
"""

from __future__ import annotations

import asyncio
import json
import resource
import signal
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Self

import aiohttp
import pytest
import pytest_asyncio

from tests.security.fault_world import (
    DB_TIMEOUT_S,
    FaultWorld,
    place_call,
    poll,
    start_world,
    stop_world,
)
from tests.voice_server.coachline_nodes import OUR_NUMBER, TWILIO_TOKEN
from voice_server.simulator.carrier.signing import twilio_form

pytestmark = pytest.mark.timeout(300)

RECOVERY_LIMIT_S = 10.0  # "within a few seconds" of the dependency coming back


class Traffic:
    """Workers sending API, carrier-webhook and WebSocket requests until stopped.

    Every answer is kept as (probe, status, finished at); a WebSocket upgrade that
    succeeds counts as 200.
    """

    PROBES = ("leads", "calls", "webhook", "websocket", "ready")

    def __init__(self, world: FaultWorld, workers: int = 3) -> None:
        self.world = world
        self.workers = workers
        self.answers: list[tuple[str, int, float]] = []
        self.bodies_503: list[tuple[dict, dict]] = []
        self.last_round: dict[str, int] = {}
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._http: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Self:
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
        self._tasks = [asyncio.create_task(self._worker(i)) for i in range(self.workers)]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)
        assert self._http is not None
        await self._http.close()

    async def _worker(self, offset: int) -> None:
        i = offset
        while not self._stop.is_set():
            probe = self.PROBES[i % len(self.PROBES)]
            i += 1
            status = await self.ask(probe)
            self.answers.append((probe, status, time.monotonic()))

    async def ask(self, probe: str) -> int:
        http, world = self._http, self.world
        assert http is not None
        url = world.node.url
        auth = {"Authorization": f"Bearer {world.token}"}
        if probe in ("leads", "calls"):
            request = http.get(f"{url}/api/v1/{probe}", headers=auth)
        elif probe == "ready":
            request = http.get(f"{url}/ready")
        elif probe == "webhook":
            params = {"CallSid": "CA" + uuid.uuid4().hex, "AccountSid": "AC" + "0" * 32,
                      "From": "+15557770000", "To": OUR_NUMBER, "Direction": "inbound",
                      "CallStatus": "ringing"}
            path = "/carriers/twilio/voice"
            body, headers = twilio_form(TWILIO_TOKEN, url + path, params)
            request = http.post(url + path, data=body, headers=headers)
        else:
            try:
                async with http.ws_connect(f"{world.node.ws_url}/ws/live?access_token={world.token}"):
                    return 200
            except aiohttp.WSServerHandshakeError as exc:
                return exc.status
        async with request as resp:
            if resp.status == 503 and probe != "ready":
                self.bodies_503.append((await resp.json(content_type=None), dict(resp.headers)))
            else:
                await resp.read()
            return resp.status

    def statuses(self, since: float = 0.0, until: float = float("inf")) -> Counter:
        return Counter(s for _p, s, at in self.answers if since <= at <= until)


async def _all_answer_200(traffic: Traffic) -> bool:
    statuses = await asyncio.gather(*(traffic.ask(p) for p in Traffic.PROBES))
    traffic.last_round = dict(zip(Traffic.PROBES, statuses, strict=True))
    return all(s == 200 for s in statuses)


async def _recovery_s(traffic: Traffic, since: float) -> float:
    try:
        await poll(lambda: _all_answer_200(traffic), RECOVERY_LIMIT_S, 0.1,
                   "every probe answering 200 again")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last answers {traffic.last_round}:\n"
                             + traffic.world.node.log_tail(40)) from None
    return time.monotonic() - since


def _recording_files(world: FaultWorld) -> list[Path]:
    return [p for p in world.recordings_dir.rglob("*") if p.is_file()]


async def _recording_started(world: FaultWorld) -> bool:
    return any(p.stat().st_size > 4096 for p in _recording_files(world))


def _assert_clean_log(world: FaultWorld) -> None:
    text = world.node.log_text()
    assert "Task exception was never retrieved" not in text, world.node.log_tail(80)
    assert "unhandled error" not in text, world.node.log_tail(80)


def _assert_503_shape(traffic: Traffic) -> None:
    for body, headers in traffic.bodies_503:
        assert body["error"]["code"] in ("service_unavailable", "api_overloaded"), body
        assert int(headers["Retry-After"]) >= 1, headers


async def _call_row(world: FaultWorld, call_id: str) -> dict:
    conn = await world.db()
    try:
        call = await conn.fetchrow("SELECT status FROM calls WHERE id = $1::uuid", call_id)
        recordings = await conn.fetch(
            "SELECT status, duration_ms, byte_length FROM recordings WHERE call_id = $1::uuid",
            call_id)
    finally:
        await conn.close()
    return {"call": dict(call), "recordings": [dict(r) for r in recordings]}


def _report(figures: dict) -> None:
    print("FAULT_FIGURES " + json.dumps(figures, sort_keys=True))


@pytest_asyncio.fixture
async def world(tmp_path: Path):
    world = await start_world(tmp_path)
    try:
        yield world
    finally:
        await stop_world(world)


async def test_a_stalled_database_answers_503_and_the_call_records_on(world, slow_mode):
    stall_s = 20.0 if slow_mode else 3 * DB_TIMEOUT_S
    call_s = stall_s + 12
    call = world.background(place_call(world, call_s))
    await poll(lambda: _recording_started(world), 30, what="the recording to start")
    async with Traffic(world) as traffic:
        await poll(lambda: _all_answer_200(traffic), 10, what="a healthy node before the fault")
        stalled_at = time.monotonic()
        world.postgres.signal_all(signal.SIGSTOP)
        try:
            await asyncio.sleep(stall_s)  # the fault's length, not a wait for a condition
        finally:
            world.postgres.signal_all(signal.SIGCONT)
        resumed_at = time.monotonic()
        recovery_s = await _recovery_s(traffic, resumed_at)
    report = await call
    during = traffic.statuses(stalled_at, resumed_at)
    statuses = traffic.statuses()
    assert 500 not in statuses and not any(500 < s < 503 or s > 503 for s in statuses), statuses
    assert during[503] > 0, during  # the fault was seen, and answered as a fault
    _assert_503_shape(traffic)
    row = await _call_row(world, report.call_id)
    assert row["call"]["status"] == "completed", row
    [recording] = row["recordings"]
    assert recording["status"] == "complete", recording
    assert recording["duration_ms"] >= (call_s - 1) * 1000, recording  # no gap while stalled
    _assert_clean_log(world)
    _report({"fault": "postgres_sigstop", "stall_s": stall_s, "requests": len(traffic.answers),
             "503": statuses[503], "500": statuses[500], "recovery_s": round(recovery_s, 2),
             "recording_ms": recording["duration_ms"]})


async def test_a_killed_database_answers_503_until_it_is_back(world):
    call_s = 20.0
    call = world.background(place_call(world, call_s))
    await poll(lambda: _recording_started(world), 30, what="the recording to start")
    async with Traffic(world) as traffic:
        await poll(lambda: _all_answer_200(traffic), 10, what="a healthy node before the fault")
        killed_at = time.monotonic()
        await asyncio.to_thread(world.postgres.kill)
        # Requests while it is down fail fast (refused): let some of them come in.
        await poll(lambda: _seen_503(traffic, killed_at), 20, what="a 503 while PostgreSQL is down")
        await asyncio.to_thread(world.postgres.start)
        restarted_at = time.monotonic()
        recovery_s = await _recovery_s(traffic, restarted_at)
    report = await call
    statuses = traffic.statuses()
    assert set(statuses) <= {200, 503}, statuses
    _assert_503_shape(traffic)
    row = await _call_row(world, report.call_id)
    assert row["call"]["status"] == "completed", row
    [recording] = row["recordings"]
    assert recording["status"] == "complete", recording
    assert recording["duration_ms"] >= (call_s - 1) * 1000, recording
    _assert_clean_log(world)
    _report({"fault": "postgres_sigkill", "requests": len(traffic.answers),
             "down_s": round(restarted_at - killed_at, 2), "503": statuses[503],
             "500": statuses[500], "recovery_s": round(recovery_s, 2)})


async def _seen_503(traffic: Traffic, since: float) -> bool:
    return traffic.statuses(since)[503] >= 3


async def test_a_lost_redis_keeps_the_call_and_answers_503_where_it_is_needed(world):
    call_s = 20.0
    call = world.background(place_call(world, call_s))
    await poll(lambda: _recording_started(world), 30, what="the recording to start")
    async with Traffic(world) as traffic:
        await poll(lambda: _all_answer_200(traffic), 10, what="a healthy node before the fault")
        killed_at = time.monotonic()
        await asyncio.to_thread(world.redis.kill)

        async def ready_says_503() -> bool:
            return await traffic.ask("ready") == 503

        await poll(ready_says_503, 10, what="/ready failing without Redis")
        await asyncio.sleep(3 * DB_TIMEOUT_S)  # the outage's length, not a wait for a condition
        assert sum(traffic.statuses(killed_at).values()) >= 10, traffic.statuses(killed_at)
        await asyncio.to_thread(world.redis.start)
        restarted_at = time.monotonic()
        recovery_s = await _recovery_s(traffic, restarted_at)
    report = await call
    statuses = traffic.statuses()
    assert set(statuses) <= {200, 503}, statuses
    _assert_503_shape(traffic)
    row = await _call_row(world, report.call_id)
    assert row["call"]["status"] == "completed", row
    [recording] = row["recordings"]
    assert recording["status"] == "complete", recording
    assert recording["duration_ms"] >= (call_s - 1) * 1000, recording
    _assert_clean_log(world)
    _report({"fault": "redis_sigkill", "requests": len(traffic.answers),
             "down_s": round(restarted_at - killed_at, 2), "503": statuses[503],
             "500": statuses[500], "recovery_s": round(recovery_s, 2)})


async def test_a_full_disk_ends_the_recording_incomplete_and_the_call_goes_on(world):
    """The recording store's disk fills mid-call (RLIMIT_FSIZE on the node: EFBIG, as ENOSPC)."""
    call_s = 12.0
    call = world.background(place_call(world, call_s))
    await poll(lambda: _recording_started(world), 30, what="the recording to start")
    [path] = _recording_files(world)
    pid = world.node.process.pid
    limits = resource.prlimit(pid, resource.RLIMIT_FSIZE)
    # No file of the node may grow past what the recording holds now (plus less than a chunk).
    resource.prlimit(pid, resource.RLIMIT_FSIZE, (path.stat().st_size + 1024, limits[1]))
    try:
        report = await call
    finally:
        resource.prlimit(pid, resource.RLIMIT_FSIZE, limits)
    assert world.node.process.poll() is None  # no crash
    row = await _call_row(world, report.call_id)
    assert row["call"]["status"] == "completed", row
    [recording] = row["recordings"]
    assert recording["status"] == "incomplete", recording
    assert 0 < recording["duration_ms"] < (call_s - 1) * 1000, recording
    # What was kept reads back whole: every byte the row claims is there and authenticates.
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{world.node.url}/api/v1/calls/{report.call_id}/recording",
                            headers={"Authorization": f"Bearer {world.token}"}) as resp:
            audio = await resp.read()
            assert resp.status == 200, audio[:300]
        assert len(audio) == 44 + recording["byte_length"]
        async with http.get(f"{world.node.url}/ready") as resp:
            assert resp.status == 200
    _report({"fault": "recording_disk_full", "recording_ms": recording["duration_ms"],
             "call_ms": int(call_s * 1000)})
