"""Schemathesis against a live ``coachline serve``: no 5xx, every answer as the document says.

The server is a real process (``python -m voice_server.cli serve``) on a real
PostgreSQL and Redis, with the speech model off (nothing here speaks). The
test loads ``/api/v1/openapi.json`` from it and lets schemathesis generate
requests for every operation, valid and invalid (positive and negative
modes, its coverage phase's boundary values plus a bounded, seeded fuzzing
phase), as an admin with every scope. Path ids are drawn partly from rows
seeded in the organization, so GET/PATCH/POST-by-id reach real records, not
only 404s. Every reply must pass:

* ``not_a_server_error`` — never a 5xx;
* ``status_code_conformance`` — the status is one the operation documents;
* ``content_type_conformance`` — the media type is the documented one;
* ``response_schema_conformance`` — the body matches the documented schema;
* ``response_headers_conformance`` — documented response headers are present;
* ``negative_data_rejection`` — what the document forbids (wrong types, too long, missing
  required parts) is refused with a 4xx, not stored.

Nothing is excluded: ``POST /auth/logout`` with an API token is refused
(400 ``not_a_session``) rather than revoking it, and the token's own id is
never offered as a path id, so the fuzzer cannot sign itself out.
``DELETE`` and GDPR erasure draw from their own rows, so the other
operations keep finding live ones.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, field

import aiohttp
import asyncpg
import pytest_asyncio
import requests
import schemathesis
import schemathesis.engine
from hypothesis import strategies as st
from schemathesis.engine import events

from crm_core.calls.records import NewCall, SegmentRow, add_final_segments, create_call
from storage.database import PoolOptions, create_pool
from storage.migrations import apply_migrations
from tests.crm_core.api_world import ApiWorld
from tests.voice_server.coachline_nodes import CoachlineNode, create_database, drop_database, start_nodes

SEED = 20261125
# Fuzzing-phase examples per operation (the coverage phase adds its own boundary cases);
# COACHLINE_FUZZ_EXAMPLES=500 makes a deeper run by hand.
MAX_EXAMPLES = int(os.environ.get("COACHLINE_FUZZ_EXAMPLES", "25"))
CHECKS = ("not_a_server_error", "status_code_conformance", "content_type_conformance",
          "response_schema_conformance", "response_headers_conformance", "negative_data_rejection")

# Request-side checks (does the server accept what the document allows, refuse what it forbids),
# for runs by hand: COACHLINE_FUZZ_EXTRA_CHECKS=positive_data_acceptance (the document cannot say
# every rule: "a lead needs a name, an email, a phone or a company", a cursor must be one we issued).
EXTRA_CHECKS = tuple(c for c in os.environ.get("COACHLINE_FUZZ_EXTRA_CHECKS", "").split(",") if c)


@dataclass
class LiveApi:
    url: str
    token: str
    # path collection ("leads", "deals", ...) -> ids of rows in the fuzzer's organization
    ids: dict[str, list[str]] = field(default_factory=dict)
    # rows only DELETE and erasure may draw, so they do not empty the pools above
    doomed: dict[str, list[str]] = field(default_factory=dict)
    own_token_id: str = ""


async def _post(http: aiohttp.ClientSession, url: str, token: str, body, **kwargs) -> dict:
    async with http.post(url, json=body, headers={"Authorization": f"Bearer {token}"}, **kwargs) as resp:
        data = await resp.json()
        assert resp.status in (200, 201, 202), (url, resp.status, data)
        return data


async def _seed(node: CoachlineNode, pool: asyncpg.Pool) -> LiveApi:
    world = ApiWorld(client=None, pool=pool, bus=None, openapi={})  # only its people-making helpers
    org = await world.make_org("fuzz")
    async with pool.acquire() as conn:
        # A custom budget far above what the test sends: the limiter runs, never refuses.
        await conn.execute("""UPDATE organizations SET settings = settings ||
                              '{"plan": "enterprise", "rate_limit_per_min": 1000000}'::jsonb WHERE id = $1""",
                           org.id)
    admin = org.admin.token
    api = node.url + "/api/v1"
    live = LiveApi(node.url, admin)
    async with aiohttp.ClientSession() as http:
        async def many(path: str, bodies: list[dict]) -> list[str]:
            return [(await _post(http, api + path, admin, body))["id"] for body in bodies]

        leads = await many("/leads", [{"first_name": f"Lead{i}", "last_name": "Fuzz", "company": "Acme",
                                       "email": f"lead{i}@acme.test", "phone": f"+1555010{i:04d}",
                                       "company_size": 50 * (i + 1), "title": "VP Sales"} for i in range(8)])
        live.ids["leads"] = leads[:5]
        live.doomed["leads"] = leads[5:]
        deals = await many("/deals", [{"name": f"Deal {i}", "lead_id": leads[i], "value": 1000 * (i + 1)}
                                      for i in range(5)])
        live.ids["deals"], live.doomed["deals"] = deals[:3], deals[3:]
        teams = await many("/teams", [{"name": f"Team {i}"} for i in range(3)])
        live.ids["teams"], live.doomed["teams"] = [org.team_id, *teams[:1]], teams[1:]
        users = await many("/users", [{"email": f"u{i}@fuzz.test", "name": f"U{i}"} for i in range(3)])
        # never the admin whose token the fuzzer uses: demoting or removing it would end the run
        live.ids["users"] = [org.rep.user_id, org.manager.user_id, users[0]]
        live.doomed["users"] = users[1:]
        tokens = await many("/api-tokens", [{"name": f"t{i}"} for i in range(3)])
        live.ids["api-tokens"], live.doomed["api-tokens"] = tokens[:1], tokens[1:]
        hooks = await many("/webhooks", [{"url": f"https://hooks.example.com/{i}"} for i in range(3)])
        live.ids["webhooks"], live.doomed["webhooks"] = hooks[:2], hooks[2:]
        async with http.get(api + "/pipelines", headers={"Authorization": f"Bearer {admin}"}) as resp:
            default = (await resp.json())["data"][0]["id"]
        extra = await many("/pipelines", [{"name": "Fuzz", "stages": [{"name": "a", "probability": 0.1},
                                                                     {"name": "b", "probability": 0.9}]}])
        live.ids["pipelines"] = [default, *extra]
        async with http.post(api + "/leads/import", data=b"first_name,email\nImp,imp@acme.test\n",
                             headers={"Authorization": f"Bearer {admin}", "Content-Type": "text/csv"}) as resp:
            assert resp.status in (200, 201, 202), await resp.text()
            live.ids["imports"] = [(await resp.json())["id"]]
    async with pool.acquire() as conn:
        calls = []
        for i in range(3):
            row = await create_call(conn, NewCall(org.id, "sip", "outbound", external_id=f"fuzz-{i}",
                                                  rep_id=org.rep.user_id, lead_id=leads[i]))
            calls.append(str(row["id"]))
            await add_final_segments(conn, org.id, calls[-1], [
                SegmentRow(f"s{i}", "rep", 0, 1500, "Hi, this is Rita from Acme.", []),
                SegmentRow(f"c{i}", "customer", 1600, 3000, "Call me at 555 010 0000.", [])])
        live.ids["calls"] = calls
        live.own_token_id = str(await conn.fetchval("SELECT id FROM api_tokens WHERE user_id = $1",
                                                    org.admin.user_id))
    return live


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def live_api(local_postgres, local_redis, tmp_path_factory):
    dsn = await create_database(local_postgres)
    conn = await asyncpg.connect(dsn)
    try:
        await apply_migrations(conn)
    finally:
        await conn.close()
    env = {"DATABASE_URL": dsn, "REDIS_URL": local_redis.url, "COACHLINE_EVENT_BUS": "redis",
           "COACHLINE_LOG_FORMAT": "text", "COACHLINE_LOG_LEVEL": "warning", "COACHLINE_DB_POOL_MAX": "5",
           "COACHLINE_STT_ENABLED": "false", "COACHLINE_RATE_LIMIT_ENABLED": "true",
           # The fuzzer's failed sign-ins would spend the loopback address's budget in the shared
           # Redis, and the tests after this one sign in from that address too.
           "COACHLINE_RATE_LIMIT_ANONYMOUS_PER_MIN": "1000000",
           "COACHLINE_RATE_LIMIT_SIGN_IN_FAILURES_PER_EMAIL_PER_MIN": "1000000",
           # Registered webhook URLs are made up; no delivery may try to reach them.
           "COACHLINE_WEBHOOKS_ENABLED": "false"}
    node = CoachlineNode("schemathesis", tmp_path_factory.mktemp("schemathesis"), env)
    pool = await create_pool(dsn, PoolOptions(min_size=1, max_size=2))
    try:
        await start_nodes([node])
        yield await _seed(node, pool)
    finally:
        await node.stop()
        await pool.close()
        await drop_database(local_postgres, dsn)
    assert node.process is not None and node.process.returncode == 0, node.log_tail()


def _collection(path: str) -> str:
    return path.removeprefix("/api/v1/").split("/")[0]


def _load_schema(live_api: LiveApi):
    config = schemathesis.Config.from_dict({
        "seed": SEED,
        "base-url": live_api.url,
        "headers": {"Authorization": f"Bearer {live_api.token}"},
        "request-timeout": 30,
        "continue-on-failure": True,
        "generation": {"mode": "all", "max-examples": MAX_EXAMPLES, "deterministic": True,
                       "database": "none"},
        "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS + EXTRA_CHECKS},
                   "positive_data_acceptance": {"enabled": "positive_data_acceptance" in EXTRA_CHECKS,
                                                "expected-statuses": ["2XX", "401", "403", "404", "409", "412"]}},
        # Probing and stateful chains are not what this test is for; unexpected-method probes belong
        # to the unsupported_method check (405 with Allow is covered in test_api_contract.py).
        "phases": {"coverage": {"unexpected-methods": []}, "stateful": {"enabled": False}},
    })
    schema = schemathesis.openapi.from_url(live_api.url + "/api/v1/openapi.json", config=config)

    @schema.hook
    def before_generate_path_parameters(context, strategy):
        operation = context.operation
        pools = live_api.doomed if (operation.method.upper() == "DELETE"
                                    or operation.path.endswith("/erasure")) else live_api.ids
        ids = pools.get(_collection(operation.path))
        names = [p.name for p in operation.path_parameters]
        if not ids or len(names) != 1:
            return strategy
        return st.one_of(st.fixed_dictionaries({names[0]: st.sampled_from(ids)}), strategy)

    @schema.hook
    def filter_path_parameters(context, path_parameters):
        # Schemathesis reuses ids it saw in responses (GET /api-tokens lists the fuzzer's own
        # token): revoking that one would turn the rest of the run into 401s.
        return live_api.own_token_id not in (path_parameters or {}).values()

    return schema


_keys = itertools.count()


def _unique_idempotency_keys(context, case, kwargs) -> None:
    """A ``before_call`` hook (schemathesis has them only globally: registered for the run).

    Generated Idempotency-Keys collide ("0", "a"...): most POSTs would replay or be refused as a
    reused key (a documented 422) instead of running. A valid key is made unique; a key the
    document forbids (empty, too long) is left as generated, for the server to refuse.
    """
    key = (case.headers or {}).get("Idempotency-Key")
    if isinstance(key, str) and 1 <= len(key) <= 255:
        case.headers["Idempotency-Key"] = f"{key[:240]}~{next(_keys)}"


def _describe(recorder, case_id: str, failure) -> str:
    case = recorder.cases[case_id].value
    response = recorder.find_response(case_id=case_id)
    sent = f"{case.method} {case.formatted_path} query={case.query} body={case.body!r}"[:600]
    got = "" if response is None else f" -> {response.status_code} {response.text[:400]!r}"
    return f"[{failure.title}] {sent}{got}\n    {failure.message[:600]}"


def test_every_operation_answers_as_documented_under_fuzzing(live_api):
    schema = _load_schema(live_api)
    failures: list[str] = []
    errors: list[str] = []
    tested: set[str] = set()
    statuses: dict[str, set[int]] = {}
    schemathesis.hook("before_call")(_unique_idempotency_keys)
    try:
        run = list(schemathesis.engine.from_schema(schema).execute())
    finally:
        schemathesis.hooks.unregister(_unique_idempotency_keys)
    for event in run:
        if isinstance(event, events.ScenarioFinished):
            recorder = event.recorder
            tested.add(recorder.label)
            for interaction in recorder.interactions.values():
                if interaction.response is not None:
                    statuses.setdefault(recorder.label, set()).add(interaction.response.status_code)
            for case_id, checks in recorder.checks.items():
                for check in checks:
                    if check.failure_info is not None:
                        failures.append(_describe(recorder, case_id, check.failure_info.failure))
        elif isinstance(event, events.NonFatalError):
            errors.append(f"{event.label}: {event.info.format() if hasattr(event.info, 'format') else event.value}")
        elif isinstance(event, events.FatalError):
            raise event.exception
    documented = {f"{method.upper()} {path}" for path, ops in schema.raw_schema["paths"].items() for method in ops}
    assert not errors, "\n".join(errors)
    assert not failures, f"{len(failures)} failing cases:\n" + "\n".join(sorted(set(failures))[:int(os.environ.get('COACHLINE_FUZZ_SHOW', '40'))])
    assert documented - tested == set()
    # The seeded ids do their job: every read by id found a real row at least once.
    reads = {label for label in documented if label.startswith("GET ") and "{" in label
             and not label.endswith("/recording")}  # no call here has a recording
    assert {label for label in reads if not any(200 <= s < 300 for s in statuses.get(label, ()))} == set()


def test_the_live_server_is_still_healthy_after_fuzzing(live_api):
    # runs after the fuzzing test in this module: the node still answers and still knows the admin
    resp = requests.get(live_api.url + "/api/v1/leads", headers={"Authorization": f"Bearer {live_api.token}"},
                        timeout=30)
    assert resp.status_code == 200, resp.text
