"""Twilio's webhooks, signed (and forged) with the twilio SDK's own RequestValidator."""

import hashlib
import json
import xml.etree.ElementTree as ET

from twilio.request_validator import RequestValidator

from tests.voice_server.carrier_app import OUR_NUMBER, PUBLIC_URL, REP_PHONE, TWILIO_TOKEN
from voice_server.simulator.carrier.signing import twilio_form, twilio_json

VOICE = "/carriers/twilio/voice"
STATUS = "/carriers/twilio/status"


def _inbound(call_sid="CA" + "1" * 32, to=OUR_NUMBER):
    return {"CallSid": call_sid, "AccountSid": "AC" + "0" * 32, "From": "+15557770000", "To": to,
            "Direction": "inbound", "CallStatus": "ringing"}


async def _post_form(client, path, params, token=TWILIO_TOKEN, sign_url=None):
    body, headers = twilio_form(token, sign_url or PUBLIC_URL + path, params)
    return await client.post(path, data=body, headers=headers)


async def test_signed_inbound_call_gets_twiml_forking_both_tracks_then_dialing_the_rep(carrier_app):
    ca = carrier_app
    resp = await _post_form(ca.client, VOICE, _inbound())
    assert resp.status == 200
    assert resp.content_type == "application/xml"
    root = ET.fromstring(await resp.text())
    assert [child.tag for child in root] == ["Start", "Dial"]
    stream = root.find("./Start/Stream")
    assert stream.get("track") == "both_tracks"
    assert stream.get("url") == "wss://coachline.example.com/media/twilio"
    params = {p.get("name"): p.get("value") for p in stream.findall("Parameter")}
    assert params["direction"] == "inbound" and params["org_id"] == ca.org_id
    assert root.find("./Dial/Number").text == REP_PHONE
    row = await ca.call_row(params["call_id"])
    assert (row["external_id"], row["direction"], row["status"], str(row["rep_id"])) == (
        "CA" + "1" * 32, "inbound", "ringing", ca.rep_id)


async def test_a_retried_webhook_reuses_the_same_call(carrier_app):
    ca = carrier_app
    first = ET.fromstring(await (await _post_form(ca.client, VOICE, _inbound())).text())
    again = ET.fromstring(await (await _post_form(ca.client, VOICE, _inbound())).text())
    ids = [{p.get("name"): p.get("value") for p in t.findall("./Start/Stream/Parameter")}["call_id"]
           for t in (first, again)]
    assert ids[0] == ids[1]


async def test_forged_missing_and_wrong_url_signatures_are_refused_with_403(carrier_app):
    ca = carrier_app
    forged = await _post_form(ca.client, VOICE, _inbound(), token="not-the-auth-token")
    assert forged.status == 403
    body, _ = twilio_form(TWILIO_TOKEN, PUBLIC_URL + VOICE, _inbound())
    missing = await ca.client.post(VOICE, data=body,
                                   headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert missing.status == 403
    # Signed for the URL the server sees, not the public one Twilio used: not Twilio's.
    local = await _post_form(ca.client, VOICE, _inbound(), sign_url=str(ca.client.make_url(VOICE)))
    assert local.status == 403
    # A valid signature over other parameters.
    body, headers = twilio_form(TWILIO_TOKEN, PUBLIC_URL + VOICE, _inbound())
    tampered = body.replace(b"%2B15557770000", b"%2B15559999999")
    assert (await ca.client.post(VOICE, data=tampered, headers=headers)).status == 403
    async with ca.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM calls") == 0
    assert 'coachline_carrier_webhook_rejections_total{carrier="twilio",hook="voice"} 4.0' in (
        await ca.metric("coachline_carrier_webhook_rejections_total"))


async def test_json_bodies_are_validated_through_body_sha256(carrier_app):
    ca = carrier_app
    url, body, headers = twilio_json(TWILIO_TOKEN, PUBLIC_URL + VOICE, _inbound())
    path = url.removeprefix(PUBLIC_URL)
    ok = await ca.client.post(path, data=body, headers=headers)
    assert ok.status == 200
    assert ET.fromstring(await ok.text()).find("./Start/Stream") is not None
    changed = json.dumps({**_inbound(), "To": "+15550000000"}).encode()
    assert (await ca.client.post(path, data=changed, headers=headers)).status == 403


async def test_json_bodies_only_under_the_json_type_and_only_their_scalar_fields(carrier_app):
    ca = carrier_app
    # Pinned by bodySHA256 and signed over the URL alone, but posted as another type: the URL
    # signature says nothing about a form, so it is no signature at all.
    url, body, headers = twilio_json(TWILIO_TOKEN, PUBLIC_URL + VOICE, _inbound())
    for other in ("application/ecmascript", "application/javascript", "application/graphql"):
        resp = await ca.client.post(
            url.removeprefix(PUBLIC_URL), data=body, headers={**headers, "Content-Type": other}
        )
        assert resp.status == 403, other
    # Signed, but the URL pins no body or two: nothing vouches for the one received.
    digest = hashlib.sha256(body).hexdigest()
    for query in ("", f"?bodySHA256={digest}&bodySHA256={digest}"):
        signature = RequestValidator(TWILIO_TOKEN).compute_signature(PUBLIC_URL + VOICE + query, {})
        resp = await ca.client.post(
            VOICE + query, data=body, headers={**headers, "X-Twilio-Signature": signature}
        )
        assert resp.status == 403, query
    # A nested or boolean CallSid is no CallSid, even signed.
    for call_sid in ({"sid": "CA" + "2" * 32}, ["CA" + "2" * 32], True):
        url, body, headers = twilio_json(
            TWILIO_TOKEN, PUBLIC_URL + VOICE, {**_inbound(), "CallSid": call_sid}
        )
        resp = await ca.client.post(url.removeprefix(PUBLIC_URL), data=body, headers=headers)
        assert resp.status == 400, call_sid
    async with ca.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM calls") == 0


async def test_a_number_routed_to_no_rep_is_rejected_in_twiml(carrier_app):
    ca = carrier_app
    resp = await _post_form(ca.client, VOICE, _inbound(to="+15550109999"))
    assert resp.status == 200
    root = ET.fromstring(await resp.text())
    assert [child.tag for child in root] == ["Reject"]


async def test_status_callbacks_move_the_call_forward_idempotently(carrier_app):
    ca = carrier_app
    sid = "CA" + "2" * 32
    root = ET.fromstring(await (await _post_form(ca.client, VOICE, _inbound(sid))).text())
    call_id = {p.get("name"): p.get("value") for p in root.findall("./Start/Stream/Parameter")}["call_id"]

    async def status(value, **extra):
        return await _post_form(ca.client, STATUS, {"CallSid": sid, "CallStatus": value, **extra})

    assert (await status("in-progress")).status == 204
    row = await ca.call_row(call_id)
    assert row["status"] == "in-progress" and row["answered_at"] is not None
    assert (await status("completed", CallDuration="42")).status == 204
    done = await ca.call_row(call_id)
    assert (done["status"], done["duration_s"]) == ("completed", 42)
    # Retried and late callbacks change nothing.
    assert (await status("completed", CallDuration="42")).status == 204
    assert (await status("ringing")).status == 204
    again = await ca.call_row(call_id)
    assert (again["status"], again["duration_s"], again["ended_at"]) == (
        "completed", 42, done["ended_at"])


async def test_status_callbacks_for_unknown_calls_or_statuses_and_forged_ones(carrier_app):
    ca = carrier_app
    unknown = await _post_form(ca.client, STATUS, {"CallSid": "CA" + "9" * 32, "CallStatus": "ringing"})
    assert unknown.status == 204
    bad = await _post_form(ca.client, STATUS, {"CallSid": "CA" + "9" * 32, "CallStatus": "exploded"})
    assert bad.status == 400
    forged = await _post_form(ca.client, STATUS, {"CallSid": "CA1", "CallStatus": "completed"},
                              token="wrong")
    assert forged.status == 403


async def test_a_rep_with_a_sip_address_is_dialed_over_sip(carrier_app):
    ca = carrier_app
    async with ca.pool.acquire() as conn:
        await conn.execute("UPDATE users SET sip_uri = 'sip:rita@pbx.acme.test' WHERE id = $1::uuid", ca.rep_id)
    root = ET.fromstring(await (await _post_form(ca.client, VOICE, _inbound("CA" + "7" * 32))).text())
    assert root.find("./Dial/Sip").text == "sip:rita@pbx.acme.test"
    assert root.find("./Dial/Number") is None
