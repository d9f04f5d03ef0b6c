"""Credentials end when they should and travel only where they may: a password change ends
the user's other sign-ins and tokens; ``?access_token=`` authorises no write nor any JSON
read, only media GETs; unauthenticated requests are limited per client address (429 with
Retry-After) and their audit rows stay bounded, however many arrive."""

import uuid

import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from crm_core.auth.accounts import create_admin
from tests.crm_core.api_world import PASSWORD, ApiWorld
from tests.crm_core.conftest import world
from voice_server.app import create_app
from voice_server.runtime import Runtime
from voice_server.settings import load_settings

FIXTURES = (world,)  # the running app of tests/crm_core, used here as a fixture

NEW_PASSWORD = "a brand new passphrase"
UNAUTHENTICATED_PER_MIN = 5


async def _sign_in(world, email, password=PASSWORD) -> dict[str, str]:
    """A fresh browser sign-in: its session cookie, CSRF token and bearer access token."""
    resp = await world.client.post("/auth/token", json={"email": email, "password": password})
    body = await resp.json()
    assert resp.status == 200, body
    signed_in = {"session": resp.cookies["coachline_session"].value, "csrf": resp.cookies["coachline_csrf"].value,
                 "bearer": body["token"]}
    world.client.session.cookie_jar.clear()
    return signed_in


async def _works(world, *, bearer=None, session=None) -> bool:
    headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
    cookies = {"coachline_session": session} if session else None
    resp = await world.client.get("/api/v1/me", headers=headers, cookies=cookies)
    world.client.session.cookie_jar.clear()
    assert resp.status in (200, 401)
    return resp.status == 200


async def test_a_password_set_by_an_admin_ends_every_sign_in_and_token_of_the_user(world):
    org = await world.make_org()
    phone, laptop = await _sign_in(world, org.rep.email), await _sign_in(world, org.rep.email)
    resp, _ = await world.request("PATCH", f"/api/v1/users/{org.rep.user_id}", as_=org.admin,
                                  json={"password": NEW_PASSWORD})
    assert resp.status == 200
    for signed_in in (phone, laptop):
        assert not await _works(world, bearer=signed_in["bearer"])
        assert not await _works(world, session=signed_in["session"])
    assert not await _works(world, bearer=org.rep.token)  # the rep's API token too
    assert await _works(world, bearer=org.admin.token)  # the caller's own credential stays
    assert await _works(world, bearer=org.other_rep.token)  # nobody else is touched
    assert await _works(world, bearer=(await _sign_in(world, org.rep.email, NEW_PASSWORD))["bearer"])


async def test_changing_ones_own_password_keeps_only_the_current_session(world):
    org = await world.make_org()
    other = await _sign_in(world, org.admin.email)
    current = await _sign_in(world, org.admin.email)
    resp = await world.client.patch(f"/api/v1/users/{org.admin.user_id}", json={"password": NEW_PASSWORD},
                                    headers={"Authorization": f"Bearer {current['bearer']}"})
    assert resp.status == 200, await resp.text()
    assert await _works(world, bearer=current["bearer"]) and await _works(world, session=current["session"])
    assert not await _works(world, bearer=other["bearer"]) and not await _works(world, session=other["session"])
    assert not await _works(world, bearer=org.admin.token)


async def test_create_admin_resetting_a_password_ends_the_old_sign_ins(world):
    org = await world.make_org()
    before = await _sign_in(world, org.admin.email)
    async with world.pool.acquire() as conn:
        await create_admin(conn, email=org.admin.email, org_slug=org.slug, password=NEW_PASSWORD)
    assert not await _works(world, bearer=before["bearer"]) and not await _works(world, bearer=org.admin.token)


async def test_an_access_token_in_the_url_authorises_no_write_and_no_export(world):
    org = await world.make_org()
    lead = await world.create_lead(org.admin)
    admin = await _sign_in(world, org.admin.email)
    query = {"access_token": admin["bearer"]}
    for method, path in (("POST", f"/api/v1/leads/{lead['id']}/erasure"),
                         ("GET", f"/api/v1/leads/{lead['id']}/export"),
                         ("POST", "/api/v1/leads"), ("DELETE", f"/api/v1/leads/{lead['id']}"),
                         ("GET", "/api/v1/calls/00000000-0000-0000-0000-000000000000/recording/audit")):
        resp = await world.client.request(method, path, params=query, json={"first_name": "X"})
        assert resp.status == 401, (method, path, resp.status)
    resp, still = await world.request("GET", f"/api/v1/leads/{lead['id']}", as_=org.admin)
    assert resp.status == 200 and still["first_name"] == lead["first_name"]  # not erased
    # the same token in the header does what the URL could not
    resp = await world.client.post(f"/api/v1/leads/{lead['id']}/erasure",
                                   headers={"Authorization": f"Bearer {admin['bearer']}"})
    assert resp.status == 200


@pytest_asyncio.fixture(loop_scope="session")
async def limited(migrated_database, redis_url):
    """A node with a small budget for unauthenticated requests; each test is its own address."""
    settings = load_settings({
        "DATABASE_URL": migrated_database, "REDIS_URL": redis_url, "COACHLINE_EVENT_BUS": "memory",
        "COACHLINE_RATE_LIMIT_TRUST_FORWARDED_FOR": "true",
        "COACHLINE_RATE_LIMIT_UNAUTHENTICATED_PER_MIN": str(UNAUTHENTICATED_PER_MIN),
    })
    runtime = await Runtime(settings).start()
    client = TestClient(TestServer(create_app(settings, runtime)))
    await client.start_server()
    yield ApiWorld(client, runtime.pool, runtime.bus, {})
    await client.close()
    await runtime.close()


def _address() -> str:
    return f"203.0.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"


async def test_unauthenticated_requests_are_limited_per_address_not_signed_in_users(limited):
    org = await limited.make_org()
    client = limited.client
    for credentials in ({}, {"Authorization": "Bearer cla_wrong"}, {"Authorization": "Bearer cl_wrong"}):
        address = {"X-Forwarded-For": _address()}
        for _ in range(UNAUTHENTICATED_PER_MIN):
            resp = await client.get("/api/v1/leads", headers={**address, **credentials})
            assert resp.status == 401, credentials
        resp = await client.get("/api/v1/leads", headers={**address, **credentials})
        body = await resp.json()
        assert (resp.status, body["error"]["code"]) == (429, "rate_limited"), credentials
        assert int(resp.headers["Retry-After"]) >= 1
        # a signed-in user behind the same address carries on
        resp = await client.get("/api/v1/leads", headers={**address, **org.rep.auth})
        assert resp.status == 200


async def test_a_flood_of_anonymous_refusals_adds_a_bounded_number_of_audit_rows(limited):
    client = limited.client
    call = uuid.uuid4()
    address = _address()
    sent = 0
    for _ in range(3 * UNAUTHENTICATED_PER_MIN):  # with a forged token: the handler audits each
        resp = await client.get(f"/api/v1/calls/{call}/recording",
                                headers={"X-Forwarded-For": address, "Authorization": "Bearer cla_forged"})
        assert resp.status in (401, 429)
        sent += 1
    async with limited.pool.acquire() as conn:
        rows = await conn.fetch("SELECT ip, detail FROM audit_log WHERE org_id IS NULL AND action = 'recording.play'")
    assert len(rows) == 1  # one row for the source and minute, counting every refusal
    assert str(rows[0]["ip"]) == "127.0.0.1" and rows[0]["detail"]["count"] == sent
    # many sources: rows stop growing at the cap, the rest counted in one row
    from crm_core.recordings.rows import (
        ANONYMOUS_AUDIT_SOURCES_PER_WINDOW,
        AuditEntry,
        write_anonymous_denial,
    )

    async with limited.pool.acquire() as conn:
        for n in range(ANONYMOUS_AUDIT_SOURCES_PER_WINDOW + 20):
            await write_anonymous_denial(conn, AuditEntry(None, "recording.play", str(call), "denied",
                                                          ip=f"10.{n // 250}.{n % 250}.1"))
        total = await conn.fetchval("SELECT count(*) FROM audit_log WHERE org_id IS NULL")
        overflow = await conn.fetchval("SELECT (detail->>'count')::int FROM audit_log "
                                       "WHERE org_id IS NULL AND ip IS NULL")
    assert total == ANONYMOUS_AUDIT_SOURCES_PER_WINDOW + 1 and overflow == 21
