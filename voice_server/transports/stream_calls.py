"""Binding a carrier media stream to the call it claims to carry.

A stream is let in only on the one-time token of the instruction we issued for
the call (``crm_core.calls.stream_admissions``): once, while the call is live.
"""

from __future__ import annotations

import logging

import asyncpg

from crm_core.calls.records import update_call_status
from crm_core.calls.stream_admissions import admit_stream
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
    external_id: str | None, token: str,
) -> CallSession | None:
    """Open the session of a known call, or None when the stream may not carry it.

    The ids must match a live call of ours and ``token`` its unused admission. A call
    already streaming (on any node: the admission is spent) is refused too: a second
    stream must not be able to end, pour audio into or re-record a call.
    """
    key = (id(sessions), call_id)
    if sessions.get(call_id) is not None or key in _opening:
        log.warning("a second %s stream for live call %s refused", carrier, call_id)
        return None
    _opening.add(key)
    try:
        return await _open(pool, sessions, carrier, call_id, external_id, token)
    finally:
        _opening.discard(key)


async def _open(
    pool: asyncpg.Pool, sessions: CallSessions, carrier: str, call_id: str, external_id: str | None,
    token: str,
) -> CallSession | None:
    try:
        async with pool.acquire() as conn:
            row = await admit_stream(conn, call_id, carrier, external_id, token,
                                     node_id=sessions.node_id)
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
