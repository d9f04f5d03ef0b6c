"""The Vonage media socket's upgrade, authenticated before the socket is accepted.

Every websocket endpoint we hand Vonage carries an ``authorization`` of type
``custom``: Vonage then sends its value as the ``Authorization`` header of the
WebSocket upgrade. The value is ``Bearer <call id>.<stream token>``, the call's
one-time stream token (``crm_core.calls.stream_admissions``). The upgrade is
refused before any socket exists (401 without a usable credential, 403 when it
is not the open admission of a live call of ours, 503 when the database cannot
tell) unless the token is the call's unused, unexpired admission. Nothing is
consumed here: the ``websocket:connected`` message must then name the same call
and token, and consumes the admission, so two sockets presenting one credential
still get one stream.
"""

from __future__ import annotations

import hmac
import logging
import re
from dataclasses import dataclass

import asyncpg
from vonage_voice.models.common import WebsocketAuthorization

from crm_core.api_errors import Forbidden, ServiceUnavailable, Unauthenticated
from crm_core.calls.stream_admissions import stream_admission_open
from storage.errors import is_unavailable

log = logging.getLogger(__name__)

# A call id is a UUID and a token is URL-safe base64 (``secrets.token_urlsafe``): neither holds
# a dot, so one separates them. Anything else is not a credential we could have issued.
_CREDENTIAL_RE = re.compile(r"^Bearer ([0-9a-fA-F-]{36})\.([A-Za-z0-9_-]{20,256})$")


@dataclass(frozen=True, slots=True)
class SocketCredential:
    call_id: str
    token: str

    def matches(self, call_id: object, token: object) -> bool:
        """Whether the connected message names this credential's call and token."""
        if not isinstance(call_id, str) or not isinstance(token, str):
            return False
        same_token = hmac.compare_digest(
            token.encode("utf-8", "surrogatepass"), self.token.encode()
        )
        return call_id.lower() == self.call_id.lower() and same_token


def socket_authorization(call_id: str, token: str) -> WebsocketAuthorization:
    """The endpoint's ``authorization``: what Vonage sends as the upgrade's Authorization."""
    return WebsocketAuthorization(type="custom", value=f"Bearer {call_id}.{token}")


def parse_socket_credential(header: str | None) -> SocketCredential | None:
    match = _CREDENTIAL_RE.match(header.strip()) if isinstance(header, str) else None
    return SocketCredential(match.group(1), match.group(2)) if match else None


async def authorize_upgrade(pool: asyncpg.Pool, header: str | None) -> SocketCredential:
    """The upgrade's credential when it is an open admission; else the ApiError to answer."""
    credential = parse_socket_credential(header)
    if credential is None:
        raise Unauthenticated("a Vonage media socket needs the Authorization our NCCO gave it")
    try:
        async with pool.acquire() as conn:
            open_ = await stream_admission_open(
                conn, credential.call_id, "vonage", credential.token
            )
    except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError) as exc:
        if is_unavailable(exc):
            log.warning(
                "vonage media upgrade: cannot check its admission now: %s: %s",
                type(exc).__name__,
                exc,
            )
            raise ServiceUnavailable() from None
        log.exception("vonage media upgrade: admission check failed")
        raise Forbidden("this media socket is not admitted") from None
    if not open_:
        raise Forbidden("this media socket is not admitted")
    return credential
