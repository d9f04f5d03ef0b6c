"""What a SIP user agent server asks of its application, and what it hands it.

The ``SipUserAgentServer`` (``voice_server.sip.uas``) speaks SIP; a
``CallApplication`` decides what a call means: it admits an ``IncomingCall``
(or raises ``CallRejected`` with a SIP status), gives the RTP ports it bound in
an ``Admission``, and hears when the call is answered, changes media, sends a
key press or ends.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from voice_server.sip.addresses import NameAddr, SipUri
from voice_server.sip.sdp import Answer, SessionDescription
from voice_server.sip.siprec import RecordingMetadata
from voice_server.sip.transactions import Address


class CallRejected(Exception):
    """Raised by the application to refuse a call with a SIP status (404, 486, 503, …)."""

    def __init__(self, status: int, reason: str = "") -> None:
        super().__init__(f"{status} {reason}".strip())
        self.status = status
        self.reason = reason


@dataclass(frozen=True, slots=True)
class IncomingCall:
    sip_call_id: str
    caller: NameAddr
    callee: NameAddr
    request_uri: SipUri | None
    source: Address
    offer: SessionDescription
    audio_streams: int  # how many of the offer's streams we can take
    siprec: RecordingMetadata | None = None
    username: str | None = None  # the digest user, when the peer authenticated


@dataclass(frozen=True, slots=True)
class Admission:
    """What the application gives back for an admitted call: its handle and RTP ports."""

    handle: object
    local_ip: str
    ports: list[int]


class CallApplication(Protocol):
    def accepting(self) -> bool: ...

    async def admit(self, call: IncomingCall) -> Admission: ...

    async def answered(self, handle: object, answer: Answer) -> None: ...

    async def media_changed(self, handle: object, answer: Answer) -> None: ...

    async def ended(self, handle: object, reason: str, abnormal: bool) -> None: ...

    async def dtmf(self, handle: object, digit: str, duration_ms: int) -> None: ...
