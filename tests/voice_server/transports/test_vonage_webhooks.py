"""Vonage's answer and event webhooks, signed (and forged) as Vonage signs them."""

import json
import time

from tests.voice_server.carrier_app import VONAGE_SECRET
from voice_server.simulator.carrier.signing import vonage_headers

ANSWER = "/carriers/vonage/answer"
EVENT = "/carriers/vonage/event"
UUID = "63f61863-4a51-4f6b-86e1-46edebcf9356"


def _answer_query(uuid=UUID, to="15550100000"):
    return {"to": to, "from": "15557770000", "uuid": uuid, "conversation_uuid": "CON-1"}


async def _post_answer(ca, query):
    body = json.dumps(query).encode()
    return await ca.client.post(ANSWER, data=body, headers=vonage_headers(VONAGE_SECRET, body))


async def _answer(ca, uuid=UUID):
    resp = await _post_answer(ca, _answer_query(uuid))
    assert resp.status == 200
    return await resp.json()


async def test_signed_answer_returns_an_ncco_connecting_our_websocket_at_16khz(carrier_app):
    ca = carrier_app
    ncco = await _answer(ca)
    assert len(ncco) == 1 and ncco[0]["action"] == "connect"
    endpoint = ncco[0]["endpoint"][0]
    assert endpoint["type"] == "websocket"
    assert endpoint["uri"] == "wss://coachline.example.com/media/vonage"
    assert endpoint["content-type"] == "audio/l16;rate=16000"
    assert endpoint["headers"]["vonage_uuid"] == UUID
    # Vonage sends a custom authorization as the upgrade's Authorization header: the call's token.
    call_id, token = endpoint["headers"]["call_id"], endpoint["headers"]["stream_token"]
    assert endpoint["authorization"] == {"type": "custom", "value": f"Bearer {call_id}.{token}"}
    assert ncco[0]["eventUrl"] == ["https://coachline.example.com/carriers/vonage/event"]
    row = await ca.call_row(endpoint["headers"]["call_id"])
    assert (row["carrier"], row["external_id"], row["direction"], str(row["rep_id"])) == (
        "vonage", UUID, "inbound", ca.rep_id)


async def test_answer_by_post_with_a_hashed_json_body(carrier_app):
    ca = carrier_app
    body = json.dumps(_answer_query()).encode()
    resp = await ca.client.post(ANSWER, data=body, headers=vonage_headers(VONAGE_SECRET, body))
    assert resp.status == 200
    assert (await resp.json())[0]["endpoint"][0]["headers"]["vonage_uuid"] == UUID


async def test_forged_missing_stale_and_tampered_signatures_get_401(carrier_app):
    ca = carrier_app
    body = json.dumps(_answer_query()).encode()
    cases = {
        "forged": vonage_headers("some-other-signature-secret-of-32-bytes-or-more", body),
        "missing": {"Content-Type": "application/json"},
        "garbage": {"Authorization": "Bearer not.a.jwt", "Content-Type": "application/json"},
        "stale": vonage_headers(VONAGE_SECRET, body, issued_at=time.time() - 3600),
        "tampered": vonage_headers(VONAGE_SECRET, json.dumps({**_answer_query(), "to": "1"}).encode()),
    }
    for name, headers in cases.items():
        resp = await ca.client.post(ANSWER, data=body, headers=headers)
        assert resp.status == 401, name
    async with ca.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM calls") == 0
    assert 'coachline_carrier_webhook_rejections_total{carrier="vonage",hook="answer"} 5.0' in (
        await ca.metric("coachline_carrier_webhook_rejections_total"))


async def test_events_move_the_call_forward_idempotently(carrier_app):
    ca = carrier_app
    call_id = (await _answer(ca))[0]["endpoint"][0]["headers"]["call_id"]

    async def event(**payload):
        body = json.dumps({"uuid": UUID, "conversation_uuid": "CON-1", **payload}).encode()
        return await ca.client.post(EVENT, data=body, headers=vonage_headers(VONAGE_SECRET, body))

    assert (await event(status="started")).status == 204
    assert (await event(status="answered")).status == 204
    assert (await ca.call_row(call_id))["status"] == "in-progress"
    assert (await event(status="completed", duration="37")).status == 204
    done = await ca.call_row(call_id)
    assert (done["status"], done["duration_s"]) == ("completed", 37)
    assert (await event(status="completed", duration="37")).status == 204
    assert (await event(status="ringing")).status == 204
    assert (await ca.call_row(call_id))["status"] == "completed"
    body = json.dumps({"uuid": UUID, "status": "failed"}).encode()
    unsigned = await ca.client.post(EVENT, data=body, headers={"Content-Type": "application/json"})
    assert unsigned.status == 401
    unknown = json.dumps({"uuid": "no-such-call", "status": "answered"}).encode()
    resp = await ca.client.post(EVENT, data=unknown, headers=vonage_headers(VONAGE_SECRET, unknown))
    assert resp.status == 204


async def test_a_number_routed_to_no_rep_gets_a_talk_ncco_and_no_call(carrier_app):
    ca = carrier_app
    resp = await _post_answer(ca, _answer_query(to="15550109999"))
    assert resp.status == 200
    assert [action["action"] for action in await resp.json()] == ["talk"]
