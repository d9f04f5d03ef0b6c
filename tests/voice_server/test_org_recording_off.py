"""An organization that turned recording off (``recording_enabled: false``) gets no recording of its
calls; another organization on the same node still does."""

from __future__ import annotations

import uuid

from crm_core.calls.records import NewCall, create_call
from media.frames import Party
from tests.voice_server.recording_world import db, node, tone_frames  # noqa: F401  (fixtures)
from voice_server.app_keys import CALL_SESSIONS
from voice_server.call_session import CallInfo


async def test_recording_follows_the_organizations_setting(node, db):  # noqa: F811
    _, app = node
    calls = {}
    for enabled in (True, False):
        org_id = await db.fetchval(
            "INSERT INTO organizations (name, slug, settings) VALUES ('Org', $1, $2) RETURNING id::text",
            f"rec-{uuid.uuid4().hex[:8]}",
            {"recording_enabled": enabled},
        )
        call_id = str(
            (
                await create_call(
                    db,
                    NewCall(
                        org_id,
                        "simulator",
                        "outbound",
                        external_id=uuid.uuid4().hex,
                        status="in-progress",
                    ),
                )
            )["id"]
        )
        session = await app[CALL_SESSIONS].open(CallInfo(call_id, org_id, "simulator", "outbound"))
        for frame in tone_frames(Party.CUSTOMER, 0.5):
            session.push_audio(frame)
        await app[CALL_SESSIONS].close(call_id)
        calls[enabled] = call_id
    recorded = {
        enabled: await db.fetchval(
            "SELECT count(*) FROM recordings WHERE call_id = $1", uuid.UUID(call_id)
        )
        for enabled, call_id in calls.items()
    }
    assert recorded == {True: 1, False: 0}
