# ruff: noqa: F811 -- pytest fixtures imported from recording_world are parameters here
"""GET /calls/{id}/recording/status: whether the review's player can play, and why not."""

import uuid

import pytest_asyncio

from crm_core.api.recording_status import recording_status
from crm_core.api.recordings import RecordingAccess
from crm_core.recordings.access import LISTEN_PERMISSION
from media.frames import Party
from tests.voice_server.recording_world import bearer, db, make_world, node, tone_frames  # noqa: F401
from voice_server.app_keys import CALL_SESSIONS
from voice_server.call_session import CallInfo


@pytest_asyncio.fixture(loop_scope="session")
async def world(node, db):
    return node[0], node[1], await make_world(db)


async def _status(client, db, world, user):
    resp = await client.get(
        f"/api/v1/calls/{world.call_id}/recording/status", headers=await bearer(db, user)
    )
    return resp.status, await resp.json()


async def test_the_status_follows_the_recording_from_the_call_to_the_reviewer(world, db):
    client, app, world = world
    status, body = await _status(client, db, world, world.manager_a)
    assert (status, body["reason"]) == (200, "not_yet_stored")  # nothing said yet
    session = await app[CALL_SESSIONS].open(
        CallInfo(world.call_id, world.org_id, "simulator", "outbound", rep_id=world.rep)
    )
    for frame in tone_frames(Party.REP, 0.5):
        session.push_audio(frame)
    status, body = await _status(client, db, world, world.manager_a)
    assert body["reason"] == "not_yet_stored" and not body["available"]
    await app[CALL_SESSIONS].close(world.call_id)
    assert (await _status(client, db, world, world.manager_a))[1] == {
        "available": True,
        "reason": "available",
        "message": "",
    }
    # the rep: the organization does not let reps replay their calls (the node's default)
    status, body = await _status(client, db, world, world.rep)
    assert body["reason"] == "not_permitted" and "review their own recordings" in body["message"]
    await db.execute(
        "UPDATE organizations SET settings = settings || "
        "'{\"reps_review_own_recordings\": true}' WHERE id = $1",
        uuid.UUID(world.org_id),
    )
    assert (await _status(client, db, world, world.rep))[1]["available"] is True
    # ...unless they may not review their calls at all
    await db.execute(
        "UPDATE organizations SET settings = settings || "
        "'{\"reps_review_own_calls\": false}' WHERE id = $1",
        uuid.UUID(world.org_id),
    )
    assert (await _status(client, db, world, world.rep))[1]["reason"] == "not_permitted"
    # another rep's call, another team's manager: as if there were no such call
    assert (await _status(client, db, world, world.other_rep))[0] == 404
    assert (await _status(client, db, world, world.manager_b))[0] == 404
    resp = await client.get(f"/api/v1/calls/{world.call_id}/recording/status")
    assert resp.status == 401


def test_why_there_is_no_audio():
    admin = type(
        "P",
        (),
        {
            "user_id": "u",
            "org_id": "o",
            "role": "admin",
            "team_ids": (),
            "permissions": frozenset({LISTEN_PERMISSION}),
        },
    )()
    row = {
        "id": None,
        "status": None,
        "rep_id": None,
        "rep_team_id": None,
        "org_settings": {},
        "call_org_id": "o",
    }
    off = RecordingAccess(store=None)
    on = RecordingAccess(store=object())
    assert recording_status(row, admin, off).reason == "recording_off"
    assert recording_status(row, admin, on).reason == "not_recorded"
    assert recording_status(row, admin, on, call_live=True).reason == "not_yet_stored"
    assert recording_status({**row, "id": 1, "status": "deleted"}, admin, off).reason == "deleted"
    assert recording_status({**row, "id": 1, "status": "complete"}, admin, on).available
    assert "policy" in recording_status({**row, "id": 1, "status": "deleted"}, admin, on).message
