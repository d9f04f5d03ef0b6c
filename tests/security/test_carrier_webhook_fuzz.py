"""Property-based fuzzing of the carrier webhooks through the real app.

Every request carries a valid signature over fuzzed data (the twilio SDK's
RequestValidator over fuzzed form parameters or raw bytes; HS256 JWTs minted
with PyJWT over fuzzed JSON or raw bytes), so the fuzzing reaches past the
signature check into the parsing and the database. Property: never a 5xx
(carriers retry those), never an unhandled exception, the node ready after.

Hypothesis drives the requests from a worker thread; each request runs on the
test's event loop, where the real aiohttp server lives. Default: a fixed-seed,
short budget; ``--slow``: a long, randomized one.
"""

import asyncio
import hashlib
import json
import logging
import time
import uuid

import jwt
import pytest_asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator

from tests.voice_server.carrier_app import (
    OUR_NUMBER,
    PUBLIC_URL,
    TWILIO_TOKEN,
    VONAGE_SECRET,
    start_carrier_app,
    stop_carrier_app,
)
from voice_server.simulator.carrier.signing import twilio_form

# Stands for a call that exists (a fresh ringing one per example), so that fuzzed callbacks
# reach the status update and its columns.
FRESH_CALL = "<a fresh call>"
TWILIO_PATHS = ("/carriers/twilio/voice", "/carriers/twilio/status")
VONAGE_PATHS = ("/carriers/vonage/answer", "/carriers/vonage/event")
CONTENT_TYPES = (
    "application/x-www-form-urlencoded",
    "application/json",
    "text/plain",
    "multipart/form-data; boundary=x",
    "",
)


@pytest_asyncio.fixture(loop_scope="session")
async def carrier_app(migrated_database, redis_url):
    ca = await start_carrier_app(migrated_database, redis_url)
    yield ca
    await stop_carrier_app(ca)


def _budget(slow_mode: bool, examples: int) -> settings:
    return settings(
        max_examples=examples * 50 if slow_mode else examples,
        derandomize=not slow_mode,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


# -- strategies -----------------------------------------------------------------------

# Text the database must cope with or refuse: NUL, controls, non-BMP, long, digits of
# other scripts; no lone surrogates (a form cannot carry them: they are not UTF-8).
any_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40) | st.sampled_from(
    [
        "",
        "\x00",
        "CA" + "1" * 32,
        OUR_NUMBER,
        "\u00b2",
        "\u0661\u0662",
        "9" * 30,
        "2147483648",
        "-1",
        "x" * 700,
    ]
)
# Numbers around the integer columns' edges as well as anywhere: hypothesis favours small ones.
numbers_as_text = (
    st.integers(min_value=-(2**70), max_value=2**70)
    | st.integers(min_value=2**31 - 3, max_value=2**31 + 3)
    | st.integers(min_value=2**31, max_value=2**64)
).map(str)
twilio_value = any_text | numbers_as_text
twilio_status = st.sampled_from(
    [
        "queued",
        "ringing",
        "in-progress",
        "completed",
        "busy",
        "failed",
        "no-answer",
        "canceled",
        "bogus",
        "",
    ]
)
# The fields handlers use are always there, mostly plausible, so that most examples get
# past routing into the database; the rest vary freely.
twilio_params = st.fixed_dictionaries(
    {
        "CallSid": st.just(FRESH_CALL) | twilio_value,
        "To": st.just(OUR_NUMBER) | twilio_value,
        "CallStatus": twilio_status | any_text,
    },
    optional={
        "From": twilio_value,
        "CallDuration": numbers_as_text | twilio_value,
        "Direction": any_text,
    },
).flatmap(lambda d: st.dictionaries(any_text, twilio_value, max_size=3).map(lambda e: {**e, **d}))

json_scalar = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats()
    | st.text(max_size=30)
    | st.sampled_from(["\x00", "\ud800", "x" * 600])
)
json_value = st.recursive(
    json_scalar,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
vonage_status = st.sampled_from(
    [
        "started",
        "ringing",
        "answered",
        "completed",
        "busy",
        "failed",
        "rejected",
        "timeout",
        "unanswered",
        "cancelled",
        "machine",
    ]
)
vonage_payload = st.fixed_dictionaries(
    {
        "uuid": st.just(FRESH_CALL) | st.uuids().map(str) | json_value,
        "to": st.just(OUR_NUMBER.lstrip("+")) | json_value,
        "status": vonage_status | json_value,
    },
    optional={
        "from": json_value,
        "duration": numbers_as_text | json_value,
        "conversation_uuid": json_value,
    },
)


def _nested(depth: int) -> bytes:
    return b'{"uuid": ' + b"[" * depth + b"]" * depth + b"}"


raw_bodies = st.binary(max_size=300) | st.sampled_from(
    [_nested(100_000), b"%FF%FE=%00", b"CallSid=\xff", b"\x00" * 64, b"null", b"[]", b"1e999"]
)


# -- signing --------------------------------------------------------------------------


def _vonage_headers(body: bytes) -> dict[str, str]:
    token = jwt.encode(
        {
            "iat": int(time.time()),
            "jti": str(uuid.uuid4()),
            "iss": "Vonage",
            "api_key": "abcd1234",
            "payload_hash": hashlib.sha256(body).hexdigest(),
        },
        VONAGE_SECRET,
        algorithm="HS256",
    )
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


def _twilio_raw(path: str, body: bytes, content_type: str) -> tuple[str, dict[str, str]]:
    validator = RequestValidator(TWILIO_TOKEN)
    if content_type == "application/json":
        path = f"{path}?bodySHA256={hashlib.sha256(body).hexdigest()}"
    signature = validator.compute_signature(PUBLIC_URL + path, {})
    headers = {"X-Twilio-Signature": signature}
    if content_type:
        headers["Content-Type"] = content_type
    return path, headers


# -- the runs -------------------------------------------------------------------------


class _Driver:
    """Sends requests from hypothesis's thread on the server's loop; records every answer."""

    def __init__(self, ca, loop: asyncio.AbstractEventLoop) -> None:
        self.ca = ca
        self.loop = loop
        self.statuses: dict[int, int] = {}

    async def _post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
        async with self.ca.client.post(path, data=body, headers=headers) as resp:
            return resp.status, await resp.text()

    def fresh_call(self, carrier: str, fields: dict, key: str) -> dict:
        """``fields`` with FRESH_CALL in ``key`` replaced by the id of a new ringing call."""
        if fields.get(key) != FRESH_CALL:
            return fields
        external_id = f"fuzz-{uuid.uuid4()}"
        coro = self.ca.new_call(carrier, "inbound", external_id)
        asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=60)
        return {**fields, key: external_id}

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> None:
        status, text = asyncio.run_coroutine_threadsafe(
            self._post(path, body, headers), self.loop
        ).result(timeout=60)
        self.statuses[status] = self.statuses.get(status, 0) + 1
        assert status < 500, (path, status, text[:200], body[:120])


async def _run(ca, caplog, fuzz) -> dict[int, int]:
    driver = _Driver(ca, asyncio.get_running_loop())
    with caplog.at_level(logging.ERROR):
        await asyncio.to_thread(fuzz, driver)
    unhandled = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not unhandled, [r.getMessage() for r in unhandled][:5]
    assert (await ca.client.get("/ready")).status == 200
    return driver.statuses


async def test_twilio_webhooks_with_valid_signatures_over_fuzzed_forms(
    carrier_app, caplog, slow_mode
):
    @_budget(slow_mode, 60)
    @given(path=st.sampled_from(TWILIO_PATHS), params=twilio_params)
    def fuzz(driver, path, params):
        params = driver.fresh_call("twilio", params, "CallSid")
        body, headers = twilio_form(TWILIO_TOKEN, PUBLIC_URL + path, params)
        driver.post(path, body, headers)

    statuses = await _run(carrier_app, caplog, fuzz)
    assert set(statuses) - {200, 204, 400} == set(), statuses


async def test_twilio_webhooks_with_valid_signatures_over_fuzzed_bytes(
    carrier_app, caplog, slow_mode
):
    @_budget(slow_mode, 40)
    @given(
        path=st.sampled_from(TWILIO_PATHS),
        body=raw_bodies,
        content_type=st.sampled_from(CONTENT_TYPES),
    )
    def fuzz(driver, path, body, content_type):
        signed_path, headers = _twilio_raw(path, body, content_type)
        driver.post(signed_path, body, headers)

    await _run(carrier_app, caplog, fuzz)


async def test_vonage_webhooks_with_valid_jwts_over_fuzzed_json(carrier_app, caplog, slow_mode):
    @_budget(slow_mode, 60)
    @given(path=st.sampled_from(VONAGE_PATHS), payload=vonage_payload)
    def fuzz(driver, path, payload):
        body = json.dumps(driver.fresh_call("vonage", payload, "uuid")).encode()
        driver.post(path, body, _vonage_headers(body))

    statuses = await _run(carrier_app, caplog, fuzz)
    assert set(statuses) - {200, 204, 400} == set(), statuses


async def test_vonage_webhooks_with_valid_jwts_over_fuzzed_bytes(carrier_app, caplog, slow_mode):
    @_budget(slow_mode, 40)
    @given(path=st.sampled_from(VONAGE_PATHS), body=raw_bodies)
    def fuzz(driver, path, body):
        driver.post(path, body, _vonage_headers(body))

    await _run(carrier_app, caplog, fuzz)
