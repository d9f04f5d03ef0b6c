"""Secrets shown once (API tokens, webhook signing secrets) never rest in the Idempotency-Key
replay cache: the stored first response holds null instead, a replay says it was redacted and
still names what was created, and migration 0015 purges the secrets stored before."""

import json
import uuid

import asyncpg

from storage.migrations import load_migrations
from tests.crm_core.conftest import world

FIXTURES = (world,)  # the running app of tests/crm_core, used here as a fixture

REPLAY_BODY_TABLES_SKIPPED = {"schema_migrations"}


async def _tables_holding(pool, secret: str) -> set[str]:
    """Every table with a row whose text form contains ``secret``."""
    async with pool.acquire() as conn:
        tables = [r["tablename"] for r in await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
        found = set()
        for table in tables:
            if table in REPLAY_BODY_TABLES_SKIPPED:
                continue
            if await conn.fetchval(f'SELECT count(*) FROM "{table}" t WHERE strpos(t::text, $1) > 0', secret):
                found.add(table)
    return found


async def test_an_api_token_is_never_stored_and_a_replay_is_redacted(world):
    org = await world.make_org()
    key = {"Idempotency-Key": f"token-{uuid.uuid4()}"}
    body = {"name": "ci", "scopes": ["read"]}
    resp, first = await world.request("POST", "/api/v1/api-tokens", as_=org.admin, json=body, headers=key)
    assert resp.status == 201 and first["token"].startswith("cl_")
    assert await _tables_holding(world.pool, first["token"]) == set()  # only its hash is kept
    resp, again = await world.request("POST", "/api/v1/api-tokens", as_=org.admin, json=body, headers=key)
    assert resp.status == 201 and resp.headers["Idempotent-Replayed"] == "true"
    assert resp.headers["Secret-Redacted"] == "token"
    assert again["token"] is None and again["id"] == first["id"]
    assert again["token_prefix"] == first["token_prefix"]
    # the one token made still works; the replay made no second one
    resp, _ = await world.request("GET", "/api/v1/me", headers={"Authorization": f"Bearer {first['token']}"})
    assert resp.status == 200
    _, listed = await world.request("GET", "/api/v1/api-tokens", as_=org.admin, params={"user_id": org.admin.user_id})
    assert [t["id"] for t in listed["data"] if t["name"] == "ci"] == [first["id"]]


async def test_webhook_signing_secrets_are_not_in_the_replay_cache(world):
    org = await world.make_org()
    key = {"Idempotency-Key": f"hook-{uuid.uuid4()}"}
    body = {"url": "https://hooks.example.com/replay"}
    resp, hook = await world.request("POST", "/api/v1/webhooks", as_=org.admin, json=body, headers=key)
    assert resp.status == 201 and hook["secret"].startswith("whsec_")
    rotate_key = {"Idempotency-Key": f"rotate-{uuid.uuid4()}"}
    resp, rotated = await world.request("POST", f"/api/v1/webhooks/{hook['id']}/rotate-secret", as_=org.admin,
                                        headers=rotate_key)
    assert resp.status == 200 and rotated["secret"].startswith("whsec_")
    # the endpoint's own row must hold its current secret to sign deliveries; nothing else may
    assert await _tables_holding(world.pool, hook["secret"]) == set()
    assert await _tables_holding(world.pool, rotated["secret"]) == {"webhook_endpoints"}
    for path, headers, first in (("/api/v1/webhooks", key, hook),
                                 (f"/api/v1/webhooks/{hook['id']}/rotate-secret", rotate_key, rotated)):
        resp, again = await world.request("POST", path, as_=org.admin, json=body if first is hook else None,
                                          headers=headers)
        assert resp.headers["Idempotent-Replayed"] == "true" and resp.headers["Secret-Redacted"] == "secret"
        assert again["secret"] is None and again["id"] == hook["id"]


async def test_the_migration_purges_secrets_stored_by_earlier_versions(migrated_database):
    migration = next(m for m in load_migrations() if m.name == "idempotency_secret_replays")
    conn = await asyncpg.connect(migrated_database)
    try:
        org = await conn.fetchval("INSERT INTO organizations (name, slug) VALUES ('m', $1) RETURNING id",
                                  f"m-{uuid.uuid4().hex[:8]}")
        user = await conn.fetchval("INSERT INTO users (org_id, email, name, role) VALUES ($1, 'a@m.test', 'a', "
                                   "'admin') RETURNING id", org)
        token, secret, rotated = "cl_" + uuid.uuid4().hex, "whsec_" + uuid.uuid4().hex, "whsec_" + uuid.uuid4().hex
        stored = [  # what earlier versions kept: the whole first response, secret included
            ("t", "/api/v1/api-tokens", 201, {"id": "1", "name": "ci", "token": token}),
            ("w", "/api/v1/webhooks", 201, {"id": "2", "url": "https://x.example", "secret": secret}),
            ("r", f"/api/v1/webhooks/{uuid.uuid4()}/rotate-secret", 200, {"id": "2", "secret": rotated}),
            ("e", "/api/v1/api-tokens", 422, {"error": {"code": "invalid_scopes", "message": "m", "details": None}}),
            ("l", "/api/v1/leads", 201, {"id": "3", "token": "not a secret here"}),
        ]
        for k, path, status, body in stored:
            await conn.execute(
                "INSERT INTO idempotency_keys (org_id, user_id, key, method, path, request_hash, status_code, "
                "response) VALUES ($1, $2, $3, 'POST', $4, 'h', $5, $6)", org, user, k, path, status, json.dumps(body))
        await conn.execute(migration.sql)
        after = {r["key"]: json.loads(r["response"]) for r in await conn.fetch(
            "SELECT key, response FROM idempotency_keys WHERE org_id = $1", org)}
        assert after["t"] == {"id": "1", "name": "ci", "token": None}
        assert after["w"] == {"id": "2", "url": "https://x.example", "secret": None}
        assert after["r"] == {"id": "2", "secret": None}
        assert after["e"] == stored[3][3] and after["l"] == stored[4][3]  # nothing else touched
        text = " ".join(r["response"] for r in await conn.fetch("SELECT response FROM idempotency_keys"))
        assert token not in text and secret not in text and rotated not in text
    finally:
        await conn.close()
