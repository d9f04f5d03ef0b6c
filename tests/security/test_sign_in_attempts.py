"""Sign-in attempts are counted whatever the framing and however many arrive at once.

Every attempt that reaches a password check spends the account's budget first, atomically:
sequential and concurrent guesses, and every body framing aiohttp hands the handler (chunked,
compressed, charset variants, duplicate keys, the address spelled differently) spend the one
budget of the account the sign-in reaches. Sign-in also refuses what a cross-site page could
send (a non-JSON body, another Origin).
"""

import asyncio
import gzip
import json
import uuid

import aiohttp
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from tests.crm_core.api_world import PASSWORD, ApiWorld
from voice_server.app import create_app
from voice_server.runtime import Runtime
from voice_server.settings import load_settings

PER_ACCOUNT = 8
WRONG = "not the password"


@pytest_asyncio.fixture(loop_scope="session")
async def guarded(migrated_database, redis_url):
    """A node whose per-account sign-in budget is small and whose per-address budget is large;
    each test is its own client address (X-Forwarded-For, trusted here), so budgets never mix."""
    settings = load_settings({
        "DATABASE_URL": migrated_database, "REDIS_URL": redis_url, "COACHLINE_EVENT_BUS": "memory",
        "COACHLINE_RATE_LIMIT_TRUST_FORWARDED_FOR": "true",
        "COACHLINE_RATE_LIMIT_ANONYMOUS_PER_MIN": "10000",
        "COACHLINE_RATE_LIMIT_SIGN_IN_FAILURES_PER_EMAIL_PER_MIN": str(PER_ACCOUNT),
    })
    runtime = await Runtime(settings).start()
    client = TestClient(TestServer(create_app(settings, runtime)))
    await client.start_server()
    yield ApiWorld(client, runtime.pool, runtime.bus, {})
    await client.close()
    await runtime.close()


def _address() -> dict[str, str]:
    return {"X-Forwarded-For": f"198.51.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"}


async def _post(client, data, headers, **kwargs):
    resp = await client.post("/auth/token", data=data, headers={**_address(), **headers}, **kwargs)
    body = await resp.json()
    return resp.status, body


async def test_sequential_guesses_spend_the_budget_then_even_the_password_is_refused(guarded):
    org = await guarded.make_org()
    for _ in range(PER_ACCOUNT):
        status, _ = await _post(guarded.client, json.dumps({"email": org.rep.email, "password": WRONG}),
                                {"Content-Type": "application/json"})
        assert status == 401
    status, body = await _post(guarded.client, json.dumps({"email": org.rep.email, "password": PASSWORD}),
                               {"Content-Type": "application/json"})
    assert (status, body["error"]["code"]) == (429, "rate_limited")


async def test_concurrent_guesses_never_reach_more_password_checks_than_the_budget(guarded):
    org = await guarded.make_org()
    body = json.dumps({"email": org.rep.email, "password": WRONG})
    results = await asyncio.gather(*(
        _post(guarded.client, body, {"Content-Type": "application/json"}) for _ in range(4 * PER_ACCOUNT)))
    statuses = sorted(status for status, _ in results)
    # 401: the password was checked (and wrong); 429: refused before any check
    assert statuses.count(401) == PER_ACCOUNT and statuses.count(429) == 3 * PER_ACCOUNT, statuses
    status, _ = await _post(guarded.client, json.dumps({"email": org.rep.email, "password": PASSWORD}),
                            {"Content-Type": "application/json"})
    assert status == 429


async def _chunked(payload: bytes):
    for i in range(0, len(payload), 7):
        yield payload[i:i + 7]


def _framings(email: str) -> list[tuple[str, object, dict[str, str]]]:
    """Every way this endpoint accepts a body, each naming ``email`` (differently spelled)."""
    plain = json.dumps({"email": email, "password": WRONG}).encode()
    return [
        ("plain", plain, {"Content-Type": "application/json"}),
        ("charset and casing", json.dumps({"email": email.upper(), "password": WRONG}).encode(),
         {"Content-Type": "Application/JSON; charset=UTF-8"}),
        ("chunked, no Content-Length", _chunked(plain), {"Content-Type": "application/json"}),
        ("gzip", gzip.compress(plain), {"Content-Type": "application/json", "Content-Encoding": "gzip"}),
        ("blanks around the address", json.dumps({"email": f" \t{email.title()}  ", "password": WRONG}).encode(),
         {"Content-Type": "application/json"}),
        ("escaped characters", b'{"email": "' + "".join(f"\\u{ord(c):04x}" for c in email).encode()
         + b'", "password": "' + WRONG.encode() + b'"}', {"Content-Type": "application/json"}),
    ]


def _refused_framings(email: str) -> list[tuple[str, bytes, dict[str, str]]]:
    """Bodies the one JSON reading refuses before any account is looked up: no password is
    checked for them, so they need no budget."""
    return [
        ("utf-16", json.dumps({"email": email, "password": WRONG}).encode("utf-16"),
         {"Content-Type": "application/json; charset=utf-16"}),
        ("duplicate keys", json.dumps({"email": f"decoy-{uuid.uuid4().hex}@nowhere.test", "password": WRONG})
         .removesuffix("}").encode() + b', "email": ' + json.dumps(email).encode() + b"}",
         {"Content-Type": "application/json"}),
    ]


async def test_every_accepted_framing_spends_the_same_account_budget(guarded):
    org = await guarded.make_org()
    for name, data, headers in _refused_framings(org.rep.email):
        status, body = await _post(guarded.client, data, headers)
        assert (status, body["error"]["code"]) == (400, "invalid_json"), name
    kinds = len(_framings(org.rep.email))
    assert kinds <= PER_ACCOUNT  # every framing is tried at least once within the budget
    for attempt in range(PER_ACCOUNT):
        # built afresh each time: the chunked body is a one-shot generator
        name, data, headers = _framings(org.rep.email)[attempt % kinds]
        status, body = await _post(guarded.client, data, headers)
        assert (status, body["error"]["code"]) == (401, "unauthenticated"), name
    status, body = await _post(guarded.client, json.dumps({"email": org.rep.email, "password": PASSWORD}),
                               {"Content-Type": "application/json"})
    assert (status, body["error"]["code"]) == (429, "rate_limited")


async def test_a_right_password_gives_its_attempt_back(guarded):
    org = await guarded.make_org()
    good = json.dumps({"email": org.rep.email, "password": PASSWORD})
    for _ in range(2 * PER_ACCOUNT):  # a user signing in from many tabs is never locked out
        status, _ = await _post(guarded.client, good, {"Content-Type": "application/json"})
        assert status == 200
    for _ in range(PER_ACCOUNT):
        status, _ = await _post(guarded.client, json.dumps({"email": org.rep.email, "password": WRONG}),
                                {"Content-Type": "application/json"})
        assert status == 401
    status, _ = await _post(guarded.client, good, {"Content-Type": "application/json"})
    assert status == 429


async def test_cross_site_simple_requests_and_other_origins_are_refused(guarded):
    org = await guarded.make_org()
    client = guarded.client
    good = {"email": org.rep.email, "password": PASSWORD}
    # what an HTML form elsewhere can send without a preflight: never signs anyone in
    for data, headers in ((json.dumps(good), {"Content-Type": "text/plain"}),
                          (good, {}),  # application/x-www-form-urlencoded
                          (None, {})):  # multipart/form-data
        if data is None:
            form = aiohttp.FormData()
            form.add_field("email", org.rep.email)
            form.add_field("password", PASSWORD)
            data = form
        status, body = await _post(client, data, headers)
        assert (status, body["error"]["code"]) == (415, "unsupported_media_type"), headers
    for headers in ({"Origin": "https://evil.example"}, {"Origin": "null"},
                    {"Sec-Fetch-Site": "cross-site"}):
        status, body = await _post(client, json.dumps(good), {"Content-Type": "application/json", **headers})
        assert (status, body["error"]["code"]) == (403, "csrf_failed"), headers
    own = f"http://{client.server.host}:{client.server.port}"
    for headers in ({"Origin": own}, {"Sec-Fetch-Site": "same-origin"}, {}):
        status, body = await _post(client, json.dumps(good), {"Content-Type": "application/json", **headers})
        assert status == 200 and body["token"], headers
