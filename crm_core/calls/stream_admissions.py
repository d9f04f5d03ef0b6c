"""Which carrier media stream may carry a call: one, on the token of an instruction we issued.

Whenever Coachline hands a carrier an instruction that forks a call to our media
socket (Twilio TwiML ``<Stream>``, a Vonage NCCO websocket endpoint), it puts a
fresh random token in it (a ``<Parameter>`` / a websocket header) and stores the
token's SHA-256 here with an expiry. The stream that opens later must present the
token; ``admit_stream`` then consumes the admission in the same statement that
checks it, so of any number of streams for one call exactly one is let in, only
while the call is still live (``LIVE_STATUSES``) and only within the window.
A finished call cannot be re-opened and its audio cannot be replaced.

Where the carrier can present the token on the socket's upgrade itself (Vonage's
websocket ``authorization``), ``stream_admission_open`` checks it there without
consuming it, so a socket is only ever accepted for an admission still open.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import uuid

import asyncpg

from crm_core.calls.records import LIVE_STATUSES, attach_external_id

log = logging.getLogger(__name__)

# Twilio runs <Start><Stream> when the leg is answered and Vonage opens the websocket
# when the connect action runs: an outbound call rings for up to a couple of minutes
# before that. Ten minutes covers queueing and ringing with room to spare.
ADMISSION_WINDOW_S = 600.0
TOKEN_BYTES = 32


def token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


async def issue_stream_admission(
    conn: asyncpg.Connection, call_id: str, carrier: str, *,
    window_s: float = ADMISSION_WINDOW_S,
) -> str:
    """A new one-time stream token for the call; only its hash is stored.

    Issuing again before any stream was admitted (a retried webhook) replaces the
    token; after a stream was admitted nothing is re-armed and the token returned
    admits nothing.
    """
    token = secrets.token_urlsafe(TOKEN_BYTES)
    armed = await conn.fetchval(
        """
        INSERT INTO stream_admissions (call_id, carrier, token_sha256, expires_at)
        VALUES ($1::uuid, $2, $3, now() + make_interval(secs => $4))
        ON CONFLICT (call_id) DO UPDATE
            SET token_sha256 = EXCLUDED.token_sha256, carrier = EXCLUDED.carrier,
                issued_at = now(), expires_at = EXCLUDED.expires_at
            WHERE stream_admissions.admitted_at IS NULL
        RETURNING true
        """,
        call_id, carrier, token_digest(token), float(window_s),
    )
    if not armed:
        log.info("call %s already had its media stream; no new admission issued", call_id)
    return token


def _checkable(call_id: object, token: object) -> uuid.UUID | None:
    """The call's id when the pair is worth a lookup: a usable token and a real UUID."""
    if not isinstance(token, str) or not token or len(token) > 256:
        return None
    try:
        return uuid.UUID(call_id)  # type: ignore[arg-type]
    except (ValueError, TypeError, AttributeError):
        return None


async def stream_admission_open(
    conn: asyncpg.Connection, call_id: str, carrier: str, token: str,
) -> bool:
    """Whether ``token`` is the unused, unexpired admission of live call ``call_id`` of
    ``carrier``; consumes nothing (``admit_stream`` does, once the stream names its call)."""
    call_uuid = _checkable(call_id, token)
    if call_uuid is None:
        return False
    return bool(await conn.fetchval(
        """
        SELECT true FROM stream_admissions a JOIN calls c ON c.id = a.call_id
        WHERE a.call_id = $1 AND a.carrier = $2 AND c.carrier = $2
          AND a.token_sha256 = $3 AND a.admitted_at IS NULL AND a.expires_at > now()
          AND c.status = ANY($4::text[])
        """,
        call_uuid, carrier, token_digest(token), list(LIVE_STATUSES),
    ))


async def admit_stream(
    conn: asyncpg.Connection, call_id: str, carrier: str, external_id: str | None, token: str,
    *, node_id: str | None = None,
) -> asyncpg.Record | None:
    """The call row when this stream may carry the call, consuming its admission; else None.

    The stream must name a live call of ``carrier`` whose carrier id matches
    ``external_id`` (a call without one yet takes it) and present the unexpired,
    unused token issued for it. The admitted call is marked as carried by ``node_id``
    (the node taking the stream), so it is ended if that node dies (``crm_core.calls.nodes``).
    """
    call_uuid = _checkable(call_id, token)
    if call_uuid is None:
        return None
    try:
        async with conn.transaction():
            return await _consume(conn, call_uuid, carrier, external_id, token, node_id)
    except _WrongCarrierCall:
        return None  # rolled back: the admission stays for the stream of the right call


class _WrongCarrierCall(Exception):
    pass


async def _consume(
    conn: asyncpg.Connection, call_id: uuid.UUID, carrier: str, external_id: str | None, token: str,
    node_id: str | None,
) -> asyncpg.Record | None:
    admitted = await conn.fetchval(
        """
        UPDATE stream_admissions a SET admitted_at = now()
        FROM calls c
        WHERE a.call_id = $1 AND c.id = a.call_id
          AND a.carrier = $2 AND c.carrier = $2
          AND a.token_sha256 = $3 AND a.admitted_at IS NULL AND a.expires_at > now()
          AND c.status = ANY($4::text[])
        RETURNING a.call_id
        """,
        call_id, carrier, token_digest(token), list(LIVE_STATUSES),
    )
    if admitted is None:
        return None
    row = await conn.fetchrow(
        "UPDATE calls SET node_id = $2 WHERE id = $1 RETURNING *", admitted, node_id
    )
    if external_id is None or row["external_id"] == external_id:
        return row
    if row["external_id"] is None:
        attached = await attach_external_id(conn, str(call_id), external_id)
        if attached is not None:
            return attached
    raise _WrongCarrierCall
