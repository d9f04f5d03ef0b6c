"""Placing outbound calls, as the CRM sees it.

The CRM decides *whether* a user may call whom and records the call; the
carrier edge (in ``voice_server``) knows *how* to dial. The edge hands the
API an object satisfying ``Dialer``, so the CRM never imports upward.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


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
    status: str  # one of crm_core.calls.CALL_STATUSES, usually 'queued'


class DialerError(Exception):
    """The carrier refused or could not be reached; the API answers 502 with this message."""


class Dialer(Protocol):
    carriers: frozenset[str]

    async def place_call(self, request: OutboundCallRequest) -> PlacedCall: ...
