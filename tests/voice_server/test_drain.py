"""Graceful drain of a real ``coachline serve`` process: SIGTERM during a live Twilio call.

The node must stop being ready at once, refuse new calls, keep serving the
stream it has until the call ends, persist the call's transcript and
recording, and exit 0.
"""

from __future__ import annotations

import asyncio

import aiohttp
import asyncpg
import numpy as np
import pytest

from tests.media.speech_corpus import load_clip, requires_corpus
from tests.voice_server.coachline_nodes import (
    FRAME_MS,
    TWILIO_TOKEN,
    CoachlineNode,
    create_database,
    create_tenant,
    drop_database,
    node_env,
    send_paced,
    speech,
    start_nodes,
    voice_webhook,
)
from voice_server.simulator.carrier.media_players import TwilioStream
from voice_server.simulator.carrier.rest_fake import stream_from_twiml
from voice_server.simulator.carrier.signing import twilio_socket_headers

pytestmark = [requires_corpus, pytest.mark.timeout(900)]

async def test_sigterm_mid_call_drains_the_call_and_refuses_new_ones(
        local_postgres, local_redis, tmp_path):
    dsn = await create_database(local_postgres)
    tenant = await create_tenant(dsn)
    node = CoachlineNode("node-drain", tmp_path / "node",
                         node_env(tenant, local_redis.url, COACHLINE_SHUTDOWN_GRACE_S="300"))
    try:
        await start_nodes([node])
        async with aiohttp.ClientSession() as http:
            call_sid = "CAdrain0000000000000000000000001"
            async with await voice_webhook(http, node, call_sid) as resp:
                assert resp.status == 200, await resp.text()
                stream_url, params, _ = stream_from_twiml(await resp.text())
            call_id = params["call_id"]
            # The customer says one thing before the node is told to stop, another after.
            customer = speech("hello-world", "conf-full")
            before_sigterm_ms = (len(load_clip("hello-world")) + 8_000) // 8
            messages = TwilioStream(params, call_sid, inbound=customer).messages()
            first = [m for m in messages if m[0] * FRAME_MS < before_sigterm_ms]
            rest = messages[len(first):]

            signed = twilio_socket_headers(TWILIO_TOKEN, stream_url)
            async with http.ws_connect(node.ws_url + "/media/twilio", compress=0,
                                       headers=signed) as ws:
                loop = asyncio.get_running_loop()
                started = loop.time()
                await send_paced(ws, first, started)
                node.terminate()

                # Not ready at once (the stream keeps flowing meanwhile, paced as before).
                rest_task = asyncio.create_task(send_paced(ws, rest[:-1], started))
                for _ in range(300):
                    if await node.ready_status(http) == 503:
                        break
                    await asyncio.sleep(0.1)
                assert await node.ready_status(http) == 503, node.log_tail()
                # New calls go elsewhere: the voice webhook and a new media stream get 503.
                async with await voice_webhook(http, node, "CAdrain0000000000000000000000002") as r:
                    assert r.status == 503, await r.text()
                with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                    await http.ws_connect(node.ws_url + "/media/twilio", headers=signed)
                assert refused.value.status == 503

                await rest_task  # every remaining frame is still taken
                assert not ws.closed, "the node closed a live call while draining"
                assert node.process.poll() is None, "the node exited before its call ended"
                await ws.send_str(rest[-1][1])  # Twilio's "stop": the call ends
                await ws.close()

        assert await node.wait_exit(timeout_s=240) == 0, node.log_tail()

        conn = await asyncpg.connect(dsn)
        try:
            segments = await conn.fetch(
                "SELECT party, text FROM transcript_segments WHERE call_id = $1::uuid "
                "ORDER BY start_ms", call_id)
            recordings = await conn.fetch(
                "SELECT status, duration_ms FROM recordings WHERE call_id = $1::uuid", call_id)
            call = await conn.fetchrow("SELECT status, ended_at FROM calls WHERE id = $1::uuid", call_id)
        finally:
            await conn.close()
        text = " ".join(r["text"] for r in segments).lower()
        # Words from before and after SIGTERM: nothing said during the drain was lost.
        assert "hello" in text and "conference" in text, (segments, node.log_tail())
        assert len(recordings) == 1 and recordings[0]["status"] == "complete", recordings
        # The whole call's audio is in the recording, up to its last frame.
        assert recordings[0]["duration_ms"] >= len(customer) // 8 - 500, recordings
        assert call["ended_at"] is not None, dict(call)
    finally:
        await node.stop(10)
        await drop_database(local_postgres, dsn)


async def test_a_call_still_live_when_the_grace_period_ends_is_closed_and_kept(
        local_postgres, local_redis, tmp_path):
    """The drain deadline wins over a call that will not end; what it said is still persisted."""
    dsn = await create_database(local_postgres)
    tenant = await create_tenant(dsn)
    node = CoachlineNode("node-grace", tmp_path / "node",
                         node_env(tenant, local_redis.url, COACHLINE_SHUTDOWN_GRACE_S="3"))
    try:
        await start_nodes([node])
        async with aiohttp.ClientSession() as http:
            call_sid = "CAgrace0000000000000000000000001"
            async with await voice_webhook(http, node, call_sid) as resp:
                assert resp.status == 200, await resp.text()
                stream_url, params, _ = stream_from_twiml(await resp.text())
            call_id = params["call_id"]
            # Speech, then a long silence the carrier keeps streaming: the call outlives the grace.
            customer = np.concatenate([speech("hello-world"), np.zeros(8000 * 120, np.int16)])
            messages = TwilioStream(params, call_sid, inbound=customer).messages()
            spoken = [m for m in messages if m[0] * FRAME_MS < len(speech("hello-world")) // 8]
            signed = twilio_socket_headers(TWILIO_TOKEN, stream_url)
            async with http.ws_connect(node.ws_url + "/media/twilio", compress=0,
                                       headers=signed) as ws:
                started = asyncio.get_running_loop().time()
                await send_paced(ws, spoken, started)
                node.terminate()
                sender = asyncio.create_task(send_paced(ws, messages[len(spoken):], started))
                # A carrier reads its socket too: it sees the node hang up when the grace ends.
                closed = await ws.receive(timeout=240)
                assert closed.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED), closed
                assert closed.data == aiohttp.WSCloseCode.GOING_AWAY, closed
                sender.cancel()
                await asyncio.gather(sender, return_exceptions=True)
                assert await node.wait_exit(timeout_s=240) == 0, node.log_tail()

        conn = await asyncpg.connect(dsn)
        try:
            text = " ".join(await conn.fetchval(
                "SELECT array_agg(text ORDER BY start_ms) FROM transcript_segments "
                "WHERE call_id = $1::uuid", call_id) or []).lower()
            recording = await conn.fetchrow(
                "SELECT status, duration_ms FROM recordings WHERE call_id = $1::uuid", call_id)
            call = await conn.fetchrow("SELECT ended_at FROM calls WHERE id = $1::uuid", call_id)
        finally:
            await conn.close()
        assert "hello" in text, node.log_tail()
        assert recording is not None and recording["status"] in ("complete", "partial"), recording
        assert recording["duration_ms"] >= len(speech("hello-world")) // 8 - 500, recording
        assert call["ended_at"] is not None
        assert "still live after" in node.log_tail(200)
    finally:
        await node.stop(10)
        await drop_database(local_postgres, dsn)
