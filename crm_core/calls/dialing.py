"""Placing outbound calls, as the CRM sees it.

The CRM decides *whether* a user may call whom and records the call; the
carrier edge (in ``voice_server``) knows *how* to dial. The edge hands the
API an object satisfying ``Dialer``, so the CRM never imports upward.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from crm_core.calls.records import attach_external_id, update_call_status

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class OutboundCallRequest:
    org_id: str
    call_id: str  # the calls row already created for this attempt
    carrier: str  # 'twilio' | 'vonage' | 'sip'
    to_number: str
    from_number: str | None
    rep_id: str | None
    lead_id: str | None = None
    deal_id: str | None = None


@dataclass(frozen=True, slots=True)
class PlacedCall:
    external_id: str  # the carrier's id for the call (Twilio CallSid, Vonage uuid, SIP Call-ID)
    status: str  # one of crm_core.calls.records.CALL_STATUSES, usually 'queued'


class DialerError(Exception):
    """The carrier refused or could not be reached; the API answers 502 with this message."""


class Dialer(Protocol):
    carriers: frozenset[str]

    async def place_call(self, request: OutboundCallRequest) -> PlacedCall: ...


class CarrierNotConfigured(DialerError):
    """No dialer is registered for the carrier on this node (no credentials for it)."""


async def place_call(pool, dialers: Mapping[str, Dialer], request: OutboundCallRequest) -> PlacedCall:
    """Dial ``request`` through its carrier's dialer and record the carrier's id and status.

    The calls row (``request.call_id``) must exist. Raises ``CarrierNotConfigured`` when
    no dialer serves the carrier and ``DialerError`` when the carrier refuses; the row is
    left for the caller to mark failed.
    """
    dialer = dialers.get(request.carrier)
    if dialer is None:
        raise CarrierNotConfigured(f"carrier {request.carrier!r} is not configured for outbound calls")
    placed = await dialer.place_call(request)
    async with pool.acquire() as conn:
        row = await attach_external_id(conn, request.call_id, placed.external_id)
        if row is None:
            log.error("outbound call %s: row already has another carrier id", request.call_id)
        else:
            await update_call_status(conn, request.call_id, placed.status)
    log.info("outbound %s call %s placed (%s)", request.carrier, request.call_id, placed.external_id)
    return placed
