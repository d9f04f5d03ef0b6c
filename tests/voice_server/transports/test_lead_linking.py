"""Carrier calls are linked to the lead with the customer's number, however the lead's phone is written.

Through the real Twilio and Vonage webhooks (signed as the carriers sign them):
the carrier sends E.164 (Twilio with a plus, Vonage without), the lead's phone
is stored as a person typed it, and the call comes out with the lead on its
row, in ``GET /api/v1/calls/{id}`` and on the live session.
"""

import json
import xml.etree.ElementTree as ET

from tests.voice_server.carrier_app import OUR_NUMBER, PUBLIC_URL, TWILIO_TOKEN, VONAGE_SECRET
from voice_server.simulator.carrier.media_players import VonageStream, send_stream
from voice_server.simulator.carrier.signing import twilio_form, vonage_headers
from voice_server.simulator.carrier.wav import read_wav, sound

CALLER = "+14155550134"


async def _lead(
    ca, phone: str, *, owner: str | None = None, first_name: str = "Lee", updated: str = "now()"
) -> str:
    async with ca.pool.acquire() as conn:
        return str(
            await conn.fetchval(
                f"INSERT INTO leads (org_id, owner_id, first_name, phone, updated_at) "
                f"VALUES ($1, $2, $3, $4, {updated}) RETURNING id",
                ca.org_id,
                owner,
                first_name,
                phone,
            )
        )


async def _token(ca) -> str:
    from crm_core.auth.tokens import create_api_token

    async with ca.pool.acquire() as conn:
        issued = await create_api_token(
            conn,
            org_id=ca.org_id,
            user_id=ca.rep_id,
            name="tests",
            scopes=["read"],
            expires_at=None,
        )
    return issued.token


async def _twilio_inbound(ca, call_sid: str, caller: str) -> str:
    path = "/carriers/twilio/voice"
    params = {
        "CallSid": call_sid,
        "AccountSid": "AC" + "0" * 32,
        "From": caller,
        "To": OUR_NUMBER,
        "Direction": "inbound",
        "CallStatus": "ringing",
    }
    body, headers = twilio_form(TWILIO_TOKEN, PUBLIC_URL + path, params)
    resp = await ca.client.post(path, data=body, headers=headers)
    assert resp.status == 200, await resp.text()
    stream = ET.fromstring(await resp.text()).find("./Start/Stream")
    return {p.get("name"): p.get("value") for p in stream.findall("Parameter")}["call_id"]


async def _vonage_inbound(ca, uuid: str, caller: str) -> str:
    body = json.dumps(
        {
            "to": OUR_NUMBER.lstrip("+"),
            "from": caller,
            "uuid": uuid,
            "conversation_uuid": "CON-" + uuid,
        }
    ).encode()
    resp = await ca.client.post(
        "/carriers/vonage/answer", data=body, headers=vonage_headers(VONAGE_SECRET, body)
    )
    assert resp.status == 200, await resp.text()
    headers = (await resp.json())[0]["endpoint"][0]["headers"]
    ca.stream_tokens[headers["call_id"]] = headers["stream_token"]
    return headers["call_id"]


async def _api_call(ca, call_id: str) -> dict:
    resp = await ca.client.get(
        f"/api/v1/calls/{call_id}", headers={"Authorization": f"Bearer {await _token(ca)}"}
    )
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def test_an_inbound_twilio_call_is_linked_to_the_lead_typed_in_national_format(carrier_app):
    ca = carrier_app
    lead = await _lead(ca, "(415) 555-0134")
    await _lead(ca, "+44 20 7946 0134", first_name="Other")  # same last digits, another country
    call_id = await _twilio_inbound(ca, "CA" + "4" * 32, CALLER)
    assert str((await ca.call_row(call_id))["lead_id"]) == lead
    assert (await _api_call(ca, call_id))["lead_id"] == lead


async def test_an_inbound_vonage_call_without_a_plus_is_linked_to_its_lead(carrier_app):
    ca = carrier_app
    lead = await _lead(ca, "+1 415.555.0134")
    call_id = await _vonage_inbound(ca, "5e5a1f0c-0000-4000-8000-000000000001", CALLER.lstrip("+"))
    assert (await _api_call(ca, call_id))["lead_id"] == lead
    # The live session (its call.started event) knows the lead too.
    pcm, _ = read_wav(sound("hello-world"))
    async with ca.media_socket("vonage", call_id) as ws:
        await send_stream(
            ws,
            VonageStream(ca.stream_params(call_id), pcm[:1600], sample_rate=8000).messages(),
            realtime=False,
        )
    await ca.observer.ended(call_id)
    assert ca.observer.sessions[call_id].info.lead_id == lead


async def test_several_leads_with_the_number_link_the_reps_own_then_the_latest(carrier_app):
    ca = carrier_app
    async with ca.pool.acquire() as conn:
        other_rep = str(
            await conn.fetchval(
                "INSERT INTO users (org_id, email, name, role) VALUES ($1, 'o@acme.test', 'O', 'rep') "
                "RETURNING id",
                ca.org_id,
            )
        )
    older_own = await _lead(ca, "4155550134", owner=ca.rep_id, updated="now() - interval '9 days'")
    await _lead(ca, "+14155550134", owner=other_rep)  # updated later, but not the rep's
    call_id = await _twilio_inbound(ca, "CA" + "5" * 32, CALLER)
    row = await ca.call_row(call_id)
    assert str(row["lead_id"]) == older_own
    assert row["metadata"]["lead_match"]["candidates"] == 2

    async with ca.pool.acquire() as conn:
        await conn.execute("UPDATE leads SET owner_id = NULL WHERE id = $1", older_own)
        newest = await _lead(ca, "415 555 0134", owner=other_rep)
    call_id = await _twilio_inbound(ca, "CA" + "6" * 32, CALLER)
    assert str((await ca.call_row(call_id))["lead_id"]) == newest


async def test_a_caller_with_no_lead_or_no_number_is_left_unlinked(carrier_app):
    ca = carrier_app
    await _lead(ca, "(415) 555-0199")
    assert (await ca.call_row(await _twilio_inbound(ca, "CA" + "7" * 32, CALLER)))[
        "lead_id"
    ] is None
    anonymous = await _twilio_inbound(ca, "CA" + "8" * 32, "anonymous")
    assert (await ca.call_row(anonymous))["lead_id"] is None
