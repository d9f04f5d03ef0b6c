"""Attacks on the carrier media sockets, against the real app: re-opening a finished call,
replacing its recording, streaming without the carrier's credentials, a second stream.

Each call is set up the way a carrier does it (signed webhook, the instruction's stream,
a completed callback); the attacker then knows the call's ids (ours and the carrier's)
and, at worst, every header and parameter the genuine stream carried.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import io
import json
import uuid
import wave

import aiohttp
import numpy as np
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from twilio.request_validator import RequestValidator

from crm_core.auth.principal import ALL_SCOPES
from crm_core.auth.tokens import create_api_token
from media.g711 import ulaw_decode, ulaw_encode
from storage.keys import new_master_key
from tests.voice_server.carrier_app import (
    OUR_NUMBER,
    PUBLIC_URL,
    TWILIO_TOKEN,
    VONAGE_SECRET,
    start_carrier_app,
    stop_carrier_app,
)
from voice_server.app import create_app
from voice_server.runtime import Runtime
from voice_server.simulator.carrier.media_players import TwilioStream, VonageStream
from voice_server.simulator.carrier.rest_fake import stream_from_twiml
from voice_server.simulator.carrier.signing import (
    twilio_form,
    vonage_headers,
    vonage_socket_headers,
)

GENUINE, INJECTED = 1200, -9000  # constant samples: which stream a recording holds


@pytest_asyncio.fixture(loop_scope="session")
async def app_with_recordings(migrated_database, redis_url, tmp_path):
    ca = await start_carrier_app(
        migrated_database,
        redis_url,
        COACHLINE_DATA_DIR=str(tmp_path / "data"),
        COACHLINE_RECORDING_KEY=f"k1:{new_master_key()}",
    )
    try:
        yield ca
    finally:
        await stop_carrier_app(ca)


def _signature(url: str = "wss://coachline.example.com/media/twilio") -> dict[str, str]:
    return {"X-Twilio-Signature": RequestValidator(TWILIO_TOKEN).compute_signature(url, {})}


async def _twilio_inbound(ca, call_sid: str) -> tuple[str, dict[str, str]]:
    params = {
        "CallSid": call_sid,
        "AccountSid": "AC" + "0" * 32,
        "From": "+15557770000",
        "To": OUR_NUMBER,
        "Direction": "inbound",
        "CallStatus": "ringing",
    }
    body, headers = twilio_form(TWILIO_TOKEN, PUBLIC_URL + "/carriers/twilio/voice", params)
    resp = await ca.client.post("/carriers/twilio/voice", data=body, headers=headers)
    assert resp.status == 200, await resp.text()
    url, stream_params, _ = stream_from_twiml(await resp.text())
    return url, stream_params


async def _twilio_completed(ca, call_sid: str) -> None:
    body, headers = twilio_form(
        TWILIO_TOKEN,
        PUBLIC_URL + "/carriers/twilio/status",
        {"CallSid": call_sid, "CallStatus": "completed", "CallDuration": "1"},
    )
    assert (
        await ca.client.post("/carriers/twilio/status", data=body, headers=headers)
    ).status < 300


async def _play(client: TestClient, path: str, messages, headers=None) -> int:
    """Play a stream; the server's close code (the HTTP status when the upgrade was refused)."""
    try:
        ws = await client.ws_connect(path, headers=headers or {})
    except aiohttp.WSServerHandshakeError as refused:
        return refused.status
    try:
        for _, message in messages:
            if ws.closed:
                break
            try:
                if isinstance(message, bytes):
                    await ws.send_bytes(message)
                else:
                    await ws.send_str(message)
            except ConnectionError:
                break
        if not ws.closed:
            await ws.close()
        return ws.close_code
    finally:
        await ws.close()


async def _recordings(ca, call_id: str) -> list:
    async with ca.pool.acquire() as conn:
        return await conn.fetch(
            "SELECT * FROM recordings WHERE call_id = $1::uuid ORDER BY created_at", call_id
        )


async def _until(predicate, what: str, timeout_s: float = 20.0):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        value = await predicate()
        if value:
            return value
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def _recording_done(ca, call_id: str) -> None:
    async def done():
        rows = await _recordings(ca, call_id)
        return rows and all(r["status"] != "recording" for r in rows)

    await _until(done, "the recording to be finished")


async def _played_samples(ca, call_id: str) -> np.ndarray:
    """What review plays for the call: GET /api/v1/calls/{id}/recording as an org admin."""
    async with ca.pool.acquire() as conn:
        admin = await conn.fetchval(
            "INSERT INTO users (org_id, email, name, role) VALUES ($1, $2, 'Ada', 'admin') RETURNING id",
            uuid.UUID(ca.org_id),
            f"admin-{uuid.uuid4().hex[:8]}@acme.test",
        )
        issued = await create_api_token(
            conn,
            org_id=ca.org_id,
            user_id=str(admin),
            name="review",
            scopes=sorted(ALL_SCOPES),
            expires_at=None,
        )
    resp = await ca.client.get(
        f"/api/v1/calls/{call_id}/recording", headers={"Authorization": f"Bearer {issued.token}"}
    )
    assert resp.status == 200, await resp.text()
    with wave.open(io.BytesIO(await resp.read())) as wav:
        return np.frombuffer(wav.readframes(wav.getnframes()), "<i2")


def _twilio_audio(params: dict[str, str], call_sid: str, value: int) -> list:
    return TwilioStream(params, call_sid, inbound=np.full(1600, value, np.int16)).messages()


def _heard(samples: np.ndarray, value: int) -> bool:
    return bool((samples == ulaw_decode(ulaw_encode(np.array([value], np.int16)))[0]).any())


async def test_a_finished_twilio_call_cannot_be_reopened_nor_its_recording_replaced(
    app_with_recordings,
):
    ca = app_with_recordings
    call_sid = "CA" + uuid.uuid4().hex
    url, params = await _twilio_inbound(ca, call_sid)
    call_id = params["call_id"]
    genuine = _twilio_audio(params, call_sid, GENUINE)
    assert await _play(ca.client, "/media/twilio", genuine, _signature(url)) == 1000
    await ca.observer.ended(call_id)
    await _twilio_completed(ca, call_sid)
    await _recording_done(ca, call_id)

    injected = _twilio_audio(params, call_sid, INJECTED)
    # Without Twilio's signature on the upgrade: refused before any socket exists.
    assert await _play(ca.client, "/media/twilio", injected) == 403
    forged = {"X-Twilio-Signature": RequestValidator("guessed").compute_signature(url, {})}
    assert await _play(ca.client, "/media/twilio", injected, forged) == 403
    # With a valid signature (it is the same for every stream) and every parameter the
    # genuine stream carried: the call is over and its admission spent.
    assert await _play(ca.client, "/media/twilio", injected, _signature(url)) == 1008

    rows = await _recordings(ca, call_id)
    assert len(rows) == 1 and rows[0]["status"] == "complete", rows
    played = await _played_samples(ca, call_id)
    assert _heard(played, GENUINE) and not _heard(played, INJECTED)
    assert (await ca.call_row(call_id))["status"] == "completed"


async def test_a_twilio_stream_needs_the_token_of_the_twiml_issued_for_that_call(
    app_with_recordings,
):
    ca = app_with_recordings
    sid_a, sid_b = "CA" + uuid.uuid4().hex, "CA" + uuid.uuid4().hex
    url, params_a = await _twilio_inbound(ca, sid_a)
    _, params_b = await _twilio_inbound(ca, sid_b)
    # Ringing, signed, the right ids, but no token or another call's token: refused.
    no_token = {k: v for k, v in params_a.items() if k != "stream_token"}
    other_token = {**params_a, "stream_token": params_b.get("stream_token", "x")}
    for params in (no_token, other_token):
        code = await _play(
            ca.client, "/media/twilio", _twilio_audio(params, sid_a, INJECTED), _signature(url)
        )
        assert code == 1008
    assert params_a["call_id"] not in ca.observer.sessions
    # The genuine stream still gets in afterwards, once.
    assert (
        await _play(
            ca.client, "/media/twilio", _twilio_audio(params_a, sid_a, GENUINE), _signature(url)
        )
        == 1000
    )
    assert (
        await _play(
            ca.client, "/media/twilio", _twilio_audio(params_a, sid_a, INJECTED), _signature(url)
        )
        == 1008
    )
    await _recording_done(ca, params_a["call_id"])
    assert len(await _recordings(ca, params_a["call_id"])) == 1


async def test_one_stream_per_call_across_nodes_even_when_they_race(app_with_recordings):
    ca = app_with_recordings
    runtime = await Runtime(ca.settings).start()
    other = TestClient(TestServer(create_app(ca.settings, runtime)))
    await other.start_server()
    try:
        call_sid = "CA" + uuid.uuid4().hex
        url, params = await _twilio_inbound(ca, call_sid)
        codes = await asyncio.gather(
            _play(
                ca.client,
                "/media/twilio",
                _twilio_audio(params, call_sid, GENUINE),
                _signature(url),
            ),
            _play(
                other, "/media/twilio", _twilio_audio(params, call_sid, INJECTED), _signature(url)
            ),
        )
        assert sorted(codes) == [1000, 1008], codes
        await _recording_done(ca, params["call_id"])
        assert len(await _recordings(ca, params["call_id"])) == 1
    finally:
        await other.close()
        await runtime.close()


async def vonage_inbound(ca, call_uuid: str) -> dict:
    """The websocket endpoint of the NCCO a signed answer webhook gets (headers, authorization)."""
    query = {
        "to": OUR_NUMBER.lstrip("+"),
        "from": "15557770000",
        "uuid": call_uuid,
        "conversation_uuid": "CON-" + call_uuid,
    }
    body = json.dumps(query).encode()
    resp = await ca.client.post(
        "/carriers/vonage/answer",
        data=body,
        headers={**vonage_headers(VONAGE_SECRET, body), "Content-Type": "application/json"},
    )
    assert resp.status == 200, await resp.text()
    return (await resp.json())[0]["endpoint"][0]


async def test_vonage_streams_need_the_ncco_token_and_a_finished_call_stays_finished(
    app_with_recordings,
):
    ca = app_with_recordings
    call_uuid = str(uuid.uuid4())
    endpoint = await vonage_inbound(ca, call_uuid)
    headers, upgrade = endpoint["headers"], vonage_socket_headers(endpoint)
    call_id = headers["call_id"]

    def audio(value: int, first: dict) -> list:
        return VonageStream(first, np.full(3200, value, np.int16)).messages()

    # Without the upgrade's Authorization, even with every header the NCCO carried: no socket.
    assert await _play(ca.client, "/media/vonage", audio(INJECTED, headers)) == 401
    # With it, naming the call (with or without the carrier's id) is not enough either.
    for first in (
        {"call_id": call_id},
        {"call_id": call_id, "vonage_uuid": call_uuid},
        {**headers, "stream_token": base64.urlsafe_b64encode(b"x" * 32).decode()},
    ):
        assert await _play(ca.client, "/media/vonage", audio(INJECTED, first), upgrade) == 1008
    assert call_id not in ca.observer.sessions
    assert await _play(ca.client, "/media/vonage", audio(GENUINE, headers), upgrade) == 1000
    await ca.observer.ended(call_id)
    body = json.dumps({"uuid": call_uuid, "status": "completed", "duration": "1"}).encode()
    await ca.client.post(
        "/carriers/vonage/event", data=body, headers=vonage_headers(VONAGE_SECRET, body)
    )
    await _recording_done(ca, call_id)
    # Replaying everything the genuine stream sent, its upgrade too, after the call: no socket.
    assert await _play(ca.client, "/media/vonage", audio(INJECTED, headers), upgrade) == 403
    assert await _play(ca.client, "/media/vonage", audio(INJECTED, {"call_id": call_id})) == 401

    rows = await _recordings(ca, call_id)
    assert len(rows) == 1, rows
    played = await _played_samples(ca, call_id)
    assert (played == GENUINE).any() and not (played == INJECTED).any()


async def test_the_database_holds_one_recording_per_call_and_keeps_older_extras(empty_database):
    import asyncpg

    from storage.migrations import apply_migrations, load_migrations

    conn = await asyncpg.connect(empty_database)
    try:
        # A database from before the rule, holding a call with two recordings (the second
        # one a later stream's): the migration keeps both rows, the first stays the call's.
        for migration in load_migrations():
            if migration.version < 14:
                await conn.execute(migration.sql)
        org = await conn.fetchval(
            "INSERT INTO organizations (name, slug) VALUES ('A', 'a') RETURNING id"
        )
        call = await conn.fetchval(
            "INSERT INTO calls (org_id, carrier, direction, status) VALUES ($1, 'twilio', 'inbound',"
            " 'completed') RETURNING id",
            org,
        )
        first, second = uuid.uuid4(), uuid.uuid4()
        day = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
        for rid, at in ((first, day), (second, day + datetime.timedelta(days=1))):
            await conn.execute(
                "INSERT INTO recordings (id, org_id, call_id, storage_key, key_id, status, created_at)"
                " VALUES ($1, $2, $3, $4, 'k1', 'complete', $5)",
                rid,
                org,
                call,
                str(rid),
                at,
            )
        await conn.execute("DROP TABLE IF EXISTS schema_migrations")
        await conn.execute(
            "CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL,"
            " checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        for migration in load_migrations():
            if migration.version < 14:
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    migration.version,
                    migration.name,
                    migration.checksum,
                )
        await apply_migrations(conn)
        flags = dict(await conn.fetch("SELECT id, extra_stream FROM recordings"))
        assert flags == {first: False, second: True}
        third = uuid.uuid4()
        try:
            await conn.execute(
                "INSERT INTO recordings (id, org_id, call_id, storage_key, key_id) VALUES ($1, $2, $3,"
                " $4, 'k1')",
                third,
                org,
                call,
                str(third),
            )
        except asyncpg.UniqueViolationError:
            pass
        else:
            raise AssertionError("a second recording for one call was accepted")
    finally:
        await conn.close()
