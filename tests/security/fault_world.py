"""A ``coachline serve`` process on a PostgreSQL and a Redis of its own, for fault tests.

The fault and soak tests stop, kill and restart these servers and starve the
node's disk, so none of it is shared with other tests: each world starts its
own embedded PostgreSQL and Redis (the same ``LocalPostgres``/``LocalRedis``
the suite uses) under a temporary directory and tears everything down after.
Calls are placed with the carrier simulator (``simulate_call``), as a carrier
would: signed webhooks, a paced Twilio media stream, a signed status callback.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import uuid
import wave
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import asyncpg
import numpy as np

from crm_core.auth.passwords import hash_password
from storage.local_servers import LocalPostgres, LocalRedis
from tests.polling import eventually
from tests.voice_server.coachline_nodes import (
    OUR_NUMBER,
    REP_PASSWORD,
    REPO_ROOT,
    TWILIO_TOKEN,
    CoachlineNode,
    Tenant,
    create_tenant,
    node_env,
    sign_in,
)
from voice_server.simulator.carrier.call import SimulatedCall, SimulationReport, simulate_call

# Every timeout the node applies to one database step, kept short so a stall in default
# mode outlasts all of them (the node's defaults are longer; the mapping is the same).
DB_TIMEOUT_S = 2.0


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # the command name is in parentheses and may hold spaces: the ppid follows the last ')'
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry))
    return found


class PrivatePostgres:
    """A LocalPostgres this test may stop, kill and restart."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.server = LocalPostgres(data_dir)

    def start(self) -> None:
        self.server = LocalPostgres(self.data_dir)
        self.server.start()

    @property
    def dsn(self) -> str:
        return self.server.dsn

    def processes(self) -> list[int]:
        """The postmaster and its children (backends, checkpointer, walwriter...)."""
        pid_file = self.server.pgdata / "postmaster.pid"
        try:
            postmaster = int(pid_file.read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return []
        return [postmaster, *_children(postmaster)]

    def signal_all(self, signum: int) -> list[int]:
        pids = self.processes()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)
        return pids

    def kill(self) -> None:
        """SIGKILL every server process (as the OOM killer or a lost container would)."""
        pids = self.signal_all(signal.SIGKILL)
        for pid in pids:
            _wait_gone(pid)
        # Where nothing reaps the orphaned postmaster (a container's PID 1 may not), its
        # zombie keeps the PID in its lock files alive to pg_ctl and PostgreSQL: they must go.
        (self.server.pgdata / "postmaster.pid").unlink(missing_ok=True)
        for lock in self.server.socket_dir.glob(".s.PGSQL.*.lock"):
            lock.unlink(missing_ok=True)

    def stop(self) -> None:
        self.signal_all(signal.SIGCONT)  # a stopped server would not hear pg_ctl
        with contextlib.suppress(Exception):
            self.server.stop()


class PrivateRedis:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.server = LocalRedis(data_dir)

    def start(self) -> None:
        self.server = LocalRedis(self.data_dir)
        self.server.start()

    @property
    def url(self) -> str:
        return self.server.url

    def kill(self) -> None:
        process = self.server._process
        assert process is not None
        process.kill()
        process.wait(10)
        self.server.owned = False
        self.server._process = None

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.server.stop()


def _wait_gone(pid: int, timeout_s: float = 10.0) -> None:
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return  # a zombie holds nothing; its parent reaps it
        except OSError:
            return
        time.sleep(0.05)
    raise AssertionError(f"process {pid} still alive after SIGKILL")


def _ignore_sigxfsz() -> None:
    # Inherited across exec: a write past RLIMIT_FSIZE then fails with EFBIG instead of
    # killing the process, as a full disk fails with ENOSPC.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


class FaultNode(CoachlineNode):
    """A node started with SIGXFSZ ignored, so the tests can cap its file size (disk full)."""

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self.env,
               "COACHLINE_NODE_ID": self.node_id, "COACHLINE_DATA_DIR": str(self.data_dir),
               "COACHLINE_PORT": str(self.port), "COACHLINE_HOST": "127.0.0.1",
               "COACHLINE_PUBLIC_URL": self.url}
        with open(self.data_dir / "node.log", "ab") as log:
            # preexec_fn makes one signal() call before exec: safe despite the test's threads.
            self.process = subprocess.Popen(
                [sys.executable, "-m", "voice_server.cli", "serve"], cwd=REPO_ROOT, env=env,
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                preexec_fn=_ignore_sigxfsz)  # noqa: PLW1509

    def log_text(self) -> str:
        try:
            return (self.data_dir / "node.log").read_text(errors="replace")
        except OSError:
            return ""

    def rss_bytes(self) -> int:
        assert self.process is not None
        with open(f"/proc/{self.process.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS")

    def open_fds(self) -> int:
        assert self.process is not None
        return len(os.listdir(f"/proc/{self.process.pid}/fd"))


@dataclass
class FaultWorld:
    root: Path
    postgres: PrivatePostgres
    redis: PrivateRedis
    tenant: Tenant
    node: FaultNode
    token: str = ""
    tasks: list[asyncio.Task] = field(default_factory=list)

    def background(self, coro) -> asyncio.Task:
        """A task of the test's (a call), cancelled when the world stops if still running."""
        task = asyncio.create_task(coro)
        self.tasks.append(task)
        return task

    @property
    def recordings_dir(self) -> Path:
        return self.node.data_dir / "recordings"

    async def db(self) -> asyncpg.Connection:
        return await asyncpg.connect(self.postgres.dsn)


ADMIN_EMAIL = "ada@acme.test"


async def add_admin(dsn: str, org_id: str) -> None:
    """An admin (who may play every recording), signing in with the rep's password."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            """INSERT INTO users (org_id, email, name, role, password_hash)
               VALUES ($1::uuid, $2, 'Ada Admin', 'admin', $3)""",
            org_id, ADMIN_EMAIL, hash_password(REP_PASSWORD))
    finally:
        await conn.close()


def write_tone_wav(path: Path, seconds: float, hz: float, rate: int = 8000) -> Path:
    """A quiet tone (speech is off: the audio only has to be there)."""
    t = np.arange(int(seconds * rate)) / rate
    pcm = (3000 * np.sin(2 * np.pi * hz * t)).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return path


def simulated_call(world: FaultWorld, seconds: float) -> SimulatedCall:
    root = world.root / "audio"
    root.mkdir(exist_ok=True)
    customer = root / f"customer-{seconds:g}.wav"
    rep = root / f"rep-{seconds:g}.wav"
    if not customer.exists():
        write_tone_wav(customer, seconds, 440)
        write_tone_wav(rep, seconds, 660)
    return SimulatedCall(carrier="twilio", server=world.node.url, rep_wav=rep,
                         customer_wav=customer, to_number=OUR_NUMBER,
                         twilio_auth_token=TWILIO_TOKEN, realtime=True,
                         external_id="CA" + uuid.uuid4().hex)


async def place_call(world: FaultWorld, seconds: float) -> SimulationReport:
    return await simulate_call(simulated_call(world, seconds))


async def start_world(root: Path, **extra_env: str) -> FaultWorld:
    postgres = PrivatePostgres(root / "postgres")
    redis = PrivateRedis(root / "redis")
    node: FaultNode | None = None
    try:
        await asyncio.to_thread(postgres.start)
        await asyncio.to_thread(redis.start)
        tenant = await create_tenant(postgres.dsn)
        env = node_env(tenant, redis.url, **{
            "COACHLINE_STT_ENABLED": "false", "COACHLINE_DB_POOL_MAX": "10",
            "COACHLINE_DB_CONNECT_TIMEOUT_S": str(DB_TIMEOUT_S),
            "COACHLINE_DB_COMMAND_TIMEOUT_S": str(DB_TIMEOUT_S),
            # the tests' own traffic is far above a starter plan's per-minute budget
            "COACHLINE_RATE_LIMIT_ENABLED": "false",
            "COACHLINE_RECORDING_STALE_S": "10",
            **extra_env})
        node = FaultNode("fault-node", root / "node", env)
        node.start()
        await node.wait_ready(120)
        world = FaultWorld(root, postgres, redis, tenant, node)
        await add_admin(postgres.dsn, tenant.org_id)
        async with aiohttp.ClientSession() as http:
            world.token = await sign_in(http, node, ADMIN_EMAIL)
        return world
    except BaseException:
        if node is not None:
            await node.stop(10)
        redis.stop()
        postgres.stop()
        raise


async def stop_world(world: FaultWorld) -> None:
    for task in world.tasks:
        task.cancel()
    await asyncio.gather(*world.tasks, return_exceptions=True)
    try:
        await world.node.stop(30)
    finally:
        world.redis.stop()
        world.postgres.stop()


async def api_get(http: aiohttp.ClientSession, world: FaultWorld, path: str) -> tuple[int, dict, dict]:
    """One authenticated API request: (status, JSON body or {}, headers)."""
    async with http.get(world.node.url + path,
                        headers={"Authorization": f"Bearer {world.token}"},
                        timeout=aiohttp.ClientTimeout(total=60)) as resp:
        try:
            body = await resp.json(content_type=None)
        except ValueError:
            body = {}
        return resp.status, body if isinstance(body, dict) else {"data": body}, dict(resp.headers)


async def poll(condition, timeout_s: float, interval_s: float = 0.1, what: str = "condition"):
    """Await ``condition()`` until it returns something truthy; returns it (or fails)."""
    return await eventually(condition, timeout_s, interval_s=interval_s, what=what)
