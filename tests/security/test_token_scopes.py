"""API token scopes bound what a token can do, and a token never mints more than it holds.

Every permission decision is role ∧ token scopes ∧ ownership ∧ tenant: the role's rights
narrowed by the scopes (``Principal.permissions``), reads and writes bounded per resource
(``Principal.may``), and a minted token's scopes within its creator's own.
"""

from __future__ import annotations

import pytest_asyncio

from crm_core.auth.principal import ALL_SCOPES, Principal, principal_for_user
from crm_core.auth.tokens import create_api_token
from media.frames import Party
from tests.voice_server.recording_world import db, make_world, node, tone_frames  # noqa: F401
from voice_server.app_keys import CALL_SESSIONS
from voice_server.call_session import CallInfo


async def _token(conn, user_id: str, *scopes: str) -> dict[str, str]:
    org_id = await conn.fetchval("SELECT org_id FROM users WHERE id = $1", user_id)
    issued = await create_api_token(
        conn, org_id=org_id, user_id=user_id, name="t", scopes=list(scopes), expires_at=None
    )
    return {"Authorization": f"Bearer {issued.token}"}


@pytest_asyncio.fixture(loop_scope="session")
async def recorded(node, db):  # noqa: F811
    client, app = node
    world = await make_world(db)
    sessions = app[CALL_SESSIONS]
    session = await sessions.open(CallInfo(world.call_id, world.org_id, "simulator", "outbound"))
    for frame in tone_frames(Party.CUSTOMER, 0.5):
        session.push_audio(frame)
    await sessions.close(world.call_id)
    return client, world


async def test_a_read_scoped_admin_token_does_not_download_recordings(recorded, db):  # noqa: F811
    client, world = recorded
    url = f"/api/v1/calls/{world.call_id}/recording"
    resp = await client.get(url, headers=await _token(db, world.admin, "read"))
    assert resp.status == 403, "the admin's role holds recordings:listen, the token's scopes do not"
    assert "recordings:listen" in (await resp.json())["error"]["message"]
    resp = await client.get(url + "/audit", headers=await _token(db, world.admin, "read"))
    assert resp.status == 403
    # the recordings resource scope alone does not carry the permission either
    assert (
        await client.get(url, headers=await _token(db, world.admin, "recordings:read"))
    ).status == 403
    # with the permission as a scope, and a scope reading recordings, the admin listens
    for scopes in (("read", "recordings:listen"), ("recordings:read", "recordings:listen")):
        resp = await client.get(url, headers=await _token(db, world.admin, *scopes))
        assert resp.status == 200, scopes
        await resp.read()
    # a permission without a reading scope reads nothing
    assert (
        await client.get(url, headers=await _token(db, world.admin, "recordings:listen"))
    ).status == 403


async def test_gdpr_export_and_erasure_need_a_scope_covering_them(recorded, db):  # noqa: F811
    client, world = recorded
    lead = str(
        await db.fetchval(
            "INSERT INTO leads (org_id, first_name) VALUES ($1, 'Ada') RETURNING id", world.org_id
        )
    )
    for scopes in (("leads:read",), ("leads:write", "leads:read"), ("privacy:read",)):
        resp = await client.post(
            f"/api/v1/leads/{lead}/erasure", headers=await _token(db, world.admin, *scopes)
        )
        assert resp.status == 403, scopes
    assert await db.fetchval("SELECT first_name FROM leads WHERE id = $1", lead) == "Ada"
    for scopes in (("leads:read",), ("write",)):
        resp = await client.get(
            f"/api/v1/leads/{lead}/export", headers=await _token(db, world.admin, *scopes)
        )
        assert resp.status == 403, scopes
    resp = await client.get(
        f"/api/v1/leads/{lead}/export", headers=await _token(db, world.admin, "privacy:read")
    )
    assert resp.status == 200


async def test_resource_scopes_bound_reads_and_writes(node, db):  # noqa: F811
    client, _app = node
    world = await make_world(db)
    leads_read = await _token(db, world.admin, "leads:read")
    assert (await client.get("/api/v1/leads", headers=leads_read)).status == 200
    assert (await client.get("/api/v1/me", headers=leads_read)).status == 200  # who am I: any token
    for path in (
        "/api/v1/deals",
        "/api/v1/calls",
        f"/api/v1/calls/{world.call_id}",
        "/api/v1/users",
        "/api/v1/activities",
        "/api/v1/api-tokens",
    ):
        resp = await client.get(path, headers=leads_read)
        assert resp.status == 403, path
        assert (await resp.json())["error"]["code"] == "insufficient_scope"
    resp = await client.post("/api/v1/leads", json={"first_name": "Eve"}, headers=leads_read)
    assert resp.status == 403
    leads_write = await _token(db, world.admin, "leads:write")
    resp = await client.post("/api/v1/leads", json={"first_name": "Eve"}, headers=leads_write)
    assert resp.status == 201
    assert (await client.get("/api/v1/leads", headers=leads_write)).status == 403
    resp = await client.post("/api/v1/deals", json={"name": "x"}, headers=leads_write)
    assert resp.status == 403
    # the live feed reads calls: a token without a calls-reading scope is refused at the upgrade
    for path in (f"/ws/calls/{world.call_id}", "/ws/live", "/ws/floor"):
        resp = await client.get(
            path,
            headers={
                **leads_read,
                "Connection": "Upgrade",
                "Upgrade": "websocket",
                "Sec-WebSocket-Version": "13",
                "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
            },
        )
        assert resp.status == 403, path


async def test_a_token_never_mints_scopes_its_creator_does_not_hold(node, db):  # noqa: F811
    client, _app = node
    world = await make_world(db)
    admin_token = await _token(db, world.admin, "read", "write", "api_tokens:manage")
    resp = await client.post(
        "/api/v1/api-tokens",
        headers=admin_token,
        json={"name": "escalate", "scopes": ["read", "write", "users:manage"]},
    )
    assert resp.status == 403, await resp.text()
    assert (await resp.json())["error"]["details"]["not_held"] == ["users:manage"]
    resp = await client.post(
        "/api/v1/api-tokens",
        headers=admin_token,
        json={"name": "escalate", "scopes": ["recordings:listen", "read"]},
    )
    assert resp.status == 403
    narrow = await _token(
        db, world.admin, "leads:read", "api_tokens:write", "api_tokens:read", "api_tokens:manage"
    )
    for scopes in (["read"], ["write"], ["leads:write"], ["deals:read"], ["transcripts:raw"]):
        resp = await client.post(
            "/api/v1/api-tokens", headers=narrow, json={"name": "widen", "scopes": scopes}
        )
        assert resp.status == 403, scopes
    # within what it holds, minting works, for itself or another user of the organization
    resp = await client.post(
        "/api/v1/api-tokens", headers=narrow, json={"name": "same", "scopes": ["leads:read"]}
    )
    assert resp.status == 201
    resp = await client.post(
        "/api/v1/api-tokens",
        headers=admin_token,
        json={"name": "for a rep", "scopes": ["read"], "user_id": world.rep},
    )
    assert resp.status == 201
    assert (
        await db.fetchval("SELECT count(*) FROM api_tokens WHERE name IN ('escalate', 'widen')")
        == 0
    )


def _principal(role: str, scopes: frozenset[str] | None) -> Principal:
    return principal_for_user(
        {"id": "u", "org_id": "o", "role": role}, via="api_token", scopes=scopes
    )


def test_grantable_scopes_are_within_the_role_and_the_scopes():
    assert _principal("admin", None).grantable_scopes() == ALL_SCOPES  # a session: the whole role
    assert _principal("manager", None).grantable_scopes() == ALL_SCOPES - {
        "transcripts:raw",
        "users:manage",
        "teams:manage",
        "api_tokens:manage",
        "webhooks:manage",
        "scoring:manage",
        "organization:manage",
        "pipelines:manage",
    }
    # a permission the role lacks is not granted by naming it as a scope
    rep = _principal("rep", frozenset({"read", "users:manage"}))
    assert "users:manage" not in rep.grantable_scopes() and not rep.has("users:manage")
    narrow = _principal("admin", frozenset({"leads:read", "api_tokens:manage"}))
    assert narrow.grantable_scopes() == {"leads:read", "api_tokens:manage"}
    assert (
        narrow.may("read", "leads")
        and not narrow.may("write", "leads")
        and not narrow.may("read", None)
    )
