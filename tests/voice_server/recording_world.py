"""Shared set-up of the recording tests: an organization with people and a call, and a node."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import numpy as np
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from crm_core.auth.tokens import create_api_token
from crm_core.calls.records import NewCall, create_call
from media.frames import AudioFrame, Party
from storage.database import connect
from storage.keys import new_master_key
from voice_server.app import create_app
from voice_server.runtime import Runtime
from voice_server.settings import load_settings


@dataclass
class World:
    org_id: str
    team_a: str
    team_b: str
    rep: str
    other_rep: str
    manager_a: str
    manager_b: str
    admin: str
    call_id: str


async def make_world(conn, *, reps_review_own: bool = False) -> World:
    slug = uuid.uuid4().hex[:8]
    org = str(
        await conn.fetchval(
            "INSERT INTO organizations (name, slug, settings) VALUES ('Acme', $1, $2) RETURNING id",
            slug,
            {"reps_review_own_recordings": reps_review_own},
        )
    )
    team_a = str(
        await conn.fetchval("INSERT INTO teams (org_id, name) VALUES ($1, 'A') RETURNING id", org)
    )
    team_b = str(
        await conn.fetchval("INSERT INTO teams (org_id, name) VALUES ($1, 'B') RETURNING id", org)
    )

    async def user(name, role, team):
        return str(
            await conn.fetchval(
                "INSERT INTO users (org_id, email, name, role, team_id) VALUES ($1, $2, $3, $4, $5) RETURNING id",
                org,
                f"{name}@{slug}.test",
                name,
                role,
                team,
            )
        )

    rep = await user("rep", "rep", team_a)
    other_rep = await user("other", "rep", team_a)
    manager_a = await user("mgr-a", "manager", team_a)
    manager_b = await user("mgr-b", "manager", team_b)
    admin = await user("admin", "admin", None)
    call = await create_call(
        conn,
        NewCall(
            org,
            "simulator",
            "outbound",
            external_id=uuid.uuid4().hex,
            rep_id=rep,
            status="in-progress",
        ),
    )
    return World(org, team_a, team_b, rep, other_rep, manager_a, manager_b, admin, str(call["id"]))


def tone_frames(party: Party, seconds: float, *, value_at=None, rate=8000, frame_ms=20, start_ms=0):
    """Frames whose samples encode their own position, so tests can check alignment exactly."""
    n = rate * frame_ms // 1000
    for i in range(int(seconds * 1000 / frame_ms)):
        ts = start_ms + i * frame_ms
        base = (
            value_at(ts)
            if value_at
            else (ts // frame_ms) % 1000 + (1000 if party is Party.CUSTOMER else 0)
        )
        yield AudioFrame(np.full(n, base, np.int16), rate, party, ts)


def recording_env(database_url: str, redis_url: str, data_dir, **extra) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "COACHLINE_DATA_DIR": str(data_dir),
        "COACHLINE_RECORDING_KEY": f"k1:{new_master_key()}",
        "COACHLINE_RECORDING_CHUNK_S": "0.5",
        "COACHLINE_RECORDING_STALE_S": "2",
        "COACHLINE_RECORDING_STALL_S": "30",  # tests trigger stalls themselves
        "COACHLINE_LOG_FORMAT": "text",
        "COACHLINE_EVENT_BUS": "memory",
        **extra,
    }


@pytest_asyncio.fixture(loop_scope="session")
async def db(migrated_database):
    conn = await connect(migrated_database)
    yield conn
    await conn.close()


async def bearer(conn, user_id: str) -> dict[str, str]:
    """Authorization for a user: a real API token of the CRM's auth (crm_core.auth)."""
    org_id = await conn.fetchval("SELECT org_id FROM users WHERE id = $1", uuid.UUID(user_id))
    issued = await create_api_token(
        conn,
        org_id=org_id,
        user_id=user_id,
        name="test",
        scopes=["read", "write", "recordings:listen"],
        expires_at=None,
    )
    return {"Authorization": f"Bearer {issued.token}"}


@pytest_asyncio.fixture(loop_scope="session")
async def node(migrated_database, redis_url, tmp_path, db):
    """A Coachline app with recording on, served on a test server."""
    settings = load_settings(recording_env(migrated_database, redis_url, tmp_path / "data"))
    runtime = await Runtime(settings).start()
    app = create_app(settings, runtime)
    client = TestClient(TestServer(app))
    await client.start_server()
    yield client, app
    await client.close()
    await runtime.close()
