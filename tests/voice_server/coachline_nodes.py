"""Real ``coachline serve`` processes for the multi-node and drain tests.

Each node is its own operating-system process (``python -m voice_server.cli
serve``) with its own port, node id and data directory; all of them share one
PostgreSQL database and one Redis, as replicas on Kubernetes do.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import asyncpg
import numpy as np

from crm_core.auth.passwords import hash_password
from storage.keys import new_master_key
from storage.local_servers import LocalPostgres
from tests.media.speech_corpus import load_clip
from voice_server.simulator.carrier.signing import twilio_form

REPO_ROOT = Path(__file__).resolve().parents[2]
TWILIO_SID = "AC" + "0" * 32
TWILIO_TOKEN = "multinode-auth-token"
OUR_NUMBER = "+15550100000"
REP_EMAIL = "rita@acme.test"
REP_PASSWORD = "correct-horse-battery-staple"
FRAME_MS = 20
READY_TIMEOUT_S = 240.0  # two processes loading a speech model on a loaded 2-core machine


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Tenant:
    """The organization and its signed-up rep, created in the shared database."""

    dsn: str
    org_id: str
    rep_id: str
    recording_key: str


async def create_database(server: LocalPostgres) -> str:
    """A fresh, empty database on ``server`` (the nodes migrate it when they start)."""
    name = f"mn_{uuid.uuid4().hex[:16]}"
    admin = await asyncpg.connect(server.admin_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return server.dsn_for(name)


async def drop_database(server: LocalPostgres, dsn: str) -> None:
    name = dsn.split("/")[3].split("?")[0]
    admin = await asyncpg.connect(server.admin_dsn)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def create_tenant(dsn: str) -> Tenant:
    """Migrate, then add an organization and a rep who signs in with a password."""
    from storage.migrations import apply_migrations

    conn = await asyncpg.connect(dsn)
    try:
        await apply_migrations(conn)
        org = await conn.fetchval(
            "INSERT INTO organizations (name, slug) VALUES ('Acme', 'acme') RETURNING id")
        rep = await conn.fetchval(
            """INSERT INTO users (org_id, email, name, role, phone, password_hash)
               VALUES ($1, $2, 'Rita Rep', 'rep', '+15550100111', $3) RETURNING id""",
            org, REP_EMAIL, hash_password(REP_PASSWORD))
    finally:
        await conn.close()
    return Tenant(dsn, str(org), str(rep), f"k1:{new_master_key()}")


@dataclass
class CoachlineNode:
    """One ``coachline serve`` process; its log goes to ``<data_dir>/node.log``."""

    node_id: str
    data_dir: Path
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self.env,
               # no node id: the node keeps its own in its data directory
               **({"COACHLINE_NODE_ID": self.node_id} if self.node_id else {}),
               "COACHLINE_DATA_DIR": str(self.data_dir),
               "COACHLINE_PORT": str(self.port), "COACHLINE_HOST": "127.0.0.1",
               # Twilio signs over the URL it calls: here the node's own address.
               "COACHLINE_PUBLIC_URL": self.url}
        log = open(self.data_dir / "node.log", "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "voice_server.cli", "serve"], cwd=REPO_ROOT, env=env,
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = (self.data_dir / "node.log").read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    async def ready_status(self, http: aiohttp.ClientSession) -> int | None:
        try:
            async with http.get(self.url + "/ready", timeout=aiohttp.ClientTimeout(total=5)) as resp:
                return resp.status
        except (TimeoutError, aiohttp.ClientError):
            return None

    async def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        async with aiohttp.ClientSession() as http:
            while loop.time() < deadline:
                assert self.process is not None
                if self.process.poll() is not None:
                    raise AssertionError(f"node {self.node_id} exited with {self.process.returncode}:\n"
                                         + self.log_tail())
                if await self.ready_status(http) == 200:
                    return
                await asyncio.sleep(0.5)
        raise AssertionError(f"node {self.node_id} not ready after {timeout_s:.0f} s:\n" + self.log_tail())

    def terminate(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    async def wait_exit(self, timeout_s: float) -> int:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        assert self.process is not None
        while self.process.poll() is None:
            if loop.time() > deadline:
                raise AssertionError(f"node {self.node_id} still running after {timeout_s:.0f} s:\n"
                                     + self.log_tail())
            await asyncio.sleep(0.2)
        return self.process.returncode

    async def stop(self, timeout_s: float = 60.0) -> None:
        """SIGTERM, then SIGKILL if it will not go: never leave a process behind."""
        if self.process is None or self.process.poll() is not None:
            return
        self.terminate()
        try:
            await self.wait_exit(timeout_s)
        except AssertionError:
            self.process.kill()
            self.process.wait(10)


def node_env(tenant: Tenant, redis_url: str, **extra: str) -> dict[str, str]:
    return {
        "DATABASE_URL": tenant.dsn, "REDIS_URL": redis_url, "COACHLINE_EVENT_BUS": "redis",
        "COACHLINE_LOG_FORMAT": "text", "COACHLINE_DB_POOL_MAX": "5",
        "COACHLINE_TWILIO_ACCOUNT_SID": TWILIO_SID, "COACHLINE_TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
        "COACHLINE_TWILIO_CALLER_ID": OUR_NUMBER,
        "COACHLINE_CARRIER_NUMBERS": json.dumps({OUR_NUMBER: tenant.rep_id}),
        "COACHLINE_RECORDING_KEY": tenant.recording_key,
        # One decode worker and thread per node: the CI machine has two cores for everything.
        "COACHLINE_STT_WORKERS": "1", "COACHLINE_STT_THREADS": "1",
        **extra,
    }


async def start_nodes(nodes: list[CoachlineNode]) -> None:
    for node in nodes:
        node.start()
    try:
        await asyncio.gather(*(node.wait_ready() for node in nodes))
    except BaseException:
        await asyncio.gather(*(node.stop(10) for node in nodes))
        raise


async def add_org_with_user(dsn: str, slug: str, email: str, settings: dict) -> str:
    """Another organization (with ``settings``) and a rep in it who signs in with REP_PASSWORD."""
    conn = await asyncpg.connect(dsn)
    try:
        org = await conn.fetchval(
            "INSERT INTO organizations (name, slug, settings) VALUES ($1, $1, $2::jsonb) RETURNING id",
            slug, json.dumps(settings))
        await conn.execute(
            """INSERT INTO users (org_id, email, name, role, password_hash)
               VALUES ($1, $2, 'Other Rep', 'rep', $3)""", org, email, hash_password(REP_PASSWORD))
    finally:
        await conn.close()
    return str(org)


async def sign_in(http: aiohttp.ClientSession, node: CoachlineNode, email: str = REP_EMAIL) -> str:
    async with http.post(node.url + "/auth/token",
                         json={"email": email, "password": REP_PASSWORD}) as resp:
        assert resp.status == 200, await resp.text()
        return (await resp.json())["token"]


def speech(*clips: str) -> np.ndarray:
    """The clips one after another, 1.5 s of silence after each."""
    gap = np.zeros(12_000, np.int16)
    return np.concatenate([part for name in clips for part in (load_clip(name), gap)])


async def voice_webhook(http: aiohttp.ClientSession, node: CoachlineNode, call_sid: str):
    params = {"CallSid": call_sid, "AccountSid": "AC" + "0" * 32, "From": "+15557770000",
              "To": OUR_NUMBER, "Direction": "inbound", "CallStatus": "ringing"}
    path = "/carriers/twilio/voice"
    body, headers = twilio_form(TWILIO_TOKEN, node.url + path, params)
    return await http.post(node.url + path, data=body, headers=headers)


async def send_paced(ws, messages, started: float) -> None:
    """Each message in its 20 ms slot on the stream clock (as Twilio paces them)."""
    loop = asyncio.get_running_loop()
    for tick, message in messages:
        delay = started + tick * FRAME_MS / 1000 - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        await ws.send_str(message)
