"""Vonage's signed webhooks: the JWT must bind what the handler uses, once.

Tokens are minted here with PyJWT exactly as Vonage mints them (HS256 over the
signature secret; ``iat``, ``jti``, ``iss``, ``api_key`` and ``payload_hash``, the
SHA-256 of the body), so each request below carries a genuinely valid signature:
what is under test is what the server lets that signature vouch for.
"""

import hashlib
import json
import time
import uuid

import jwt
import pytest_asyncio

from tests.voice_server.carrier_app import (
    OUR_NUMBER,
    VONAGE_SECRET,
    start_carrier_app,
    stop_carrier_app,
)

ANSWER = "/carriers/vonage/answer"
EVENT = "/carriers/vonage/event"


@pytest_asyncio.fixture(loop_scope="session")
async def carrier_app(migrated_database, redis_url):
    ca = await start_carrier_app(migrated_database, redis_url)
    yield ca
    await stop_carrier_app(ca)


def _token(body: bytes | None, **claims) -> str:
    """A valid Vonage webhook JWT; ``body=None`` leaves ``payload_hash`` out."""
    payload = {
        "iat": int(time.time()),
        "jti": str(uuid.uuid4()),
        "iss": "Vonage",
        "api_key": "abcd1234",
        "application_id": str(uuid.uuid4()),
    }
    if body is not None:
        payload["payload_hash"] = hashlib.sha256(body).hexdigest()
    payload.update(claims)
    return jwt.encode(payload, VONAGE_SECRET, algorithm="HS256")


def _bearer(token: str, json_body: bool = True) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {token}"}
    if json_body:
        headers["Content-Type"] = "application/json"
    return headers


async def _calls(ca) -> int:
    async with ca.pool.acquire() as conn:
        return await conn.fetchval("SELECT count(*) FROM calls")


def _answer_body(call_uuid: str) -> bytes:
    return json.dumps(
        {
            "uuid": call_uuid,
            "to": OUR_NUMBER.lstrip("+"),
            "from": "15557770000",
            "conversation_uuid": "CON-1",
        }
    ).encode()


async def test_a_token_without_payload_hash_vouches_for_nothing(carrier_app):
    """The reported bypass: a valid token, no body, the call described in the query string."""
    ca = carrier_app
    query = {"uuid": str(uuid.uuid4()), "to": OUR_NUMBER.lstrip("+"), "from": "15557770000"}
    for method, status in (("GET", 405), ("POST", 401)):
        resp = await ca.client.request(
            method, ANSWER, params=query, headers=_bearer(_token(None), json_body=False)
        )
        assert resp.status == status, method
        assert (await resp.json())["error"]["code"] in ("method_not_allowed", "unauthorized")
    # The same claims without payload_hash over a real body are refused too.
    body = _answer_body(str(uuid.uuid4()))
    resp = await ca.client.post(ANSWER, data=body, headers=_bearer(_token(None)))
    assert resp.status == 401
    assert await _calls(ca) == 0


async def test_query_parameters_are_never_read_even_under_a_hash_of_the_empty_body(carrier_app):
    ca = carrier_app
    call_id = await ca.new_call("vonage", "inbound", "VON-EXISTING")
    empty = _bearer(_token(b""), json_body=False)
    answer = await ca.client.post(
        ANSWER, params={"uuid": str(uuid.uuid4()), "to": OUR_NUMBER.lstrip("+")}, headers=empty
    )
    assert answer.status == 400
    assert (await answer.json())["error"]["code"] == "bad_request"
    event = await ca.client.post(
        EVENT,
        params={"uuid": "VON-EXISTING", "status": "failed"},
        headers=_bearer(_token(b""), json_body=False),
    )
    assert event.status == 400
    # A signed body plus query parameters: the body decides, the query is ignored.
    body = json.dumps({"uuid": "VON-EXISTING", "status": "started"}).encode()
    mixed = await ca.client.post(
        EVENT, params={"status": "failed"}, data=body, headers=_bearer(_token(body))
    )
    assert mixed.status == 204
    assert (await ca.call_row(call_id))["status"] == "ringing"
    assert await _calls(ca) == 1


async def test_a_replayed_token_is_refused(carrier_app):
    ca = carrier_app
    body = _answer_body(str(uuid.uuid4()))
    headers = _bearer(_token(body))
    first = await ca.client.post(ANSWER, data=body, headers=headers)
    assert first.status == 200
    again = await ca.client.post(ANSWER, data=body, headers=headers)
    assert again.status == 401
    assert (await again.json())["error"]["code"] == "unauthorized"
    call_id = await ca.new_call("vonage", "inbound", "VON-REPLAY")
    event = json.dumps({"uuid": "VON-REPLAY", "status": "answered"}).encode()
    token = _token(event)
    assert (await ca.client.post(EVENT, data=event, headers=_bearer(token))).status == 204
    # The same jti under a fresh signature over another body is a replay as well.
    failed = json.dumps({"uuid": "VON-REPLAY", "status": "failed"}).encode()
    jti = jwt.decode(token, VONAGE_SECRET, algorithms=["HS256"])["jti"]
    replay = await ca.client.post(EVENT, data=failed, headers=_bearer(_token(failed, jti=jti)))
    assert replay.status == 401
    assert (await ca.call_row(call_id))["status"] == "in-progress"


async def test_a_request_that_fails_for_want_of_the_database_can_be_retried(carrier_app):
    """A retry of a request we could not serve is not a replay: the claim is released."""
    ca = carrier_app
    body = json.dumps({"uuid": "VON-RETRY", "status": "answered"}).encode()
    headers = _bearer(_token(body))
    runtime = ca.extra["runtime"]
    pool, runtime.pool = runtime.pool, None
    try:
        resp = await ca.client.post(EVENT, data=body, headers=headers)
        assert resp.status >= 500  # a fault, whatever status faults get
    finally:
        runtime.pool = pool
    call_id = await ca.new_call("vonage", "inbound", "VON-RETRY")
    assert (await ca.client.post(EVENT, data=body, headers=headers)).status == 204
    assert (await ca.call_row(call_id))["status"] == "in-progress"


async def test_without_redis_no_token_is_taken_unchecked(carrier_app):
    """Replays cannot be ruled out without Redis: 503 (Vonage retries), never a served request."""
    ca = carrier_app
    body = _answer_body(str(uuid.uuid4()))
    headers = _bearer(_token(body))
    runtime = ca.extra["runtime"]
    redis, runtime.redis = runtime.redis, None
    try:
        resp = await ca.client.post(ANSWER, data=body, headers=headers)
        assert resp.status == 503
        assert (await resp.json())["error"]["code"] == "service_unavailable"
    finally:
        runtime.redis = redis
    assert await _calls(ca) == 0
    assert (await ca.client.post(ANSWER, data=body, headers=headers)).status == 200
