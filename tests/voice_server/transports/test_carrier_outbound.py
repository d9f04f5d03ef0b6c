"""Outbound calls through the real twilio and vonage SDKs, against the loopback carrier fake."""

import numpy as np
import pytest
import pytest_asyncio
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from crm_core.calls.dialing import DialerError, OutboundCallRequest
from media.frames import Party
from media.g711 import ulaw_decode, ulaw_encode
from tests.voice_server.carrier_app import (
    OUR_NUMBER,
    PUBLIC_URL,
    REP_PHONE,
    TWILIO_SID,
    TWILIO_TOKEN,
    start_carrier_app,
    stop_carrier_app,
)
from voice_server.simulator.carrier.media_players import TwilioStream, send_stream
from voice_server.simulator.carrier.rest_fake import (
    CarrierRestFake,
    TwilioAccount,
    stream_from_twiml,
)
from voice_server.simulator.carrier.wav import read_wav, sound
from voice_server.transports.carrier_config import CarrierConfig
from voice_server.transports.carriers import place_outbound_call
from voice_server.transports.twilio import TwilioDialer

CUSTOMER = "+15557770000"
APP_ID = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"


@pytest_asyncio.fixture(loop_scope="session")
async def dialing(migrated_database, redis_url, tmp_path, monkeypatch):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_path = tmp_path / "vonage.key"
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    async with CarrierRestFake(TwilioAccount(TWILIO_SID, TWILIO_TOKEN), APP_ID, public) as fake:
        # The vonage SDK speaks HTTPS only; it trusts the fake's throwaway CA through requests.
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", fake.ca_path)
        ca = await start_carrier_app(
            migrated_database, redis_url,
            COACHLINE_TWILIO_API_BASE=fake.twilio_base,
            COACHLINE_VONAGE_API_HOST=fake.vonage_host,
            COACHLINE_VONAGE_APPLICATION_ID=APP_ID,
            COACHLINE_VONAGE_PRIVATE_KEY_PATH=str(key_path),
        )
        try:
            yield ca, fake
        finally:
            await stop_carrier_app(ca)


async def _request(ca, carrier: str) -> OutboundCallRequest:
    async with ca.pool.acquire() as conn:
        call_id = str(await conn.fetchval(
            """INSERT INTO calls (org_id, carrier, direction, to_number, rep_id, status, started_at)
               VALUES ($1, $2, 'outbound', $3, $4, 'queued', now()) RETURNING id""",
            ca.org_id, carrier, CUSTOMER, ca.rep_id))
    return OutboundCallRequest(org_id=ca.org_id, call_id=call_id, carrier=carrier,
                               to_number=CUSTOMER, from_number=None, rep_id=ca.rep_id)


async def _stored_in_clear(ca, token: str) -> bool:
    """Whether the stream token is anywhere in the database but as its hash."""
    from crm_core.calls.stream_admissions import token_digest

    async with ca.pool.acquire() as conn:
        assert await conn.fetchval(
            "SELECT count(*) FROM stream_admissions WHERE token_sha256 = $1", token_digest(token)) == 1
        dump = await conn.fetchval(
            "SELECT string_agg(t::text, ' ') FROM (SELECT * FROM calls) t") or ""
        dump += await conn.fetchval(
            "SELECT string_agg(t::text, ' ') FROM (SELECT * FROM stream_admissions) t") or ""
    return token in dump


async def test_twilio_outbound_rings_the_rep_then_dials_the_customer_and_streams_both(dialing):
    ca, fake = dialing
    request = await _request(ca, "twilio")
    placed = await place_outbound_call(ca.app, request)
    assert placed.external_id.startswith("CA") and placed.status == "queued"
    sent = fake.twilio_calls[-1]
    assert (sent["To"], sent["From"]) == (REP_PHONE, OUR_NUMBER)
    assert sent["StatusCallback"] == PUBLIC_URL + "/carriers/twilio/status"
    assert set(sent["StatusCallbackEvent"]) == {"initiated", "ringing", "answered", "completed"}
    url, params, dial_target = stream_from_twiml(sent["Twiml"])
    assert url == "wss://coachline.example.com/media/twilio"
    token = params.pop("stream_token")
    assert params == {"call_id": request.call_id, "org_id": ca.org_id, "direction": "outbound"}
    assert len(token) >= 40 and await _stored_in_clear(ca, token) is False
    params["stream_token"] = token
    assert dial_target == CUSTOMER
    assert (await ca.call_row(request.call_id))["external_id"] == placed.external_id

    # Twilio now forks the call to us: the leg is the rep's, so inbound = rep.
    rep, _ = read_wav(sound("agent-loginok"))
    customer, _ = read_wav(sound("hello-world"))
    async with ca.media_socket("twilio") as ws:
        await send_stream(ws, TwilioStream(params, placed.external_id, inbound=rep,
                                           outbound=customer).messages(), realtime=False)
    await ca.observer.ended(request.call_id)
    assert np.array_equal(ca.observer.pcm(request.call_id, Party.REP), ulaw_decode(ulaw_encode(rep)))
    assert np.array_equal(ca.observer.pcm(request.call_id, Party.CUSTOMER),
                          ulaw_decode(ulaw_encode(customer)))


async def test_vonage_outbound_creates_the_call_with_our_ncco_over_https(dialing):
    ca, fake = dialing
    request = await _request(ca, "vonage")
    placed = await place_outbound_call(ca.app, request)
    sent = fake.vonage_calls[-1]
    assert placed.external_id == sent["uuid"] and placed.status == "queued"
    assert sent["to"] == [{"type": "phone", "number": CUSTOMER.lstrip("+")}]
    assert sent["from"] == {"type": "phone", "number": OUR_NUMBER.lstrip("+")}
    assert sent["event_url"] == [PUBLIC_URL + "/carriers/vonage/event"]
    (connect,) = sent["ncco"]
    endpoint = connect["endpoint"][0]
    assert (connect["action"], endpoint["type"], endpoint["content-type"]) == (
        "connect", "websocket", "audio/l16;rate=16000")
    assert endpoint["uri"] == "wss://coachline.example.com/media/vonage"
    token = endpoint["headers"].pop("stream_token")
    assert endpoint["headers"] == {"call_id": request.call_id}
    assert endpoint["authorization"] == {"type": "custom",
                                         "value": f"Bearer {request.call_id}.{token}"}
    assert len(token) >= 40 and await _stored_in_clear(ca, token) is False
    row = await ca.call_row(request.call_id)
    assert row["external_id"] == placed.external_id


async def test_carrier_refusals_and_missing_carriers_are_dialer_errors(dialing):
    ca, fake = dialing
    request = await _request(ca, "twilio")
    wrong = CarrierConfig(public_url=PUBLIC_URL, twilio_account_sid=TWILIO_SID,
                          twilio_auth_token="wrong-token", twilio_api_base=fake.twilio_base,
                          twilio_caller_id=OUR_NUMBER)
    with pytest.raises(DialerError, match="Twilio refused"):
        await TwilioDialer(wrong, lambda: ca.pool).place_call(request)
    with pytest.raises(DialerError, match="not configured"):
        await place_outbound_call(ca.app, OutboundCallRequest(
            org_id=ca.org_id, call_id=request.call_id, carrier="sip", to_number=CUSTOMER,
            from_number=None, rep_id=ca.rep_id))
    assert (await ca.call_row(request.call_id))["external_id"] is None


async def test_vonage_inbound_holds_the_caller_and_dials_our_socket_and_the_rep_into_it(dialing):
    import asyncio
    import json

    from tests.voice_server.carrier_app import VONAGE_SECRET
    from voice_server.simulator.carrier.media_players import VonageStream
    from voice_server.simulator.carrier.signing import vonage_headers, vonage_socket_headers

    ca, fake = dialing
    caller = "1b2c3d4e-0000-4000-8000-000000000001"
    body = json.dumps({"to": OUR_NUMBER.lstrip("+"), "from": "15557770000", "uuid": caller}).encode()
    resp = await ca.client.post("/carriers/vonage/answer", data=body,
                                headers=vonage_headers(VONAGE_SECRET, body))
    (action,) = await resp.json()
    assert action["action"] == "conversation" and action["endOnExit"] is True
    for _ in range(200):
        if len(fake.vonage_calls) >= 2:
            break
        await asyncio.sleep(0.05)
    media_leg, rep_leg = fake.vonage_calls
    assert media_leg["ncco"] == [{"action": "conversation", "name": action["name"]}]
    assert rep_leg["ncco"] == media_leg["ncco"]
    assert rep_leg["to"] == [{"type": "phone", "number": REP_PHONE.lstrip("+")}]
    (socket,) = media_leg["to"]
    assert (socket["type"], socket["uri"], socket["content-type"]) == (
        "websocket", "wss://coachline.example.com/media/vonage", "audio/l16;rate=16000")
    call_id = socket["headers"]["call_id"]
    assert socket["headers"]["vonage_uuid"] == caller
    token = socket["headers"]["stream_token"]
    assert socket["authorization"] == {"type": "custom", "value": f"Bearer {call_id}.{token}"}
    assert (await ca.call_row(call_id))["external_id"] == caller

    # The websocket leg Vonage then opens carries the conversation's mix.
    pcm, _ = read_wav(sound("hello-world"))
    assert await _stored_in_clear(ca, socket["headers"]["stream_token"]) is False
    async with ca.client.ws_connect("/media/vonage", headers=vonage_socket_headers(socket)) as ws:
        await send_stream(ws, VonageStream(socket["headers"], pcm, sample_rate=8000).messages(),
                          realtime=False)
    assert await ca.observer.ended(call_id) is False
    assert len(ca.observer.pcm(call_id, Party.MIXED)) >= len(pcm)


async def _token(ca) -> str:
    from crm_core.auth.tokens import create_api_token

    async with ca.pool.acquire() as conn:
        issued = await create_api_token(conn, org_id=ca.org_id, user_id=ca.rep_id, name="tests",
                                        scopes=["read", "write"], expires_at=None)
    return issued.token


async def _contract(ca):
    """Checks answers against the OpenAPI document the server publishes."""
    from tests.crm_core.api_world import ApiWorld

    return ApiWorld(ca.client, ca.pool, None, await (await ca.client.get("/api/v1/openapi.json")).json())


async def test_the_outbound_api_route_places_and_records_the_call(dialing):
    ca, fake = dialing
    auth = {"Authorization": f"Bearer {await _token(ca)}"}
    async with ca.pool.acquire() as conn:
        lead_id = str(await conn.fetchval(
            "INSERT INTO leads (org_id, owner_id, first_name, phone) VALUES ($1, $2, 'Lee', $3) RETURNING id",
            ca.org_id, ca.rep_id, CUSTOMER))
    resp = await ca.client.post("/api/v1/calls/outbound", json={"carrier": "twilio", "lead_id": lead_id},
                                headers=auth)
    assert resp.status == 201, await resp.text()
    call = await resp.json()
    assert (call["direction"], call["to_number"], call["lead_id"], call["rep_id"]) == (
        "outbound", CUSTOMER, lead_id, ca.rep_id)
    assert call["external_id"] == fake.twilio_calls[-1]["sid"]
    assert stream_from_twiml(fake.twilio_calls[-1]["Twiml"])[1]["call_id"] == call["id"]

    assert (await ca.client.post("/api/v1/calls/outbound", json={"carrier": "twilio",
                                                                 "to_number": CUSTOMER})).status == 401
    bad = await ca.client.post("/api/v1/calls/outbound", json={"carrier": "fax", "to_number": "12"},
                               headers=auth)
    assert bad.status == 422 and (await bad.json())["error"]["code"] == "validation_failed"


async def test_an_outbound_call_by_number_is_linked_to_the_lead_with_that_number(dialing):
    ca, _fake = dialing
    async with ca.pool.acquire() as conn:  # typed as a person would, not as E.164
        lead_id = str(await conn.fetchval(
            "INSERT INTO leads (org_id, owner_id, first_name, phone) VALUES ($1, $2, 'Lee', '415-555-0134') "
            "RETURNING id", ca.org_id, ca.rep_id))
    resp = await ca.client.post("/api/v1/calls/outbound", json={"carrier": "twilio", "to_number": "+14155550134"},
                                headers={"Authorization": f"Bearer {await _token(ca)}"})
    assert resp.status == 201, await resp.text()
    assert (await resp.json())["lead_id"] == lead_id


async def test_the_outbound_route_answers_502_when_the_carrier_cannot_dial(dialing):
    ca, _fake = dialing
    auth = {"Authorization": f"Bearer {await _token(ca)}"}
    async with ca.pool.acquire() as conn:  # a rep with nothing to ring: Twilio's dialer refuses
        await conn.execute("UPDATE users SET phone = NULL WHERE id = $1", ca.rep_id)
    try:
        resp = await ca.client.post("/api/v1/calls/outbound", json={"carrier": "twilio", "to_number": CUSTOMER},
                                    headers=auth)
    finally:
        async with ca.pool.acquire() as conn:
            await conn.execute("UPDATE users SET phone = $2 WHERE id = $1", ca.rep_id, REP_PHONE)
    assert resp.status == 502
    (await _contract(ca)).check_contract("POST", "/api/v1/calls/outbound", 502, await resp.json())
    error = (await resp.json())["error"]
    assert error["code"] == "carrier_error"
    assert (await ca.call_row(error["details"]["call_id"]))["status"] == "failed"


async def test_an_unconfigured_carrier_is_a_4xx_and_leaves_no_call_row(dialing):
    from voice_server.transports.carriers import DIALERS

    ca, fake = dialing
    ca.app[DIALERS].pop("vonage")
    resp = await ca.client.post("/api/v1/calls/outbound", json={"carrier": "vonage", "to_number": CUSTOMER},
                                headers={"Authorization": f"Bearer {await _token(ca)}"})
    assert resp.status == 422
    error = (await resp.json())["error"]
    assert (error["code"], error["details"]) == ("carrier_not_configured",
                                                 {"carrier": "vonage", "configured": ["twilio"]})
    async with ca.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM calls WHERE carrier = 'vonage'") == 0
    assert fake.requests_received == 0


async def test_a_retried_outbound_post_with_the_same_idempotency_key_dials_once(dialing):
    import asyncio

    ca, fake = dialing
    token = await _token(ca)
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": "dial-lee-once"}
    body = {"carrier": "twilio", "to_number": CUSTOMER}
    first = await ca.client.post("/api/v1/calls/outbound", json=body, headers=headers)
    assert first.status == 201, await first.text()
    call = await first.json()
    (await _contract(ca)).check_contract("POST", "/api/v1/calls/outbound", 201, call)
    # the client timed out and retries, once in turn and twice at the same time
    again = [await ca.client.post("/api/v1/calls/outbound", json=body, headers=headers)]
    again += await asyncio.gather(*(ca.client.post("/api/v1/calls/outbound", json=body, headers=headers)
                                    for _ in range(2)))
    for resp in again:
        assert resp.status == 201 and resp.headers["Idempotent-Replayed"] == "true"
        assert await resp.json() == call
    assert fake.requests_received == 1 and len(fake.twilio_calls) == 1
    assert fake.twilio_calls[0]["sid"] == call["external_id"]
    async with ca.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM calls WHERE direction = 'outbound'") == 1

    # the same key for another request is refused, not dialled
    other = await ca.client.post("/api/v1/calls/outbound", json={**body, "to_number": "+15557770001"},
                                 headers=headers)
    assert (other.status, (await other.json())["error"]["code"]) == (422, "idempotency_key_reused")
    # a new key is a new call
    fresh = await ca.client.post("/api/v1/calls/outbound", json=body,
                                 headers={**headers, "Idempotency-Key": "dial-lee-twice"})
    assert fresh.status == 201 and (await fresh.json())["id"] != call["id"]
    assert fake.requests_received == 2


async def test_a_retry_after_a_carrier_error_replays_the_502_without_dialling_again(dialing):
    ca, fake = dialing
    headers = {"Authorization": f"Bearer {await _token(ca)}", "Idempotency-Key": "refused-once"}
    from voice_server.transports.carriers import DIALERS

    # the carrier now refuses our credentials
    wrong = CarrierConfig(public_url=PUBLIC_URL, twilio_account_sid=TWILIO_SID, twilio_auth_token="wrong-token",
                          twilio_api_base=fake.twilio_base, twilio_caller_id=OUR_NUMBER)
    ca.app[DIALERS]["twilio"] = TwilioDialer(wrong, lambda: ca.pool)
    first = await ca.client.post("/api/v1/calls/outbound", json={"carrier": "twilio", "to_number": CUSTOMER},
                                 headers=headers)
    assert first.status == 502
    retry = await ca.client.post("/api/v1/calls/outbound", json={"carrier": "twilio", "to_number": CUSTOMER},
                                 headers=headers)
    assert retry.status == 502 and await retry.json() == await first.json()
    assert fake.requests_received == 1 and fake.twilio_calls == []

