import io
import uuid
import wave

import numpy as np
import pytest
import pytest_asyncio

from crm_core.api.recordings import ByteRange, parse_range
from media.frames import Party
from tests.voice_server.recording_world import bearer, db, make_world, node, tone_frames  # noqa: F401
from voice_server.app_keys import CALL_SESSIONS
from voice_server.call_session import CallInfo


@pytest_asyncio.fixture(loop_scope="session")
async def recorded(node, db):
    """A finished 2-second stereo recording of the world's call."""
    client, app = node
    world = await make_world(db)
    sessions = app[CALL_SESSIONS]
    session = await sessions.open(CallInfo(world.call_id, world.org_id, "simulator", "outbound"))
    for rep, cust in zip(tone_frames(Party.REP, 2.0), tone_frames(Party.CUSTOMER, 2.0)):
        session.push_audio(rep)
        session.push_audio(cust)
    await sessions.close(world.call_id)
    client.db = db  # for _get's tokens
    return client, world


def _url(world):
    return f"/api/v1/calls/{world.call_id}/recording"


async def _get(client, world, user, **headers):
    return await client.get(_url(world), headers={**await bearer(client.db, user), **headers})


async def test_a_manager_gets_the_whole_recording_as_stereo_wav(recorded):
    client, world = recorded
    resp = await _get(client, world, world.manager_a)
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "audio/wav" and resp.headers["Accept-Ranges"] == "bytes"
    body = await resp.read()
    assert int(resp.headers["Content-Length"]) == len(body) == 44 + 2 * 8000 * 4
    with wave.open(io.BytesIO(body)) as wav:
        assert (wav.getnchannels(), wav.getframerate(), wav.getsampwidth(), wav.getnframes()) == (
            2,
            8000,
            2,
            16000,
        )
        pcm = np.frombuffer(wav.readframes(16000), "<i2")
    assert (pcm[0::2][::160] == np.arange(100)).all() and (
        pcm[1::2][::160] == 1000 + np.arange(100)
    ).all()


async def test_range_requests_return_the_right_bytes(recorded):
    client, world = recorded
    full = await (await _get(client, world, world.admin)).read()
    total = len(full)
    for header, start, end in [
        ("bytes=0-99", 0, 100),
        ("bytes=40-47", 40, 48),
        ("bytes=16000-40000", 16000, 40001),
        ("bytes=64000-", 64000, total),
        ("bytes=-10", total - 10, total),
        (f"bytes=100-{total + 500}", 100, total),
    ]:
        resp = await _get(client, world, world.admin, Range=header)
        assert resp.status == 206, header
        assert resp.headers["Content-Range"] == f"bytes {start}-{end - 1}/{total}"
        assert await resp.read() == full[start:end]
    resp = await _get(client, world, world.admin, Range=f"bytes={total}-")
    assert resp.status == 416 and resp.headers["Content-Range"] == f"bytes */{total}"
    resp = await _get(
        client, world, world.admin, Range="bytes=0-1,5-9"
    )  # multi-range: the whole file
    assert resp.status == 200 and len(await resp.read()) == total


async def test_refusals_are_audited_and_grants_record_the_range(recorded, db):
    client, world = recorded
    # the call's own rep (who may see the call) is refused the audio: 403; those who cannot
    # see the call at all (another rep, another team's manager) learn nothing: 404
    for user, status, code in (
        (world.rep, 403, "forbidden"),
        (world.other_rep, 404, "not_found"),
        (world.manager_b, 404, "not_found"),
    ):
        resp = await _get(client, world, user)
        assert resp.status == status
        assert (await resp.json())["error"]["code"] == code
    await _get(client, world, world.manager_a, Range="bytes=100-199")
    rows = await db.fetch(
        "SELECT * FROM audit_log WHERE resource_id = $1 AND action = 'recording.play' ORDER BY id",
        world.call_id,
    )
    denied = [r for r in rows if r["outcome"] == "denied"]
    assert {str(r["actor_id"]) for r in denied} == {world.rep, world.other_rep, world.manager_b}
    granted = [r for r in rows if r["outcome"] == "ok" and str(r["actor_id"]) == world.manager_a][
        -1
    ]
    assert granted["detail"]["range"] == "bytes=100-199" and granted["detail"]["bytes"] == [
        100,
        199,
    ]
    assert str(granted["ip"]) == "127.0.0.1" and granted["occurred_at"] is not None
    resp = await client.get(_url(world), headers={"Range": "bytes=0-9"})  # no credentials
    assert resp.status == 401
    anonymous = await db.fetchrow(
        "SELECT * FROM audit_log WHERE resource_id = $1 AND actor_id IS NULL AND outcome = 'denied'",
        world.call_id,
    )
    assert anonymous["detail"]["range"] == "bytes=0-9" and str(anonymous["ip"]) == "127.0.0.1"


async def test_reps_hear_their_own_calls_only_where_the_org_allows(recorded, db):
    client, world = recorded
    assert (await _get(client, world, world.rep)).status == 403
    await db.execute(
        "UPDATE organizations SET settings = settings || '{\"reps_review_own_recordings\": true}'"
        " WHERE id = $1",
        uuid.UUID(world.org_id),
    )
    assert (await _get(client, world, world.rep)).status == 200
    assert (await _get(client, world, world.other_rep)).status == 404
    await db.execute(
        "UPDATE organizations SET settings = settings - 'reps_review_own_recordings' WHERE id = $1",
        uuid.UUID(world.org_id),
    )


async def test_the_access_log_is_for_managers_and_admins(recorded, db):
    client, world = recorded
    await _get(client, world, world.manager_b)
    await _get(client, world, world.manager_a, Range="bytes=0-9")
    resp = await client.get(_url(world) + "/audit", headers=await bearer(db, world.manager_a))
    assert resp.status == 200
    entries = (await resp.json())["data"]
    assert entries[0]["actor_id"] == world.manager_a and entries[0]["outcome"] == "ok"
    assert entries[0]["actor_name"] == "mgr-a"  # what the review page shows
    assert any(e["actor_id"] == world.manager_b and e["outcome"] == "denied" for e in entries)
    assert all(e["ip"] == "127.0.0.1" for e in entries)
    for user, status in ((world.rep, 403), (world.manager_b, 404)):
        resp = await client.get(_url(world) + "/audit", headers=await bearer(db, user))
        assert resp.status == status


async def test_unknown_and_malformed_calls_are_404(recorded, db):
    client, world = recorded
    for path in (f"/api/v1/calls/{uuid.uuid4()}/recording", "/api/v1/calls/not-a-uuid/recording"):
        resp = await client.get(path, headers=await bearer(db, world.admin))
        assert resp.status == 404


def test_parse_range():
    assert parse_range(None, 100) is None and parse_range("items=0-1", 100) is None
    assert parse_range("bytes=-", 100) is None
    assert parse_range("bytes=10-", 100) == ByteRange(10, 100)
    assert parse_range("bytes=-1000", 100) == ByteRange(0, 100)
    for bad in ("bytes=100-", "bytes=5-4", "bytes=-0"):
        with pytest.raises(ValueError):
            parse_range(bad, 100)


async def test_a_browser_audio_element_plays_with_an_access_token_in_the_url(recorded, db):
    from crm_core.auth.tokens import create_access_token, create_browser_session

    client, world = recorded
    user = await db.fetchrow("SELECT * FROM users WHERE id = $1", uuid.UUID(world.manager_a))
    session = await create_browser_session(db, user, 3600)
    access = await create_access_token(
        db, org_id=user["org_id"], user_id=user["id"], parent_id=session.session_id, ttl_s=300
    )
    url = f"{_url(world)}?access_token={access.token}"
    resp = await client.get(url, headers={"Range": "bytes=44-"})  # what <audio> asks when seeking
    assert resp.status == 206 and len(await resp.read()) == 2 * 8000 * 4
    head = await client.head(url)
    assert head.status == 200 and head.headers["Accept-Ranges"] == "bytes"
    long_lived = (await bearer(db, world.manager_a))["Authorization"].split()[1]
    refused = await client.get(f"{_url(world)}?access_token={long_lived}")
    assert refused.status == 401  # API tokens never travel in URLs


async def test_every_answer_matches_the_api_s_openapi_document(recorded, db):
    """Granted, partial, unsatisfiable and refused plays, and the access log, as documented."""
    from tests.crm_core.api_world import ApiWorld

    client, world = recorded
    document = await (await client.get("/api/v1/openapi.json")).json()
    contract = ApiWorld(client, None, None, document)
    cases = [
        (world.manager_a, {}, 200),
        (world.manager_a, {"Range": "bytes=0-99"}, 206),
        (world.manager_a, {"Range": "bytes=999999999-"}, 416),
        (world.rep, {}, 403),  # sees the call, may not hear it (the org's setting)
        (world.manager_b, {}, 404),  # cannot see the call
    ]
    for user, headers, status in cases:
        resp = await _get(client, world, user, **headers)
        body = await resp.json() if resp.content_type == "application/json" else None
        assert resp.status == status
        contract.check_contract("GET", _url(world), resp.status, body)
    resp = await client.get(_url(world) + "/audit", headers=await bearer(db, world.manager_a))
    assert resp.status == 200
    contract.check_contract("GET", _url(world) + "/audit", 200, await resp.json())
    assert {status for _, _, status in contract.checked} == {200, 206, 403, 404, 416}
