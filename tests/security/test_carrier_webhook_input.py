"""Bad data in carrier webhooks: never a 5xx (carriers retry those), never a stored surprise.

Every request here is signed exactly as the carrier signs it (the twilio SDK's
RequestValidator, HS256 JWTs minted with PyJWT): the signature is fine, the data is not.
"""

import hashlib
import json
import uuid

import pytest_asyncio
from twilio.request_validator import RequestValidator

from tests.voice_server.carrier_app import (
    OUR_NUMBER,
    PUBLIC_URL,
    TWILIO_TOKEN,
    VONAGE_SECRET,
    start_carrier_app,
    stop_carrier_app,
)
from voice_server.simulator.carrier.signing import twilio_form, vonage_headers

VOICE = "/carriers/twilio/voice"
STATUS = "/carriers/twilio/status"
ANSWER = "/carriers/vonage/answer"
EVENT = "/carriers/vonage/event"
FORM = "application/x-www-form-urlencoded"


@pytest_asyncio.fixture(loop_scope="session")
async def carrier_app(migrated_database, redis_url):
    ca = await start_carrier_app(migrated_database, redis_url)
    yield ca
    await stop_carrier_app(ca)


def _signed_raw_form(path: str, body: bytes, signed_params: dict) -> dict[str, str]:
    signature = RequestValidator(TWILIO_TOKEN).compute_signature(PUBLIC_URL + path, signed_params)
    return {"X-Twilio-Signature": signature, "Content-Type": FORM}


async def _error_code(resp) -> str:
    return (await resp.json())["error"]["code"]


async def test_twilio_forms_that_are_not_utf8_get_400(carrier_app):
    ca = carrier_app
    raw = b"CallSid=CA1&To=%2B15550100000&From=\xff\xfe"
    resp = await ca.client.post(VOICE, data=raw, headers=_signed_raw_form(VOICE, raw, {}))
    assert resp.status == 400 and await _error_code(resp) == "bad_request"
    # Percent-encoded invalid UTF-8: signed over what a lossy decoder would make of it.
    body = b"CallSid=CA2&To=%2B15550100000&From=%FF"
    lossy = {"CallSid": "CA2", "To": OUR_NUMBER, "From": "\ufffd"}
    resp = await ca.client.post(VOICE, data=body, headers=_signed_raw_form(VOICE, body, lossy))
    assert resp.status == 400
    async with ca.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM calls") == 0


async def test_twilio_numbers_past_the_column_are_ignored_and_the_status_kept(carrier_app):
    ca = carrier_app
    for n, duration in enumerate(
        ["99999999999", "2147483648", "\u00b2", "\u0661\u0662", "-5", "1e3"]
    ):
        sid = f"CA{n:032d}"
        call_id = await ca.new_call("twilio", "inbound", sid)
        body, headers = twilio_form(
            TWILIO_TOKEN,
            PUBLIC_URL + STATUS,
            {"CallSid": sid, "CallStatus": "completed", "CallDuration": duration},
        )
        resp = await ca.client.post(STATUS, data=body, headers=headers)
        assert resp.status == 204, duration
        row = await ca.call_row(call_id)
        assert (row["status"], row["duration_s"]) == ("completed", None), duration
    body, headers = twilio_form(
        TWILIO_TOKEN,
        PUBLIC_URL + STATUS,
        {"CallSid": "CA" + "9" * 32, "CallStatus": "completed", "CallDuration": "2147483647"},
    )
    call_id = await ca.new_call("twilio", "inbound", "CA" + "9" * 32)
    assert (await ca.client.post(STATUS, data=body, headers=headers)).status == 204
    assert (await ca.call_row(call_id))["duration_s"] == 2147483647


async def test_twilio_ids_the_database_cannot_hold_get_400(carrier_app):
    ca = carrier_app
    for sid in ("CA\x00x", "CA" + "1" * 600):
        for path, extra in ((STATUS, {"CallStatus": "ringing"}), (VOICE, {"To": OUR_NUMBER})):
            body, headers = twilio_form(TWILIO_TOKEN, PUBLIC_URL + path, {"CallSid": sid, **extra})
            resp = await ca.client.post(path, data=body, headers=headers)
            assert resp.status == 400, (path, sid[:8])
    # A From the database cannot hold is dropped; the call is still taken.
    body, headers = twilio_form(
        TWILIO_TOKEN,
        PUBLIC_URL + VOICE,
        {"CallSid": "CA" + "7" * 32, "To": OUR_NUMBER, "From": "+1\x00"},
    )
    assert (await ca.client.post(VOICE, data=body, headers=headers)).status == 200


def _twilio_json(path: str, body: bytes) -> tuple[str, dict[str, str]]:
    """A JSON webhook signed as Twilio signs one: the URL pins the SHA-256 of the raw bytes."""
    url = f"{path}?bodySHA256={hashlib.sha256(body).hexdigest()}"
    signature = RequestValidator(TWILIO_TOKEN).compute_signature(PUBLIC_URL + url, {})
    return url, {"X-Twilio-Signature": signature, "Content-Type": "application/json"}


async def test_twilio_json_bodies_that_are_not_utf8_or_too_deep_get_400(carrier_app):
    ca = carrier_app
    for body in (
        b'{"CallSid": "CA1", "To": "\xff"}',
        b"[" * 100_000 + b"]" * 100_000,
        b'{"CallSid": ' + b'{"a": ' * 50_000 + b"1" + b"}" * 50_001,
    ):
        url, headers = _twilio_json(VOICE, body)
        resp = await ca.client.post(url, data=body, headers=headers)
        assert resp.status == 400, body[:20]
        assert await _error_code(resp) == "bad_request"
    # The hash is checked on the bytes before anything is decoded.
    url, headers = _twilio_json(VOICE, b'{"CallSid": "CA1"}')
    resp = await ca.client.post(url, data=b'{"CallSid": "CA2"}', headers=headers)
    assert resp.status == 403


async def _vonage(ca, path: str, body: bytes):
    return await ca.client.post(path, data=body, headers=vonage_headers(VONAGE_SECRET, body))


async def test_vonage_bodies_that_are_too_deep_or_not_utf8_get_400(carrier_app):
    ca = carrier_app
    for path in (ANSWER, EVENT):
        for body in (
            b"[" * 100_000 + b"]" * 100_000,
            b'{"uuid": ' + b'{"a": ' * 50_000 + b"1" + b"}" * 50_001,
            b'{"uuid": "\xff\xfe"}',
            b"[]",
            b"",
            b"null",
        ):
            resp = await _vonage(ca, path, body)
            assert resp.status == 400, (path, body[:12])
            assert await _error_code(resp) == "bad_request"


async def test_vonage_numbers_past_the_column_are_ignored_and_the_status_kept(carrier_app):
    ca = carrier_app
    for duration in ("99999999999", 2**31, 10**30, -1, 1.5, "\u00b2", True, [3], {"s": 3}):
        external = f"VON-{uuid.uuid4()}"
        call_id = await ca.new_call("vonage", "inbound", external)
        body = json.dumps({"uuid": external, "status": "completed", "duration": duration}).encode()
        resp = await _vonage(ca, EVENT, body)
        assert resp.status == 204, duration
        row = await ca.call_row(call_id)
        assert (row["status"], row["duration_s"]) == ("completed", None), duration
    body = b'{"uuid": "VON-X", "status": "completed", "duration": 1e400}'
    assert (await _vonage(ca, EVENT, body)).status == 204


async def test_vonage_fields_of_the_wrong_type_or_unstorable_never_give_5xx(carrier_app):
    ca = carrier_app
    to = OUR_NUMBER.lstrip("+")
    for uuid_value in ("a\x00b", "\ud800", {"x": 1}, ["a"], 7, None, "u" * 600):
        body = json.dumps({"uuid": uuid_value, "to": to}).encode()
        resp = await _vonage(ca, ANSWER, body)
        assert resp.status == 400, repr(uuid_value)[:20]
        body = json.dumps({"uuid": uuid_value, "status": "answered"}).encode()
        assert (await _vonage(ca, EVENT, body)).status == 400, repr(uuid_value)[:20]
    async with ca.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM calls") == 0
    # Optional fields the database cannot hold are dropped; the call is taken.
    call_uuid = str(uuid.uuid4())
    body = json.dumps(
        {
            "uuid": call_uuid,
            "to": to,
            "from": "\ud800",
            "conversation_uuid": "CON\x00",
            "status": ["answered"],
        }
    ).encode()
    resp = await _vonage(ca, ANSWER, body)
    assert resp.status == 200
    call_id = (await resp.json())[0]["endpoint"][0]["headers"]["call_id"]
    row = await ca.call_row(call_id)
    assert (row["external_id"], row["from_number"]) == (call_uuid, None)
    # A status of the wrong type is an event we do not track.
    body = json.dumps({"uuid": call_uuid, "status": {"s": "failed"}}).encode()
    assert (await _vonage(ca, EVENT, body)).status == 204
    assert (await ca.call_row(call_id))["status"] == "ringing"
