"""Outages and bad requests leave a few readable log lines, not a traceback per event.

* Live calls publishing while the event bus's Redis is stopped: one warning when publishing
  starts failing and one when it works again, with the count of events dropped.
* A request aiohttp cannot parse: one WARNING line, no traceback, still redacted, as the
  node's own logging configuration prints it.
"""

from __future__ import annotations

import asyncio
import io
import logging
import sys
import uuid

import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestServer

from storage.event_bus_redis import RedisEventBus
from storage.local_servers import LocalRedis
from voice_server.call_session import CallInfo, CallSessions
from voice_server.live_calls import LiveCalls
from voice_server.logs import configure_logging


async def test_a_bus_outage_is_two_warnings_counting_the_dropped_events(tmp_path, caplog):
    redis = LocalRedis(tmp_path / "redis").start()
    client = aioredis.from_url(redis.url, socket_timeout=5, socket_connect_timeout=5)
    try:
        sessions = CallSessions(
            lambda: RedisEventBus(client, stream=f"noise:{uuid.uuid4().hex}"), LiveCalls()
        )
        calls = [
            await sessions.open(
                CallInfo(str(uuid.uuid4()), str(uuid.uuid4()), "simulator", "inbound")
            )
            for _ in range(2)
        ]
        redis.stop()
        with caplog.at_level(logging.INFO):
            for n in range(3):
                for call in calls:
                    await call.publish("call.test", {"n": n})
            redis = LocalRedis(tmp_path / "redis").start()
            await calls[0].publish("call.test", {"n": "after"})
        records = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert [r.exc_info for r in records] == [None, None], caplog.text
        assert "unavailable" in records[0].getMessage()
        assert "6 live event(s) were dropped" in records[1].getMessage()
    finally:
        await client.aclose()
        redis.stop()


async def test_a_malformed_request_is_one_warning_line_without_a_traceback():
    secret = "cl_noise_token_Hx4mQ9"

    async def ok(_request):
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/", ok)
    server = TestServer(app)
    await server.start_server()
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, sys.stderr)
    sys.stderr = stream
    try:
        configure_logging("INFO", "text")
        reader, writer = await asyncio.open_connection(server.host, server.port)
        writer.write(b"GET / HTTP/1.1\r\nHost: a\r\nAuthorization " + secret.encode() + b"\r\n\r\n")
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(4096), 10)
        writer.close()
        assert answer.split(b" ")[1] == b"400"
        for handler in root.handlers:
            handler.flush()
    finally:
        root.handlers[:], _, sys.stderr = saved
        root.setLevel(saved[1])
        await server.close()
    printed = stream.getvalue()
    lines = [line for line in printed.splitlines() if "aiohttp.server" in line]
    assert len(lines) == 1, printed
    assert "WARNING" in lines[0] and "malformed request refused" in lines[0], lines
    assert "[redacted]" in lines[0]
    assert "Traceback" not in printed and secret not in printed, printed
