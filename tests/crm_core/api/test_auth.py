"""Signing in, cookies and CSRF, bearer tokens, API tokens and their scopes, create-admin."""

import uuid

from tests.crm_core.api_world import PASSWORD


async def _sign_in(world, email, password=PASSWORD, **extra):
    return await world.request("POST", "/auth/token", json={"email": email, "password": password, **extra})


async def test_sign_in_sets_cookies_and_returns_a_short_lived_bearer(world):
    org = await world.make_org()
    resp, body = await _sign_in(world, org.rep.email)
    assert resp.status == 200 and body["token"].startswith("cla_") and 0 < body["expires_in"] <= 900
    session = resp.cookies["coachline_session"]
    csrf = resp.cookies["coachline_csrf"]
    assert session["httponly"] and session["samesite"] == "Lax" and not session["secure"]
    assert not csrf["httponly"]

    resp, me = await world.request("GET", "/api/v1/me", headers={"Authorization": f"Bearer {body['token']}"})
    assert resp.status == 200 and (me["user_id"], me["role"]) == (org.rep.user_id, "rep")
    assert me["team_ids"] == [org.team_id] and me["permissions"] == []


async def test_wrong_password_and_missing_tokens_are_401(world):
    org = await world.make_org()
    resp, err = await _sign_in(world, org.rep.email, "wrong password!")
    assert (resp.status, err["error"]["code"]) == (401, "unauthenticated")
    resp, err = await _sign_in(world, "nobody@nowhere.test")
    assert resp.status == 401
    world.client.session.cookie_jar.clear()
    for headers in ({}, {"Authorization": "Bearer cl_not-a-token"}, {"Authorization": "Basic abc"},
                    {"Authorization": "Bearer cla_expired"}):
        resp, err = await world.request("GET", "/api/v1/leads", headers=headers)
        assert (resp.status, err["error"]["code"]) == (401, "unauthenticated"), headers
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")


async def test_cookie_writes_need_the_csrf_header(world):
    org = await world.make_org()
    resp, _ = await _sign_in(world, org.rep.email)
    csrf = resp.cookies["coachline_csrf"].value
    body = {"first_name": "Cookie"}
    # reads work with the cookie alone
    resp, _ = await world.request("GET", "/api/v1/leads")
    assert resp.status == 200
    resp, err = await world.request("POST", "/api/v1/leads", json=body)
    assert (resp.status, err["error"]["code"]) == (403, "csrf_failed")
    resp, err = await world.request("POST", "/api/v1/leads", json=body, headers={"X-CSRF-Token": "forged"})
    assert (resp.status, err["error"]["code"]) == (403, "csrf_failed")
    resp, lead = await world.request("POST", "/api/v1/leads", json=body, headers={"X-CSRF-Token": csrf})
    assert resp.status == 201 and lead["owner_id"] == org.rep.user_id

    # the page refreshes its bearer token with cookie + CSRF, and no body
    resp, err = await world.request("POST", "/auth/token")
    assert (resp.status, err["error"]["code"]) == (403, "csrf_failed")
    resp, fresh = await world.request("POST", "/auth/token", headers={"X-CSRF-Token": csrf})
    assert resp.status == 200 and fresh["token"].startswith("cla_")
    world.client.session.cookie_jar.clear()


async def test_logout_revokes_the_session_and_its_bearer_tokens(world):
    org = await world.make_org()
    resp, body = await _sign_in(world, org.manager.email)
    csrf = resp.cookies["coachline_csrf"].value
    bearer = {"Authorization": f"Bearer {body['token']}"}
    assert (await world.request("GET", "/api/v1/me", headers=bearer))[0].status == 200
    resp, _ = await world.request("POST", "/auth/logout", headers={"X-CSRF-Token": csrf})
    assert resp.status == 204
    world.client.session.cookie_jar.clear()
    resp, _ = await world.request("GET", "/api/v1/me", headers=bearer)
    assert resp.status == 401


async def test_api_tokens_are_shown_once_hashed_scoped_and_revocable(world):
    org = await world.make_org()
    resp, created = await world.request("POST", "/api/v1/api-tokens", as_=org.admin,
                                        json={"name": "reporting", "scopes": ["read"]})
    assert resp.status == 201 and created["token"].startswith(created["token_prefix"])
    async with world.pool.acquire() as conn:
        stored = await conn.fetchrow("SELECT * FROM api_tokens WHERE id = $1", created["id"])
    assert created["token"].encode() not in bytes(stored["token_hash"])
    reader = {"Authorization": f"Bearer {created['token']}"}
    resp, _ = await world.request("GET", "/api/v1/leads", headers=reader)
    assert resp.status == 200
    resp, err = await world.request("POST", "/api/v1/leads", headers=reader, json={"first_name": "X"})
    assert (resp.status, err["error"]["code"]) == (403, "insufficient_scope")
    _, listed = await world.request("GET", "/api/v1/api-tokens", as_=org.admin)
    assert all("token" not in t for t in listed["data"])
    resp, _ = await world.request("DELETE", f"/api/v1/api-tokens/{created['id']}", as_=org.admin)
    assert resp.status == 204
    resp, _ = await world.request("GET", "/api/v1/leads", headers=reader)
    assert resp.status == 401

    resp, err = await world.request("POST", "/api/v1/api-tokens", as_=org.admin,
                                    json={"name": "x", "scopes": ["root"]})
    assert (resp.status, err["error"]["code"]) == (422, "invalid_scopes")
    resp, err = await world.request("POST", "/api/v1/api-tokens", as_=org.manager, json={"name": "x"})
    assert resp.status == 403


async def test_expired_api_token_is_401(world):
    org = await world.make_org()
    _, created = await world.request("POST", "/api/v1/api-tokens", as_=org.admin,
                                     json={"name": "old", "expires_at": "2020-01-01T00:00:00Z"})
    resp, _ = await world.request("GET", "/api/v1/me", headers={"Authorization": f"Bearer {created['token']}"})
    assert resp.status == 401


async def test_deactivated_users_lose_access(world):
    org = await world.make_org()
    resp, _ = await world.request("DELETE", f"/api/v1/users/{org.rep.user_id}", as_=org.admin)
    assert resp.status == 204
    resp, _ = await world.request("GET", "/api/v1/me", as_=org.rep)
    assert resp.status == 401
    resp, err = await world.request("DELETE", f"/api/v1/users/{org.admin.user_id}", as_=org.admin)
    assert (resp.status, err["error"]["code"]) == (403, "self_lockout")


async def test_users_and_teams_are_managed_by_admins(world):
    org = await world.make_org()
    resp, team = await world.request("POST", "/api/v1/teams", as_=org.admin, json={"name": "West"})
    assert resp.status == 201
    resp, err = await world.request("POST", "/api/v1/teams", as_=org.admin, json={"name": "West"})
    assert (resp.status, err["error"]["code"]) == (409, "duplicate_name")
    resp, user = await world.request("POST", "/api/v1/users", as_=org.admin, json={
        "email": "New.Rep@Example.com", "name": "New Rep", "role": "rep", "team_id": team["id"],
        "password": "a long enough password"})
    assert resp.status == 201 and user["email"] == "new.rep@example.com"
    resp, err = await world.request("POST", "/api/v1/users", as_=org.admin, json={
        "email": "new.rep@example.com", "name": "Again"})
    assert (resp.status, err["error"]["code"]) == (409, "duplicate_email")
    resp, _ = await world.request("POST", "/auth/token", json={
        "email": "new.rep@example.com", "password": "a long enough password"})
    assert resp.status == 200
    world.client.session.cookie_jar.clear()
    resp, user = await world.request("PATCH", f"/api/v1/users/{user['id']}", as_=org.admin,
                                     json={"role": "manager"})
    assert user["role"] == "manager"
    for person in (org.manager, org.rep):
        resp, _ = await world.request("POST", "/api/v1/teams", as_=person, json={"name": f"T{uuid.uuid4()}"})
        assert resp.status == 403
        resp, _ = await world.request("PATCH", f"/api/v1/users/{org.rep.user_id}", as_=person,
                                      json={"role": "admin"})
        assert resp.status == 403
    _, users = await world.request("GET", "/api/v1/users", as_=org.rep, params={"role": "manager"})
    assert {u["email"] for u in users["data"]} == {org.manager.email, "new.rep@example.com"}
    resp, renamed = await world.request("PATCH", f"/api/v1/teams/{team['id']}", as_=org.admin,
                                        json={"name": "Far West"})
    assert renamed["name"] == "Far West"
    resp, _ = await world.request("GET", f"/api/v1/teams/{team['id']}", as_=org.rep)
    assert resp.status == 200
    resp, _ = await world.request("DELETE", f"/api/v1/teams/{team['id']}", as_=org.admin)
    assert resp.status == 204


async def test_create_admin_lets_a_fresh_install_sign_in(world):
    from crm_core.auth.accounts import create_admin

    slug = f"fresh-{uuid.uuid4().hex[:6]}"
    async with world.pool.acquire() as conn:
        created = await create_admin(conn, email="Boss@Fresh.test", org_slug=slug, password="first password")
        again = await create_admin(conn, email="boss@fresh.test", org_slug=slug, password="second password")
    assert created.created_org and not again.created_org and again.user_id == created.user_id
    resp, _ = await _sign_in(world, "boss@fresh.test", "first password")
    assert resp.status == 401
    resp, body = await _sign_in(world, "boss@fresh.test", "second password", organization=slug)
    assert resp.status == 200
    world.client.session.cookie_jar.clear()
    _, me = await world.request("GET", "/api/v1/me", headers={"Authorization": f"Bearer {body['token']}"})
    assert me["role"] == "admin" and "users:manage" in me["permissions"]


async def test_create_admin_command(world, migrated_database, redis_url):
    import asyncio
    import os
    import sys

    env = {**os.environ, "DATABASE_URL": migrated_database, "REDIS_URL": redis_url,
           "COACHLINE_ADMIN_PASSWORD": "from the environment", "COACHLINE_LOG_FORMAT": "text"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "voice_server.cli", "create-admin", "--email", "root@cli.test", "--org", "cli-org",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()
    assert "organization created" in out.decode() and "password" not in out.decode()
    resp, _ = await _sign_in(world, "root@cli.test", "from the environment")
    assert resp.status == 200
    world.client.session.cookie_jar.clear()


async def test_query_tokens_are_for_handlers_that_opt_in_and_only_short_lived_ones(world):
    from aiohttp.test_utils import make_mocked_request

    from crm_core.api_context import CRM_API
    from crm_core.api_errors import Unauthenticated
    from crm_core.auth import authenticate

    org = await world.make_org()
    _, body = await _sign_in(world, org.rep.email)
    world.client.session.cookie_jar.clear()
    app = world.client.app

    def request(query):
        return make_mocked_request("GET", f"/live/feed?{query}", app=app)

    assert app[CRM_API] is not None
    principal = await authenticate(request(f"token={body['token']}"), allow_query_token=True)
    assert principal.user_id == org.rep.user_id and principal.via == "session"
    for query, allow in ((f"token={body['token']}", False), (f"access_token={org.rep.token}", True)):
        try:
            await authenticate(request(query), allow_query_token=allow)
        except Unauthenticated:
            pass
        else:
            raise AssertionError(query)


async def test_cookies_are_secure_when_the_node_is_served_over_tls(migrated_database, redis_url):
    from aiohttp.test_utils import TestClient, TestServer

    from crm_core.auth.accounts import create_admin
    from voice_server.app import create_app
    from voice_server.runtime import Runtime
    from voice_server.settings import load_settings

    settings = load_settings({"DATABASE_URL": migrated_database, "REDIS_URL": redis_url,
                              "COACHLINE_EVENT_BUS": "memory", "COACHLINE_COOKIE_SECURE": "true"})
    runtime = await Runtime(settings).start()
    client = TestClient(TestServer(create_app(settings, runtime)))
    await client.start_server()
    try:
        async with runtime.pool.acquire() as conn:
            await create_admin(conn, email="tls@x.test", org_slug="tls", password="a long password")
        resp = await client.post("/auth/token", json={"email": "tls@x.test", "password": "a long password"})
        assert resp.status == 200
        assert resp.cookies["coachline_session"]["secure"] and resp.cookies["coachline_csrf"]["secure"]
    finally:
        await client.close()
        await runtime.close()
