"""A Coachline node with the SIP edge enabled, on loopback, for the SIP tests and bench."""

from __future__ import annotations

import asyncio
import random
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import asyncpg
from aiohttp.test_utils import TestServer

from tests.voice_server.sipp_harness import FrameLog
from voice_server.app import create_app
from voice_server.app_keys import CALL_SESSIONS, SIP_EDGE
from voice_server.runtime import Runtime
from voice_server.settings import load_settings
from voice_server.transports.sip import SipEdge

REP_PHONE = "+1 (555) 123-0001"
REP_DIALLED = "15551230001"


@dataclass
class SipNode:
    app: object
    edge: SipEdge
    runtime: Runtime
    org_id: str
    rep_id: str
    logs: list[FrameLog] = field(default_factory=list)
    by_call: dict[str, FrameLog] = field(default_factory=dict)
    http_url: str = ""  # the node's HTTP server (webhooks, /auth/token, /ws/live)

    @property
    def port(self) -> int:
        return self.edge.port

    async def call_rows(self) -> list[asyncpg.Record]:
        async with self.runtime.pool.acquire() as conn:
            return await conn.fetch("SELECT * FROM calls ORDER BY created_at")

    async def eventually(self, check, timeout: float = 15.0):
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            result = await check()
            if result:
                return result
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError("condition not met in time")
            await asyncio.sleep(0.05)


@asynccontextmanager
async def sip_node(database_url: str, redis_url: str, **env: str):
    base = random.randrange(30000, 60000, 1000)
    settings = load_settings({
        "DATABASE_URL": database_url, "REDIS_URL": redis_url,
        "COACHLINE_EVENT_BUS": "memory", "COACHLINE_LOG_FORMAT": "text",
        "COACHLINE_SIP_ENABLED": "true", "COACHLINE_SIP_PORT": "0",
        "COACHLINE_RTP_PORT_MIN": str(base), "COACHLINE_RTP_PORT_MAX": str(base + 998),
        # SIP tests check signalling and media; a test that wants transcripts turns it on.
        "COACHLINE_STT_ENABLED": "false",
        **env,
    })
    runtime = await Runtime(settings).start()
    async with runtime.pool.acquire() as conn:
        org_id = str(await conn.fetchval(
            "INSERT INTO organizations (name, slug) VALUES ('Acme', 'acme') RETURNING id"))
        rep_id = str(await conn.fetchval(
            "INSERT INTO users (org_id, email, name, role, phone, sip_uri) "
            "VALUES ($1, 'alice@acme.test', 'Alice', 'rep', $2, 'sip:alice@pbx.acme.test') "
            "RETURNING id", org_id, REP_PHONE))
    app = create_app(settings, runtime)
    server = TestServer(app)
    await server.start_server()
    node = SipNode(app, app[SIP_EDGE], runtime, org_id, rep_id,
                   http_url=str(server.make_url("")).rstrip("/"))

    def observe(session):
        log = FrameLog()
        node.logs.append(log)
        node.by_call[session.call_id] = log
        return log

    app[CALL_SESSIONS].consumer_factories.append(observe)
    try:
        yield node
    finally:
        await server.close()
        await runtime.close()
