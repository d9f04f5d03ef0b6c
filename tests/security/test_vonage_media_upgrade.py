"""The Vonage media socket is authenticated on its upgrade, before any socket exists.

Our NCCO gives each websocket endpoint a custom ``authorization`` (the call's one-time
stream token), which Vonage sends as the upgrade's ``Authorization`` header. An upgrade
without it, with a wrong one, or with one whose admission is spent or whose call is over
is answered 401/403 with the one error shape and never becomes a socket; the connected
message must still name the same call and token. A socket that passed the upgrade but
starts no call is closed after ``COACHLINE_MEDIA_START_TIMEOUT_S``, not the idle timeout.
"""

from __future__ import annotations

import json
import uuid

import aiohttp
import numpy as np
import pytest
import pytest_asyncio

from tests.security.test_media_sockets import vonage_inbound
from tests.voice_server.carrier_app import VONAGE_SECRET, start_carrier_app, stop_carrier_app
from voice_server.simulator.carrier.media_players import TwilioStream, VonageStream, send_stream
from voice_server.simulator.carrier.signing import vonage_headers, vonage_socket_headers
from voice_server.transports.vonage_socket_auth import parse_socket_credential


@pytest_asyncio.fixture(loop_scope="session")
async def carrier_app(migrated_database, redis_url):
    ca = await start_carrier_app(migrated_database, redis_url)
    try:
        yield ca
    finally:
        await stop_carrier_app(ca)


async def _upgrade_status(ca, headers: dict[str, str]) -> int:
    """The status the upgrade got (101 when a socket opened; it is then closed)."""
    try:
        ws = await ca.client.ws_connect("/media/vonage", headers=headers)
    except aiohttp.WSServerHandshakeError as refused:
        return refused.status
    await ws.close()
    return 101


async def _refusal(ca, headers: dict[str, str]) -> tuple[int, dict]:
    """The plain HTTP answer to a WebSocket upgrade request (what a scanner sees)."""
    upgrade = {
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    }
    resp = await ca.client.get("/media/vonage", headers={**upgrade, **headers})
    body = await resp.json() if resp.content_type == "application/json" else {}
    return resp.status, body


async def _admitted(ca, call_id: str) -> bool:
    async with ca.pool.acquire() as conn:
        return await conn.fetchval(
            "SELECT admitted_at IS NOT NULL FROM stream_admissions WHERE call_id = $1::uuid",
            call_id,
        )


def _stream(headers: dict, value: int = 900) -> list:
    return VonageStream(headers, np.full(1600, value, np.int16)).messages()


async def _play(ca, upgrade: dict, messages) -> int:
    async with ca.client.ws_connect("/media/vonage", headers=upgrade) as ws:
        await send_stream(ws, messages, realtime=False, close=False)
        if not ws.closed:
            await ws.close()
        return ws.close_code


async def test_an_upgrade_without_or_with_a_wrong_authorization_is_refused_before_the_socket_opens(
    carrier_app,
):
    ca = carrier_app
    endpoint = await vonage_inbound(ca, str(uuid.uuid4()))
    other = await vonage_inbound(ca, str(uuid.uuid4()))
    call_id, token = endpoint["headers"]["call_id"], endpoint["headers"]["stream_token"]
    other_token = other["headers"]["stream_token"]
    unauthenticated = {
        "missing": {},
        "empty": {"Authorization": ""},
        "basic": {"Authorization": "Basic dXNlcjpwYXNz"},
        "token only": {"Authorization": f"Bearer {token}"},
        "no token": {"Authorization": f"Bearer {call_id}."},
        "not ascii": {"Authorization": f"Bearer {call_id}.{token[:-1]}é"},
        "webhook jwt": vonage_headers(VONAGE_SECRET, b""),  # signed, but not a socket credential
    }
    forbidden = {
        "guessed token": {"Authorization": f"Bearer {call_id}.{'A' * 43}"},
        "another call's token": {"Authorization": f"Bearer {call_id}.{other_token}"},
        "unknown call": {"Authorization": f"Bearer {uuid.uuid4()}.{token}"},
    }
    for name, headers in {**unauthenticated, **forbidden}.items():
        expected = 401 if name in unauthenticated else 403
        assert await _upgrade_status(ca, headers) == expected, name
        status, body = await _refusal(ca, headers)
        assert status == expected, name
        assert body["error"]["code"] == ("unauthenticated" if expected == 401 else "forbidden")
        assert token not in json.dumps(body)
    assert call_id not in ca.observer.sessions and not await _admitted(ca, call_id)
    # Nothing was spent: Vonage's own socket, with the NCCO's authorization, still gets in.
    assert await _play(ca, vonage_socket_headers(endpoint), _stream(endpoint["headers"])) == 1000
    assert await ca.observer.ended(call_id) is False


async def test_a_spent_admission_or_a_finished_call_refuses_the_upgrade(carrier_app):
    ca = carrier_app
    call_uuid = str(uuid.uuid4())
    endpoint = await vonage_inbound(ca, call_uuid)
    upgrade = vonage_socket_headers(endpoint)
    assert await _play(ca, upgrade, _stream(endpoint["headers"])) == 1000
    await ca.observer.ended(endpoint["headers"]["call_id"])
    # The genuine upgrade replayed: the admission is spent.
    assert (await _refusal(ca, upgrade))[0] == 403
    # A call that ended before its socket opened: refused though the admission is unused.
    ended = await vonage_inbound(ca, str(uuid.uuid4()))
    body = json.dumps({"uuid": ended["headers"]["vonage_uuid"], "status": "completed"}).encode()
    resp = await ca.client.post(
        "/carriers/vonage/event", data=body, headers=vonage_headers(VONAGE_SECRET, body)
    )
    assert resp.status == 204
    assert (await _refusal(ca, vonage_socket_headers(ended)))[0] == 403
    assert not await _admitted(ca, ended["headers"]["call_id"])


async def test_the_connected_message_must_name_the_call_and_token_of_the_upgrade(carrier_app):
    ca = carrier_app
    a = await vonage_inbound(ca, str(uuid.uuid4()))
    b = await vonage_inbound(ca, str(uuid.uuid4()))
    # A's upgrade carrying B's headers (B's token too): refused, and neither admission spent.
    assert await _play(ca, vonage_socket_headers(a), _stream(b["headers"])) == 1008
    for endpoint in (a, b):
        assert not await _admitted(ca, endpoint["headers"]["call_id"])
    assert await _play(ca, vonage_socket_headers(b), _stream(b["headers"])) == 1000
    assert await ca.observer.ended(b["headers"]["call_id"]) is False
    text = await ca.metric("coachline_carrier_rejected_messages_total")
    assert 'carrier="vonage",reason="credential_mismatch"' in text


@pytest_asyncio.fixture(loop_scope="session")
async def short_start(migrated_database, redis_url):
    # The idle timeout is long, so only the start deadline can close these sockets.
    ca = await start_carrier_app(
        migrated_database,
        redis_url,
        COACHLINE_MEDIA_START_TIMEOUT_S="0.3",
        COACHLINE_MEDIA_IDLE_TIMEOUT_S="600",
    )
    try:
        yield ca
    finally:
        await stop_carrier_app(ca)


@pytest.mark.parametrize("carrier", ["vonage", "twilio"])
async def test_a_socket_that_starts_no_call_is_closed_at_the_start_deadline(short_start, carrier):
    ca = short_start
    call_id = await ca.new_call(carrier, "inbound", None)
    async with ca.media_socket(carrier, call_id) as ws:
        if carrier == "twilio":
            connected = TwilioStream(
                ca.stream_params(call_id), "CA" + "7" * 32, inbound=np.zeros(160, np.int16)
            ).messages()[0][1]
            await ws.send_str(connected)  # a first message, but no start
        else:
            await ws.send_bytes(b"\x00" * 640)  # audio, refused: messages do not hold the socket
        closing = await ws.receive(timeout=30)
        assert closing.type == aiohttp.WSMsgType.CLOSE, closing
        assert (closing.data, closing.extra) == (1001, "no call started")
    assert call_id not in ca.observer.sessions and not await _admitted(ca, call_id)
    assert 'outcome="start_timeout"' in await ca.metric("coachline_carrier_streams_total")


def test_only_a_call_id_and_a_token_make_a_credential():
    call_id, token = str(uuid.uuid4()), "T" * 43
    assert parse_socket_credential(f"Bearer {call_id}.{token}") == (
        parse_socket_credential(f"  Bearer {call_id}.{token} ")
    )
    credential = parse_socket_credential(f"Bearer {call_id}.{token}")
    assert (credential.call_id, credential.token) == (call_id, token)
    assert credential.matches(call_id, token) and credential.matches(call_id.upper(), token)
    for call, tok in (
        (call_id, token[:-1]),
        (str(uuid.uuid4()), token),
        (call_id, None),
        (None, token),
        (call_id, "\udcff"),
    ):
        assert not credential.matches(call, tok)
    for header in (
        None,
        "",
        "Bearer",
        f"bearer{call_id}.{token}",
        f"Bearer {call_id}",
        f"Bearer {call_id}.{token}.x",
        "Bearer " + "a" * 9000,
        f"Bearer {call_id}.{'T' * 257}",
    ):
        assert parse_socket_credential(header) is None, header


async def test_an_upgrade_the_database_cannot_check_is_told_to_retry(migrated_database):
    import asyncpg

    from crm_core.api_errors import ServiceUnavailable
    from voice_server.transports.vonage_socket_auth import authorize_upgrade

    pool = await asyncpg.create_pool(migrated_database, min_size=1, max_size=1)
    await pool.close()  # PostgreSQL gone from under the node: 503, never a 500 or an admission
    with pytest.raises(ServiceUnavailable):
        await authorize_upgrade(pool, f"Bearer {uuid.uuid4()}.{'T' * 43}")
