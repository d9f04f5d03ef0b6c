"""``kill -9`` of a real ``coachline serve`` mid-call, then a restart on the same data directory.

The node runs its own PostgreSQL and Redis (no URLs set) and no COACHLINE_NODE_ID:
the node id it keeps in its data directory is what lets the restarted process
recognise the call and recording its previous process left open and finish them
during start-up, instead of waiting for the rows to go stale (or, for a call
without a recording, forever). Its embedded servers die with it, so nothing is
left running in between.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import asyncpg
import numpy as np
import pytest
from twilio.request_validator import RequestValidator

from storage.keys import parse_key_spec
from storage.local_servers import LocalPostgres
from storage.recording_store import LocalRecordingStore
from tests.security.test_embedded_servers import _processes_of, _wait_gone
from tests.voice_server.coachline_nodes import (
    TWILIO_TOKEN,
    CoachlineNode,
    Tenant,
    create_tenant,
    node_env,
    sign_in,
    voice_webhook,
)
from voice_server.simulator.carrier.media_players import TwilioStream
from voice_server.simulator.carrier.rest_fake import stream_from_twiml

pytestmark = pytest.mark.timeout(600)

CHUNK_BYTES = 16000  # 0.5 s of 8 kHz stereo PCM16 (COACHLINE_RECORDING_CHUNK_S=0.5)
RECOVERY_DEADLINE_S = 5.0


async def _poll(predicate, timeout_s: float, what: str, node: CoachlineNode):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        value = await predicate()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}:\n{node.log_tail()}")
        await asyncio.sleep(0.05)


async def _embedded_node(data_dir, **env: str) -> tuple[CoachlineNode, LocalPostgres, Tenant]:
    """A node (not started) on its own PostgreSQL/Redis in ``data_dir``, with no node id set."""
    # The node's own PostgreSQL, prepared with an organization and a rep before the node runs.
    setup = LocalPostgres(data_dir / "postgres").start()
    try:
        tenant = await create_tenant(setup.dsn)
    finally:
        setup.stop()
    node_settings = {
        k: v
        for k, v in node_env(tenant, "unused").items()
        if k not in ("DATABASE_URL", "REDIS_URL", "COACHLINE_EVENT_BUS")
    }
    node_settings.update(COACHLINE_STT_ENABLED="false", **env)
    # no COACHLINE_NODE_ID: the data directory's id
    return CoachlineNode("", data_dir, node_settings), setup, tenant


async def _start_stream(http: aiohttp.ClientSession, node: CoachlineNode, call_sid: str):
    """A Twilio call whose media stream is open and sending (never stopped): (call id, socket)."""
    async with await voice_webhook(http, node, call_sid) as resp:
        assert resp.status == 200, await resp.text()
        stream_url, params, _ = stream_from_twiml(await resp.text())
    tone = (np.sin(np.arange(8000 * 3) * 2 * np.pi * 440 / 8000) * 8000).astype(np.int16)
    messages = TwilioStream(params, call_sid, inbound=tone, outbound=tone, stop=False).messages()
    signature = RequestValidator(TWILIO_TOKEN).compute_signature(stream_url, {})
    ws = await http.ws_connect(
        node.ws_url + "/media/twilio", headers={"X-Twilio-Signature": signature}
    )
    for _, message in messages:
        await ws.send_str(message)
    return params["call_id"], ws


async def test_kill_9_mid_call_then_restart_finishes_the_call_and_recording_at_once(tmp_path):
    data_dir = tmp_path / "data"
    node, setup, tenant = await _embedded_node(
        data_dir,
        COACHLINE_RECORDING_CHUNK_S="0.5",
        COACHLINE_RECORDING_STALL_S="1",
        # the open row is renewed (with its durable length) every second
        COACHLINE_RECORDING_STALE_S="3",
        COACHLINE_RECORDING_REPS_REVIEW_OWN="true",
    )
    db: asyncpg.Connection | None = None
    try:
        node.start()
        await node.wait_ready()
        db = await asyncpg.connect(setup.dsn)  # the password kept in the data directory
        async with aiohttp.ClientSession() as http:
            call_id, ws = await _start_stream(http, node, "CArestart000000000000000000000001")

            async def durable_bytes():
                return await db.fetchval(
                    "SELECT byte_length FROM recordings WHERE call_id = $1::uuid"
                    " AND status = 'recording' AND byte_length >= $2",
                    call_id,
                    5 * CHUNK_BYTES,
                )

            # what the node has acknowledged as written: on disk and in its row
            acknowledged = await _poll(durable_bytes, 60, "the first chunks to be written", node)
            call = await db.fetchrow("SELECT status FROM calls WHERE id = $1::uuid", call_id)
            assert call["status"] == "in-progress"
            node.process.kill()
            node.process.wait()
            db.terminate()  # its server died with the node
            db = None
            await ws.close()
            left = _wait_gone(data_dir)
            assert left == [], f"embedded servers outlived the killed node: {left}"

            # After the restart nothing but the node's own start-up recovery could finish the
            # recording in time: another node would wait for it to be 5 minutes stale.
            node.env["COACHLINE_RECORDING_STALE_S"] = "300"
            restarted_at = time.monotonic()
            node.start()
            await node.wait_ready()
            ready_at = time.monotonic()
            db = await asyncpg.connect(setup.dsn)

            async def finished():
                return await db.fetchrow(
                    "SELECT c.status AS call_status, c.ended_abnormally, c.ended_at,"
                    "       r.status AS recording_status, r.byte_length, r.id AS recording_id"
                    " FROM calls c JOIN recordings r ON r.call_id = c.id"
                    " WHERE c.id = $1::uuid AND r.status <> 'recording'"
                    "   AND c.status NOT IN ('queued', 'ringing', 'in-progress')",
                    call_id,
                )

            row = await _poll(
                finished, RECOVERY_DEADLINE_S, "the call and recording to be final", node
            )
            final_at = time.monotonic()
            token = await sign_in(http, node)
            async with http.get(
                f"{node.url}/api/v1/calls/{call_id}/recording",
                headers={"Authorization": f"Bearer {token}"},
            ) as resp:
                assert resp.status == 200, await resp.text()
                played = await resp.read()
        print(
            f"recovery: final {final_at - restarted_at:.2f} s after the restart began, "
            f"{final_at - ready_at:.2f} s after /ready"
        )

        assert row["call_status"] == "failed" and row["ended_abnormally"] and row["ended_at"]
        assert row["recording_status"] == "incomplete"
        assert row["byte_length"] >= acknowledged  # nothing acknowledged was lost
        store = LocalRecordingStore(data_dir / "recordings", parse_key_spec(tenant.recording_key))
        with store.open(row["recording_id"]) as reader:
            assert len(reader.read_all()) == row["byte_length"]
        assert len(played) >= row["byte_length"]  # the WAV: header and every recovered byte
    finally:
        if db is not None:
            await db.close()
        await node.stop(30)
    left = _wait_gone(data_dir)
    assert left == [], f"processes left after the node stopped: {left}"
    assert _processes_of(data_dir) == []


async def test_kill_9_mid_call_without_a_recording_then_restart_ends_the_call_at_once(tmp_path):
    """Recording off: only the call's own row says which node carried it."""
    data_dir = tmp_path / "data"
    node, setup, _ = await _embedded_node(data_dir, COACHLINE_RECORDING_ENABLED="false")
    db: asyncpg.Connection | None = None
    try:
        node.start()
        await node.wait_ready()
        db = await asyncpg.connect(setup.dsn)
        async with aiohttp.ClientSession() as http:
            call_id, ws = await _start_stream(http, node, "CArestart000000000000000000000002")

            async def answered():
                # set in the transaction that admitted the stream to this node
                return await db.fetchval(
                    "SELECT status = 'in-progress' FROM calls WHERE id = $1::uuid", call_id
                )

            await _poll(answered, 60, "the stream to be admitted", node)
            assert await db.fetchval("SELECT count(*) FROM recordings") == 0
            killed = node.process.pid
            node.process.kill()
            node.process.wait()
            db.terminate()  # its server died with the node
            db = None
            await ws.close()
            left = _wait_gone(data_dir)
            assert left == [], f"embedded servers outlived the killed node: {left}"
            assert _children_of(killed) == []

            restarted_at = time.monotonic()
            node.start()
            await node.wait_ready()
            ready_at = time.monotonic()
            db = await asyncpg.connect(setup.dsn)

            async def ended():
                return await db.fetchrow(
                    "SELECT status, ended_abnormally, ended_at, duration_s FROM calls"
                    " WHERE id = $1::uuid AND status NOT IN ('queued', 'ringing', 'in-progress')",
                    call_id,
                )

            row = await _poll(ended, RECOVERY_DEADLINE_S, "the call to be final", node)
            final_at = time.monotonic()
        print(
            f"recovery without a recording: final {final_at - restarted_at:.2f} s after the "
            f"restart began, {final_at - ready_at:.2f} s after /ready"
        )
        assert row["status"] == "failed" and row["ended_abnormally"]
        assert row["ended_at"] is not None and row["duration_s"] is not None
    finally:
        if db is not None:
            await db.close()
        await node.stop(30)
    left = _wait_gone(data_dir)
    assert left == [], f"processes left after the node stopped: {left}"


def _children_of(pid: int) -> list[int]:
    """Live processes whose parent is ``pid`` (a /proc scan)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(entry.name))
    return found
