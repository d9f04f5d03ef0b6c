"""Binding a carrier media stream to the call it claims to carry."""

from __future__ import annotations

import logging

import asyncpg

from crm_core.calls import update_call_status
from voice_server.call_session import CallInfo, CallSession, CallSessions
from voice_server.carriers.call_records import call_for_stream

log = logging.getLogger(__name__)


async def open_stream_session(
    pool: asyncpg.Pool, sessions: CallSessions, carrier: str, call_id: str,
    external_id: str | None,
) -> CallSession | None:
    """Open the session of a known call, or None when the ids match no call of ours.

    A call already streaming on this node is refused too: a second stream must not
    be able to end (or pour audio into) a live call.
    """
    if sessions.get(call_id) is not None:
        log.warning("a second %s stream for live call %s refused", carrier, call_id)
        return None
    try:
        async with pool.acquire() as conn:
            row = await call_for_stream(conn, call_id, carrier, external_id)
            if row is not None:
                # Media flowing means the call was answered, whatever callbacks still say.
                await update_call_status(conn, row["id"], "in-progress")
    except (TimeoutError, asyncpg.PostgresError, OSError):
        log.exception("could not look up call %s for a %s stream", call_id, carrier)
        return None
    if row is None or sessions.get(str(row["id"])) is not None:
        return None
    info = CallInfo(
        call_id=str(row["id"]),
        org_id=str(row["org_id"]),
        carrier=carrier,
        direction=row["direction"],
        external_id=row["external_id"],
        rep_id=_str_or_none(row["rep_id"]),
        lead_id=_str_or_none(row["lead_id"]),
        deal_id=_str_or_none(row["deal_id"]),
    )
    return await sessions.open(info)


def _str_or_none(value: object) -> str | None:
    return None if value is None else str(value)
