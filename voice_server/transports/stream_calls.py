"""Binding a carrier media stream to the call it claims to carry."""

from __future__ import annotations

import logging

import asyncpg

from crm_core.calls.records import call_for_stream, update_call_status
from storage.errors import is_unavailable
from voice_server.call_session import CallInfo, CallSession, CallSessions

log = logging.getLogger(__name__)

# Streams of this node between "no session yet" and "session open": two starts
# for one call arriving together must not both pass the check while the first
# is still waiting on the database (seen once background jobs kept
# the pool's only warm connection busy).
_opening: set[tuple[int, str]] = set()


async def open_stream_session(
    pool: asyncpg.Pool, sessions: CallSessions, carrier: str, call_id: str,
    external_id: str | None,
) -> CallSession | None:
    """Open the session of a known call, or None when the ids match no call of ours.

    A call already streaming on this node is refused too: a second stream must not
    be able to end (or pour audio into) a live call.
    """
    key = (id(sessions), call_id)
    if sessions.get(call_id) is not None or key in _opening:
        log.warning("a second %s stream for live call %s refused", carrier, call_id)
        return None
    _opening.add(key)
    try:
        return await _open(pool, sessions, carrier, call_id, external_id)
    finally:
        _opening.discard(key)


async def _open(
    pool: asyncpg.Pool, sessions: CallSessions, carrier: str, call_id: str, external_id: str | None,
) -> CallSession | None:
    try:
        async with pool.acquire() as conn:
            row = await call_for_stream(conn, call_id, carrier, external_id)
            if row is not None:
                # Media flowing means the call was answered, whatever callbacks still say.
                await update_call_status(conn, row["id"], "in-progress")
    except asyncpg.PostgresError as exc:
        if is_unavailable(exc):
            raise  # the database is down, not the call unknown: the socket says "try again"
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
