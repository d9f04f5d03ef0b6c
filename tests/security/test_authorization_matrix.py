# Long module: the authorization matrix is one table of expectations, its seeded world and its runner.
"""The authorization matrix: every operation × every kind of caller who must be refused.

The operations are read at test time from what the server serves: every operation of the
OpenAPI document it publishes (``/api/v1/openapi.json``, including the recording and GDPR
routes other areas register) and every route of the application's router outside /api/v1.
An operation without an expectation entry here fails the test, so a new endpoint cannot slip
past the matrix; routes that take no session (carrier webhooks, health, static pages) are
listed in ``NO_SESSION`` with the reason.

The callers: nobody (anonymous), another organization's admin, a rep who does not own the
records, a manager of another team, and an admin whose API token holds only ``leads:read``.
Every cell is a real request against a real app on a real PostgreSQL, answered as the
server's own document says (``ApiWorld.check_contract``). A refused request that would
change state must change nothing: every tenant table is compared before and after it.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import asyncpg
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from crm_core.auth.tokens import create_api_token
from crm_core.calls.records import NewCall, SegmentRow, add_final_segments, create_call
from media.frames import Party
from storage.migrations import apply_migrations
from tests.crm_core.api_world import ApiWorld, Org, Person
from tests.voice_server.recording_world import recording_env, tone_frames
from voice_server.app import create_app
from voice_server.app_keys import CALL_SESSIONS
from voice_server.call_session import CallInfo
from voice_server.runtime import Runtime
from voice_server.settings import load_settings

CALLERS = (
    "anonymous",
    "other_org_admin",
    "rep_not_owner",
    "manager_other_team",
    "narrow_token_admin",
)

# Expected answers. An int is the status; the markers below say more.
OWN_ORG_LIST = "own-org list"  # 200, and not one row of the victims' organization
NOT_THEIRS_LIST = "list without the victim's records"  # 200, none of the victim rep's records
OWN_ORG_WRITE = (
    "acts on its own organization"  # allowed, in its own org: the victims' rows unchanged
)
ALLOWED = "allowed"  # 2xx: within the caller's rights (e.g. the org's user directory)
WS_OWN_CALLS = "feed of own calls only"  # the socket opens, and lists none of the victim's calls
WS_FLOOR = "floor without the victim's calls"  # the floor opens, and lists none of them

# (anonymous, other org's admin, rep not owner, manager of another team, admin with a leads:read token)
RECORD = (401, 404, 404, 404, 403)  # another rep's record, out of reach: 404; the narrow token: 403
RECORD_NARROW_OK = (401, 404, 404, 404, ALLOWED)  # the same, in the narrow token's scope
ADMIN_RECORD = (
    401,
    404,
    403,
    403,
    403,
)  # admin-managed record: a missing permission is 403 before lookup
ADMIN_LIST = (401, OWN_ORG_LIST, 403, 403, 403)
ADMIN_CREATE = (401, OWN_ORG_WRITE, 403, 403, 403)
OWNED_LIST = (401, OWN_ORG_LIST, NOT_THEIRS_LIST, NOT_THEIRS_LIST, 403)
DIRECTORY_LIST = (
    401,
    OWN_ORG_LIST,
    ALLOWED,
    ALLOWED,
    403,
)  # users and teams: the whole org sees them
DIRECTORY_RECORD = (401, 404, ALLOWED, ALLOWED, 403)
LIVE_CALL = (401, 404, 404, 404, 403)

EXPECTED: dict[tuple[str, str], tuple[Any, ...]] = {
    # sign-in and sign-out (public: bad credentials are 401 whoever asks)
    ("POST", "/auth/token"): (401, 401, 401, 401, 401),
    ("POST", "/auth/logout"): (401, 400, 400, 400, 403),  # an API token is not a session
    # leads, their import jobs, their GDPR routes
    ("GET", "/api/v1/leads"): (401, OWN_ORG_LIST, NOT_THEIRS_LIST, NOT_THEIRS_LIST, ALLOWED),
    ("POST", "/api/v1/leads"): (401, 403, 403, 403, 403),  # owned by the victim rep: not assignable
    ("GET", "/api/v1/leads/{id}"): RECORD_NARROW_OK,
    ("PATCH", "/api/v1/leads/{id}"): RECORD,
    ("DELETE", "/api/v1/leads/{id}"): RECORD,
    ("POST", "/api/v1/leads/{id}/score"): RECORD,
    ("POST", "/api/v1/leads/{id}/convert"): RECORD,
    ("POST", "/api/v1/leads/{id}/merge"): RECORD,
    ("GET", "/api/v1/leads/{id}/duplicates"): RECORD_NARROW_OK,
    # per-item 404s for the victim's leads, the batch itself 200: victims' rows unchanged
    ("POST", "/api/v1/leads/batch"): (401, OWN_ORG_WRITE, OWN_ORG_WRITE, OWN_ORG_WRITE, 403),
    # each group as its list; the narrow token gets the leads group only
    ("GET", "/api/v1/search"): (401, OWN_ORG_LIST, NOT_THEIRS_LIST, NOT_THEIRS_LIST, ALLOWED),
    # other org's admin and the other team's manager import for themselves; the victim rep
    # named as owner is refused row by row
    ("POST", "/api/v1/leads/import"): (401, OWN_ORG_WRITE, 403, OWN_ORG_WRITE, 403),
    ("GET", "/api/v1/imports/{id}"): RECORD_NARROW_OK,
    ("GET", "/api/v1/leads/{lead_id}/export"): RECORD,
    ("POST", "/api/v1/leads/{lead_id}/erasure"): RECORD,
    # deals
    ("GET", "/api/v1/deals"): OWNED_LIST,
    ("POST", "/api/v1/deals"): RECORD,  # on the victim's lead
    ("GET", "/api/v1/deals/{id}"): RECORD,
    ("PATCH", "/api/v1/deals/{id}"): RECORD,
    ("DELETE", "/api/v1/deals/{id}"): RECORD,
    ("POST", "/api/v1/deals/{id}/predict"): RECORD,
    # calls and every sub-resource of a call
    ("GET", "/api/v1/calls"): OWNED_LIST,
    ("POST", "/api/v1/calls/outbound"): RECORD,  # dialling the victim's lead
    ("GET", "/api/v1/calls/{id}"): RECORD,
    ("GET", "/api/v1/calls/{id}/transcript"): RECORD,
    ("GET", "/api/v1/calls/{id}/prompts"): RECORD,
    ("GET", "/api/v1/calls/{call_id}/recording"): RECORD,
    ("GET", "/api/v1/calls/{call_id}/recording/audit"): RECORD,
    ("GET", "/api/v1/calls/{id}/comments"): RECORD,
    ("POST", "/api/v1/calls/{id}/comments"): RECORD,  # a comment on the victim's call
    ("DELETE", "/api/v1/calls/{id}/comments/{comment_id}"): RECORD,
    ("GET", "/api/v1/calls/{id}/caller"): RECORD,
    ("GET", "/api/v1/calls/{call_id}/recording/status"): RECORD,
    # activities
    ("GET", "/api/v1/activities"): OWNED_LIST,
    ("POST", "/api/v1/activities"): RECORD,  # a note on the victim's lead
    # users, teams
    ("GET", "/api/v1/me"): (401, ALLOWED, ALLOWED, ALLOWED, ALLOWED),
    ("GET", "/api/v1/users"): DIRECTORY_LIST,
    ("POST", "/api/v1/users"): (401, 404, 403, 403, 403),  # into the victims' team
    ("GET", "/api/v1/users/{id}"): DIRECTORY_RECORD,
    ("PATCH", "/api/v1/users/{id}"): ADMIN_RECORD,
    ("DELETE", "/api/v1/users/{id}"): ADMIN_RECORD,
    ("GET", "/api/v1/teams"): DIRECTORY_LIST,
    ("POST", "/api/v1/teams"): ADMIN_CREATE,
    ("GET", "/api/v1/teams/{id}"): DIRECTORY_RECORD,
    ("PATCH", "/api/v1/teams/{id}"): ADMIN_RECORD,
    ("DELETE", "/api/v1/teams/{id}"): ADMIN_RECORD,
    # pipelines: the whole org reads them, admins shape them
    ("GET", "/api/v1/pipelines"): DIRECTORY_LIST,
    ("POST", "/api/v1/pipelines"): ADMIN_CREATE,
    ("GET", "/api/v1/pipelines/{id}"): DIRECTORY_RECORD,
    ("PATCH", "/api/v1/pipelines/{id}"): ADMIN_RECORD,
    ("POST", "/api/v1/pipelines/{id}/stages"): ADMIN_RECORD,
    ("PATCH", "/api/v1/pipelines/{id}/stages/{stage_id}"): ADMIN_RECORD,
    ("DELETE", "/api/v1/pipelines/{id}/stages/{stage_id}"): ADMIN_RECORD,
    ("GET", "/api/v1/deals/{id}/stage-history"): RECORD,
    # figures over the deals each caller may see (tests/crm_core/api/test_pipeline_analytics.py
    # checks that a rep's figures leave out other reps' deals)
    ("GET", "/api/v1/analytics/pipeline"): (401, ALLOWED, ALLOWED, ALLOWED, 403),
    # API tokens
    ("GET", "/api/v1/api-tokens"): ADMIN_LIST,
    ("POST", "/api/v1/api-tokens"): (401, 404, 403, 403, 403),  # for the victim rep
    ("DELETE", "/api/v1/api-tokens/{id}"): ADMIN_RECORD,
    # webhooks
    ("GET", "/api/v1/webhooks"): ADMIN_LIST,
    ("POST", "/api/v1/webhooks"): ADMIN_CREATE,
    ("GET", "/api/v1/webhooks/{id}"): ADMIN_RECORD,
    ("PATCH", "/api/v1/webhooks/{id}"): ADMIN_RECORD,
    ("DELETE", "/api/v1/webhooks/{id}"): ADMIN_RECORD,
    ("POST", "/api/v1/webhooks/{id}/rotate-secret"): ADMIN_RECORD,
    ("GET", "/api/v1/webhooks/{id}/deliveries"): ADMIN_RECORD,
    # scoring (per organisation, no record ids: another org's admin sees and sets its own)
    ("GET", "/api/v1/scoring/lead-models"): ADMIN_LIST,
    ("POST", "/api/v1/scoring/lead-models"): ADMIN_CREATE,
    ("GET", "/api/v1/scoring/deal-models"): ADMIN_LIST,
    ("POST", "/api/v1/scoring/deal-models"): ADMIN_CREATE,
    ("GET", "/api/v1/scoring/icp"): (401, ALLOWED, 403, 403, 403),
    ("PUT", "/api/v1/scoring/icp"): ADMIN_CREATE,
    # organization settings, coaching rules, carrier numbers: admins of the organization only
    # (another org's admin acts on its own: no ids of org A reach it)
    ("GET", "/api/v1/organization"): (401, ALLOWED, 403, 403, 403),
    ("PATCH", "/api/v1/organization"): ADMIN_CREATE,
    ("GET", "/api/v1/coaching-rules"): (401, ALLOWED, 403, 403, 403),
    ("PUT", "/api/v1/coaching-rules"): ADMIN_CREATE,
    ("GET", "/api/v1/coaching-rules/versions"): ADMIN_LIST,
    ("POST", "/api/v1/coaching-rules/versions/{id}/restore"): ADMIN_RECORD,
    ("POST", "/api/v1/coaching-rules/preview"): ADMIN_CREATE,
    ("GET", "/api/v1/carrier-numbers"): ADMIN_LIST,
    ("POST", "/api/v1/carrier-numbers"): (401, 404, 403, 403, 403),  # routing to the victim rep
    ("DELETE", "/api/v1/carrier-numbers/{id}"): ADMIN_RECORD,
    # the live feed's WebSocket upgrades (session cookie, bearer or ?access_token=)
    ("GET", "/ws/calls/{call_id}"): LIVE_CALL,
    ("GET", "/feeds/calls/{call_id}"): LIVE_CALL,
    ("GET", "/ws/live"): (401, WS_OWN_CALLS, WS_OWN_CALLS, WS_OWN_CALLS, 403),
    # the live floor: managers (their teams' calls) and admins (their organization's); reps 403
    ("GET", "/ws/floor"): (401, WS_FLOOR, 403, WS_FLOOR, 403),
    # team analytics: a rep their own calls, a manager their teams', an admin the org's
    ("GET", "/api/v1/analytics/team"): OWNED_LIST,
    ("GET", "/api/v1/analytics/team/trends"): OWNED_LIST,
    ("GET", "/api/v1/analytics/team/calls"): OWNED_LIST,
}

# Root routes that take no session, and why they are outside the matrix.
NO_SESSION = {
    "/": "redirects to the sign-in page or the app shell; no data",
    "/login": "the sign-in page (static HTML)",
    "/admin": "redirects to the admin screens (/app/admin); no data",
    "/floor": "redirects to the live floor's page (/app/floor); no data",
    "/app": "the app shell (static HTML; its data comes from the API above)",
    "/app/{tail}": "the app shell (static HTML; its data comes from the API above)",
    "/static": "static assets",
    "/docs": "the API reference page (static HTML; the document it shows is public and holds no data)",
    "/docs/viewer/{name}": "the API reference viewer's script and stylesheet",
    "/live": "liveness probe, no data",
    "/ready": "readiness probe, no data",
    "/metrics": "Prometheus metrics, no tenant data",
    "/analytics": "redirects to the team analytics page (/app/analytics); no data",
    "/vendor/{name}": "third-party browser libraries (Chart.js); no data",
}
# Carrier webhooks and media sockets are authenticated by carrier signatures, not sessions.
NO_SESSION_PREFIXES = ("/carriers/", "/media/")

# Tables whose rows a refused request may still add to: refusals are audited, the outbox and
# idempotency cache are bookkeeping, and a token's last use is stamped on authentication.
_NOT_COMPARED = {"audit_log", "outbox", "idempotency_keys", "sessions"}
_COLUMNS_NOT_COMPARED = ("last_used_at",)


@dataclass
class Matrix:
    world: ApiWorld
    app: Any
    org_a: Org
    org_b: Org
    callers: dict[str, Person | None]
    owner_admin: Person  # org A's admin with a full token: the control that the records exist
    victim: Person  # the rep who owns the records
    ids: dict[str, str]  # path segment -> the org A record the matrix aims at
    victim_records: dict[str, str]  # table -> id of a row that belongs to the victim rep
    tenant_tables: list[str] = field(default_factory=list)
    cells: int = 0
    controls: int = 0


async def _database(local_postgres) -> str:
    name = f"t_{uuid.uuid4().hex[:16]}"
    admin = await asyncpg.connect(local_postgres.admin_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    dsn = local_postgres.dsn_for(name)
    conn = await asyncpg.connect(dsn)
    try:
        await apply_migrations(conn)
    finally:
        await conn.close()
    return name, dsn


async def _seed(world: ApiWorld, app) -> Matrix:
    org_a = await world.make_org("matrix-a")
    org_b = await world.make_org("matrix-b")
    async with world.pool.acquire() as conn:
        west = str(
            await conn.fetchval(
                "INSERT INTO teams (org_id, name) VALUES ($1, 'West') RETURNING id", org_a.id
            )
        )
        narrow = await create_api_token(
            conn,
            org_id=org_a.id,
            user_id=org_a.admin.user_id,
            name="narrow",
            scopes=["leads:read"],
            expires_at=None,
        )
    manager_west = await world.make_person(org_a.id, "manager", west, "west-manager@matrix-a.test")
    narrow_admin = Person(org_a.admin.user_id, org_a.id, "admin", org_a.admin.email, narrow.token)
    victim = org_a.rep

    # the victim rep's records, made through the API as the victim
    lead = await world.create_lead(victim, phone="+15550100", email="ada@example.com")
    deal = await world.create_deal(victim, lead_id=lead["id"])
    resp, note = await world.request(
        "POST",
        "/api/v1/activities",
        as_=victim,
        json={"lead_id": lead["id"], "text": "called, left a message"},
    )
    assert resp.status == 201, note
    async with world.pool.acquire() as conn:
        call = await create_call(
            conn,
            NewCall(
                org_a.id,
                "simulator",
                "outbound",
                external_id=uuid.uuid4().hex,
                to_number="+15550100",
                rep_id=victim.user_id,
                lead_id=lead["id"],
                status="in-progress",
            ),
        )
        call_id = str(call["id"])
        await add_final_segments(
            conn,
            org_a.id,
            call_id,
            [
                SegmentRow(
                    "s1",
                    "customer",
                    0,
                    900,
                    "my email is [EMAIL]",
                    [],
                    text_raw="my email is ada@example.com",
                )
            ],
        )
        await conn.execute(
            "INSERT INTO call_prompts (org_id, call_id, prompt_key, rule_id, kind, severity, title, body, at_ms,"
            " party, segment_key, evidence, link) VALUES ($1, $2, 'p1', 'pricing', 'objection', 'info', 'Pricing',"
            " 'Ask about budget', 500, 'customer', 's1', '[\"too expensive\"]'::jsonb, NULL)",
            uuid.UUID(org_a.id),
            uuid.UUID(call_id),
        )
    sessions = app[CALL_SESSIONS]
    session = await sessions.open(CallInfo(call_id, org_a.id, "simulator", "outbound"))
    for frame in tone_frames(Party.CUSTOMER, 0.5):
        session.push_audio(frame)
    await sessions.close(call_id)
    async with world.pool.acquire() as conn:
        # closing the session ended the call; the live feed's may_watch reads the owner from the row
        recording_id = str(
            await conn.fetchval("SELECT id FROM recordings WHERE call_id = $1", uuid.UUID(call_id))
        )
    # admin-managed records of org A, and an import job of org A's manager
    resp, token = await world.request(
        "POST",
        "/api/v1/api-tokens",
        as_=org_a.admin,
        json={"name": "victim token", "scopes": ["read"]},
    )
    assert resp.status == 201, token
    resp, hook = await world.request(
        "POST",
        "/api/v1/webhooks",
        as_=org_a.admin,
        json={"url": "http://127.0.0.1:9/hook", "event_types": ["crm.lead.*"]},
    )
    assert resp.status == 201, hook
    resp, rules = await world.request(
        "PUT", "/api/v1/coaching-rules", as_=org_a.admin, json={"rules": {}, "note": "first"}
    )
    assert resp.status == 200, rules
    resp, versions = await world.request("GET", "/api/v1/coaching-rules/versions", as_=org_a.admin)
    resp, number = await world.request(
        "POST",
        "/api/v1/carrier-numbers",
        as_=org_a.admin,
        json={"number": "+14155550177", "user_id": victim.user_id},
    )
    assert resp.status == 201, number
    resp, job = await world.request(
        "POST",
        "/api/v1/leads/import",
        as_=org_a.manager,
        data=b"first_name\nZed\n",
        headers={"Content-Type": "text/csv"},
    )
    assert resp.status in (201, 202), job
    resp, pipelines = await world.request("GET", "/api/v1/pipelines", as_=org_a.admin)
    assert resp.status == 200, pipelines
    [pipeline] = pipelines["data"]
    empty_stage = next(s for s in pipeline["stages"] if s["deal_count"] == 0)
    ids = {
        "leads": lead["id"],
        "deals": deal["id"],
        "calls": call_id,
        "imports": job["id"],
        "users": victim.user_id,
        "teams": org_a.team_id,
        "pipelines": pipeline["id"],
        "stages": empty_stage["id"],
        "api-tokens": token["id"],
        "webhooks": hook["id"],
        "coaching-rules": versions["data"][0]["id"],
        "carrier-numbers": number["id"],
    }
    victim_records = {
        "leads": lead["id"],
        "deals": deal["id"],
        "calls": call_id,
        "activities": note["id"],
        "recordings": recording_id,
        "users": victim.user_id,
        "teams": org_a.team_id,
        "api_tokens": token["id"],
        "webhook_endpoints": hook["id"],
        "lead_imports": job["id"],
        "organizations": org_a.id,
        "carrier_numbers": number["id"],
        "coaching_rule_versions": versions["data"][0]["id"],
        "pipelines": pipeline["id"],
        "pipeline_stages": empty_stage["id"],
    }
    async with world.pool.acquire() as conn:
        tables = [
            r["table_name"]
            for r in await conn.fetch(
                "SELECT table_name FROM information_schema.columns WHERE table_schema = 'public'"
                " AND column_name = 'org_id' ORDER BY table_name"
            )
        ]
    callers = {
        "anonymous": None,
        "other_org_admin": org_b.admin,
        "rep_not_owner": org_a.other_rep,
        "manager_other_team": manager_west,
        "narrow_token_admin": narrow_admin,
    }
    return Matrix(
        world,
        app,
        org_a,
        org_b,
        callers,
        org_a.admin,
        victim,
        ids,
        victim_records,
        [t for t in tables if t not in _NOT_COMPARED],
    )


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def matrix(local_postgres, local_redis, tmp_path_factory):
    """One seeded world for the whole module: two organizations, the victims' records, the callers."""
    name, dsn = await _database(local_postgres)
    env = recording_env(
        dsn,
        local_redis.url,
        tmp_path_factory.mktemp("matrix"),
        COACHLINE_RATE_LIMIT_ENABLED="false",
        COACHLINE_WEBHOOKS_ENABLED="false",
        COACHLINE_WEBHOOKS_ALLOW_PRIVATE_URLS="true",
        COACHLINE_LEAD_RESCORING_EVERY_S="86400",
        COACHLINE_DB_POOL_MAX="10",
    )
    runtime = await Runtime(load_settings(env)).start()
    app = create_app(load_settings(env), runtime)
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        document = await (await client.get("/api/v1/openapi.json")).json()
        yield await _seed(ApiWorld(client, runtime.pool, runtime.bus, document), app)
    finally:
        await client.close()
        await runtime.close()
        admin = await asyncpg.connect(local_postgres.admin_dsn)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


# --- the operations the server serves ---------------------------------------------------------


def _documented(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, ops in document["paths"].items() for method in ops}


def _root_routes(app) -> set[tuple[str, str]]:
    """Routes of the root application (not /api/v1, which the document covers), as templates."""
    routes = set()
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("formatter") or info.get("path") or info.get("prefix")
        if path is None or path.startswith("/api/v1/") or route.method == "HEAD":
            continue
        routes.add((route.method, re.sub(r"\{(\w+):[^}]*\}", r"{\1}", path)))
    return routes


def _operations(m: Matrix) -> set[tuple[str, str]]:
    ops = _documented(m.world.openapi)
    for method, path in _root_routes(m.app):
        if path in NO_SESSION or path.startswith(NO_SESSION_PREFIXES):
            continue
        ops.add((method, path))
    return ops


def test_the_expectations_name_only_known_callers():
    assert all(len(row) == len(CALLERS) for row in EXPECTED.values())


async def test_every_operation_has_an_expectation(matrix: Matrix):
    """A new endpoint (API or a root route taking a session) fails here until the matrix covers it."""
    served = _operations(matrix)
    missing = sorted(served - EXPECTED.keys())
    assert not missing, f"operations without an authorization-matrix entry: {missing}"
    stale = sorted(EXPECTED.keys() - served)
    assert not stale, f"matrix entries for operations the server does not serve: {stale}"
    assert ("POST", "/api/v1/leads/{lead_id}/erasure") in served and (
        "GET",
        "/ws/calls/{call_id}",
    ) in served


# --- the requests -----------------------------------------------------------------------------


def _path(m: Matrix, template: str) -> str:
    def fill(match: re.Match) -> str:
        if match.group(0) == "{stage_id}":
            return m.ids["stages"]
        segment = template.removeprefix("/api/v1").strip("/").split("/")[0]
        return m.ids["calls" if segment in ("ws", "feeds") else segment]

    return re.sub(r"\{\w+\}", fill, template)


def _request_for(m: Matrix, method: str, template: str, caller: str) -> dict[str, Any]:
    """The body each operation is tried with: valid, and aimed at the victims' records."""
    victim, ids = m.victim, m.ids
    bodies: dict[tuple[str, str], Any] = {
        ("POST", "/auth/token"): {
            "email": f"{caller}-nobody@example.test",
            "password": "wrong password",
        },
        ("POST", "/api/v1/leads"): {"first_name": "Mallory", "owner_id": victim.user_id},
        ("PATCH", "/api/v1/leads/{id}"): {"first_name": "Mallory"},
        ("POST", "/api/v1/leads/{id}/convert"): {"name": "taken"},
        ("POST", "/api/v1/deals"): {"name": "taken", "lead_id": ids["leads"]},
        ("PATCH", "/api/v1/deals/{id}"): {"name": "taken"},
        ("POST", "/api/v1/calls/outbound"): {"carrier": "sip", "lead_id": ids["leads"]},
        ("POST", "/api/v1/activities"): {"lead_id": ids["leads"], "text": "planted"},
        ("POST", "/api/v1/calls/{id}/comments"): {"at_ms": 0, "body": "planted"},
        ("POST", "/api/v1/users"): {
            "email": f"{caller}-new@example.test",
            "name": "New",
            "team_id": m.org_a.team_id,
        },
        ("PATCH", "/api/v1/users/{id}"): {"name": "Mallory"},
        ("POST", "/api/v1/teams"): {"name": f"{caller} team"},
        ("PATCH", "/api/v1/teams/{id}"): {"name": "taken"},
        ("POST", "/api/v1/pipelines"): {
            "name": f"{caller} pipeline",
            "stages": [{"name": "first", "probability": 0.1}],
        },
        ("PATCH", "/api/v1/pipelines/{id}"): {"name": "taken"},
        ("POST", "/api/v1/pipelines/{id}/stages"): {"name": "planted", "probability": 0.5},
        ("PATCH", "/api/v1/pipelines/{id}/stages/{stage_id}"): {"name": "taken"},
        ("POST", "/api/v1/api-tokens"): {
            "name": "taken",
            "scopes": ["read"],
            "user_id": victim.user_id,
        },
        ("POST", "/api/v1/webhooks"): {"url": "http://127.0.0.1:9/planted"},
        ("PATCH", "/api/v1/webhooks/{id}"): {"url": "http://127.0.0.1:9/planted"},
        ("PUT", "/api/v1/scoring/icp"): {"icp": None},
        ("PATCH", "/api/v1/organization"): {"plan": "enterprise"},
        ("PUT", "/api/v1/coaching-rules"): {"rules": {"fillers": ["planted"]}},
        ("POST", "/api/v1/coaching-rules/preview"): {"text": "too expensive"},
        ("POST", "/api/v1/carrier-numbers"): {"number": "+14155550178", "user_id": victim.user_id},
        ("POST", "/api/v1/leads/{id}/merge"): {"other_id": str(uuid.uuid4())},
        ("POST", "/api/v1/leads/batch"): {
            "create": [{"first_name": "Mallory", "owner_id": victim.user_id}],
            "update": [{"id": ids["leads"], "first_name": "Mallory"}],
            "delete": [ids["leads"]],
        },
    }
    if (method, template) == ("GET", "/api/v1/search"):
        return {"params": {"q": "ada"}}  # the victim's lead: Ada Lovelace, ada@example.com
    if (method, template) == ("POST", "/api/v1/leads/import"):
        return {
            "data": f"first_name,owner_id\nMallory,{victim.user_id}\n".encode(),
            "headers": {"Content-Type": "text/csv"},
        }
    body = bodies.get((method, template))
    if body is None and method in ("POST", "PATCH", "PUT"):
        body = {}
    return {} if body is None else {"json": body}


async def _digest(
    m: Matrix, tables: list[str] | None = None, only: dict[str, str] | None = None
) -> dict[str, str]:
    """A hash of every row of the tenant tables (or of the victims' rows), for "nothing changed"."""
    out = {}
    async with m.world.pool.acquire() as conn:
        if only is not None:
            for table, row_id in only.items():
                row = await conn.fetchval(
                    f"SELECT to_jsonb(t) - $2::text[] FROM {table} t WHERE id = $1",
                    uuid.UUID(row_id),
                    list(_COLUMNS_NOT_COMPARED),
                )
                out[table] = hashlib.sha256(str(row).encode()).hexdigest()
            return out
        for table in tables or m.tenant_tables:
            rows = await conn.fetchval(
                f"SELECT string_agg((to_jsonb(t) - $1::text[])::text, ',' ORDER BY (to_jsonb(t) - $1::text[])::text)"
                f" FROM {table} t",
                list(_COLUMNS_NOT_COMPARED),
            )
            out[table] = hashlib.sha256(str(rows).encode()).hexdigest()
    return out


async def _org_a_ids(m: Matrix) -> set[str]:
    ids: set[str] = set()
    async with m.world.pool.acquire() as conn:
        for table in m.tenant_tables:
            has_id = await conn.fetchval(
                "SELECT count(*) FROM information_schema.columns WHERE table_name = $1"
                " AND column_name = 'id' AND data_type = 'uuid'",
                table,
            )
            if has_id:
                ids |= {
                    str(r["id"])
                    for r in await conn.fetch(
                        f"SELECT id FROM {table} WHERE org_id = $1", uuid.UUID(m.org_a.id)
                    )
                }
    return ids


async def _ws_status(m: Matrix, path: str, who: Person | None) -> tuple[int, list[str] | None]:
    """The upgrade's answer: 101 and the calls the feed announces, or the refusal's status."""
    headers = who.auth if who else {}
    try:
        ws = await m.world.client.ws_connect(path, headers=headers)
    except aiohttp.WSServerHandshakeError as exc:
        return exc.status, None
    try:
        ready = await ws.receive_json(timeout=10)
        assert ready["type"] == "feed.ready"
        return 101, ready["calls"]
    finally:
        await ws.close()


@dataclass
class Outcome:
    method: str
    template: str
    caller: str
    expected: Any
    status: int
    problem: str | None = None


async def _cell(
    m: Matrix,
    method: str,
    template: str,
    caller: str,
    expected: Any,
    org_a_ids: set[str],
    victim_ids: set[str],
) -> Outcome:
    who = m.callers[caller]
    path = _path(m, template)
    if template.startswith(("/ws/", "/feeds/")):
        status, calls = await _ws_status(m, path, who)
        outcome = Outcome(method, template, caller, expected, status)
        if expected in (WS_OWN_CALLS, WS_FLOOR):
            if status != 101:
                outcome.problem = f"expected the socket to open, got {status}"
            elif victim_ids & set(calls or ()):
                outcome.problem = f"the feed lists the victim's calls: {calls}"
        elif status != expected:
            outcome.problem = f"expected {expected}, got {status}"
        return outcome
    resp, body = await m.world.request(
        method, path, as_=who, **_request_for(m, method, template, caller)
    )
    outcome = Outcome(method, template, caller, expected, resp.status)
    if isinstance(expected, int):
        if resp.status != expected:
            outcome.problem = f"expected {expected}, got {resp.status}: {body}"
    elif expected in (ALLOWED, OWN_ORG_WRITE):
        if not 200 <= resp.status < 300 and not (expected == OWN_ORG_WRITE and resp.status == 422):
            outcome.problem = f"expected success, got {resp.status}: {body}"
    elif expected in (OWN_ORG_LIST, NOT_THEIRS_LIST):
        forbidden_ids = org_a_ids if expected == OWN_ORG_LIST else victim_ids
        listed = (
            {str(item.get("id")) for item in (body or {}).get("data", [])}
            if resp.status == 200
            else set()
        )
        if resp.status == 200 and template == "/api/v1/search":
            listed |= {
                str(hit[group[:-1]]["id"]) for group in ("leads", "deals") for hit in body.get(group) or []
            }
        if resp.status != 200:
            outcome.problem = f"expected 200, got {resp.status}: {body}"
        elif listed & forbidden_ids:
            outcome.problem = f"the list shows rows it must not: {sorted(listed & forbidden_ids)}"
    return outcome


def _is_write(method: str, template: str) -> bool:
    return method != "GET"


async def test_the_authorization_matrix(matrix: Matrix):
    m = matrix
    org_a_ids = await _org_a_ids(m)
    victim_ids = set(m.victim_records.values()) - {m.org_a.id, m.victim.user_id, m.org_a.team_id}
    async with m.world.pool.acquire() as conn:
        victim_ids |= {
            str(r["id"])
            for r in await conn.fetch(
                "SELECT id FROM call_prompts WHERE call_id = $1", uuid.UUID(m.ids["calls"])
            )
        }
    operations = sorted(_operations(m) & EXPECTED.keys())
    reads = [
        (op, caller, EXPECTED[op][i])
        for op in operations
        if not _is_write(*op)
        for i, caller in enumerate(CALLERS)
    ]
    writes = [
        (op, caller, EXPECTED[op][i])
        for op in operations
        if _is_write(*op)
        for i, caller in enumerate(CALLERS)
    ]

    # reads change nothing: run them concurrently, a few at a time (the pool has 10 connections)
    gate = asyncio.Semaphore(6)

    async def read(op, caller, expected):
        async with gate:
            return await _cell(m, *op, caller, expected, org_a_ids, victim_ids)

    before = await _digest(m)
    outcomes = list(await asyncio.gather(*(read(*cell) for cell in reads)))
    assert await _digest(m) == before, "a read changed tenant data"

    # writes one at a time: a refusal must leave every tenant row as it was; a write the
    # caller may make in its own organization must leave the victims' rows as they were
    for op, caller, expected in writes:
        before = await _digest(m)
        before_victims = await _digest(m, only=m.victim_records)
        outcome = await _cell(m, *op, caller, expected, org_a_ids, victim_ids)
        if expected in (OWN_ORG_WRITE, ALLOWED):
            if await _digest(m, only=m.victim_records) != before_victims:
                outcome.problem = (outcome.problem or "") + " and it changed the victims' rows"
        elif (after := await _digest(m)) != before:
            changed = sorted(t for t in before if before[t] != after[t])
            outcome.problem = (
                outcome.problem or ""
            ) + f" and the refused request changed {changed}"
        outcomes.append(outcome)

    # controls: the victims' records exist and their owner's admin reaches every one of them
    controls = 0
    for method, template in operations:
        if method == "GET" and "{" in template:
            path = _path(m, template)
            if template.startswith(("/ws/", "/feeds/")):
                status, _ = await _ws_status(m, path, m.owner_admin)
                assert status == 101, (template, status)
            else:
                resp, body = await m.world.request("GET", path, as_=m.owner_admin)
                assert resp.status == 200, (template, resp.status, body)
            controls += 1

    failures = [o for o in outcomes if o.problem]
    report = "\n".join(f"{o.method} {o.template} as {o.caller}: {o.problem}" for o in failures)
    assert not failures, f"{len(failures)} of {len(outcomes)} cells failed:\n{report}"
    assert len(outcomes) == len(operations) * len(CALLERS)
    print(
        f"authorization matrix: {len(operations)} operations x {len(CALLERS)} callers = "
        f"{len(outcomes)} cells, {controls} owner controls"
    )
