"""A SIP user agent server that answers calls so Coachline can listen to them.

``SipUserAgentServer`` is sans-IO: the transport feeds it datagrams
(``datagram_received``) and gives it a ``send`` function; what a call
*means* — who the rep is, where its RTP goes, what is persisted — is the
``CallApplication``'s business. Request handling, in order:

* unparseable datagram → 400 when there is a Via to answer to, else dropped (logged);
* a peer no allow-list entry covers → 403; a peer that owes a digest → 401 challenge;
* draining or full → 503; unknown methods → 501, known but unsupported → 405;
* INVITE: 100, then the application admits (404 unknown route …), 180, 200 with
  the SDP answer, repeated until ACK; 415 for a body type we do not read, 400
  for malformed SDP or SIPREC metadata, 488 when no stream is PCMU/PCMA;
* CANCEL before the 200 → 200 + 487; BYE → 200 and the call ends; no dialog → 481;
* re-INVITE (hold/resume) → new answer on the same ports; one at a time (491).

This module is the dispatcher (parsing, peers, digest, transactions); the calls'
state and their requests are ``voice_server.sip.calls``, the contract with the
application ``voice_server.sip.application``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from voice_server.sip.addresses import NameAddr, Via, with_received
from voice_server.sip.application import CallApplication
from voice_server.sip.calls import ALLOW, KNOWN_UNSUPPORTED, CallHandling, SipCall, UasOptions
from voice_server.sip.dialog import new_tag
from voice_server.sip.digest import DigestOutcome
from voice_server.sip.message import (
    Headers,
    SipParseError,
    SipRequest,
    SipResponse,
    canonical_name,
    parse_message,
    response_to,
    split_header_values,
)
from voice_server.sip.peers import PeerPolicy
from voice_server.sip.transactions import Address, TransactionLayer

log = logging.getLogger(__name__)


class SipUserAgentServer(CallHandling):
    def __init__(self, options: UasOptions, peers: PeerPolicy, app: CallApplication,
                 send: Callable[[bytes, Address], None]) -> None:
        self.options = options
        self.peers = peers
        self.app = app
        self._send = send
        self.transactions = TransactionLayer(send, options.timers)
        self._by_invite_key: dict[tuple, SipCall] = {}  # (call-id, from-tag, cseq): retransmits
        self._dialogs: dict[tuple[str, str, str], SipCall] = {}
        self._client: dict[str, SipCall] = {}  # branch of our BYE → call
        self._tasks: set[asyncio.Task] = set()
        self.rejected = 0  # datagrams we could not read (for metrics)
        self._admitting = 0  # INVITEs waiting on the application (they count as calls)
        # Scanners probe SIP ports all day: one log line per source per minute, not per packet.
        self._logged: dict[str, float] = {}

    # ---------------------------------------------------------------- input

    def datagram_received(self, data: bytes, address: Address) -> None:
        if not data.strip():
            return  # CRLF keep-alive (RFC 5626 §4.4.1)
        try:
            message = parse_message(data)
        except SipParseError as exc:
            self.rejected += 1
            self._answer_unparseable(data, address, exc)
            return
        try:
            if isinstance(message, SipResponse):
                self._on_response(message)
            else:
                self._on_request(message, address)
        except SipParseError as exc:
            self.rejected += 1
            log.warning("bad SIP %s from %s:%d: %s", getattr(message, "method", "response"),
                        address[0], address[1], exc)
            if isinstance(message, SipRequest) and message.method != "ACK":
                self._reply(message, address, exc.status, str(exc)[:80])

    def _answer_unparseable(self, data: bytes, address: Address, exc: SipParseError) -> None:
        """400 (or 413) to a request we could not read, if it has a Via to answer to."""
        if self._may_log(address[0]):
            log.warning("malformed SIP from %s:%d (%d bytes): %s",
                        address[0], address[1], len(data), exc)
        head = data[:8192].split(b"\r\n\r\n")[0].split(b"\n\n")[0]
        if not head[:1].isalpha() or head.startswith((b"SIP/", b"ACK ")):
            return  # never answer a response or an ACK
        headers = Headers()
        wanted = {"Via", "From", "To", "Call-ID", "CSeq"}
        for line in head.decode("utf-8", "replace").replace("\r\n", "\n").split("\n")[1:64]:
            name, sep, value = line.partition(":")
            if sep and canonical_name(name.strip()) in wanted and "\r" not in value:
                headers.add(name.strip(), value.strip())
        vias = [v for raw in headers.get_all("Via") for v in split_header_values(raw)]
        try:
            Via.parse(vias[0])
        except (SipParseError, IndexError):
            return
        request = SipRequest(headers, b"", method="UNKNOWN", uri="")
        reason = " ".join(str(exc).split())[:80]
        self._send(response_to(request, exc.status, reason, to_tag=new_tag()).to_bytes(), address)

    def _on_response(self, response: SipResponse) -> None:
        vias = response.vias
        if not vias:
            return
        branch = Via.parse(vias[0]).branch
        call = self._client.get(branch)
        if call is not None and response.status >= 200 and call._bye is not None:
            call._bye.stop()
            del self._client[branch]

    def _on_request(self, request: SipRequest, address: Address) -> None:
        vias = request.vias
        if not vias:
            raise SipParseError("no Via")
        top = with_received(vias[0], address[0], address[1])
        if top != vias[0]:
            raw = request.headers.get_all("Via")
            first = split_header_values(raw[0])
            request.headers.remove("Via")
            request.headers.add("Via", ", ".join([top] + first[1:]))
            for rest in raw[1:]:
                request.headers.add("Via", rest)
        _ = request.cseq  # validates the CSeq early
        NameAddr.parse(request.headers.get("From") or "")  # and From/To: bad ones get 400 here
        NameAddr.parse(request.headers.get("To") or "")
        if request.method == "ACK":
            self._on_ack(request)
            self.transactions.receive(request, address)
            return
        txn = self.transactions.receive(request, address)
        if txn is None:
            return  # a retransmission, answered by the transaction layer
        decision = self.peers.decide(address[0])
        if not decision.allowed:
            if self._may_log(address[0]):
                log.warning("SIP %s from forbidden peer %s", request.method, address[0])
            self._respond(txn, response_to(request, 403, to_tag=new_tag()))
            return
        to_tag = NameAddr.parse(request.headers.get("To") or "").tag
        username = None
        # In-dialog requests ride on the dialog the INVITE authenticated.
        if to_tag:
            self._in_dialog(request, txn, to_tag)
            return
        if decision.authenticator is not None and request.method not in ("CANCEL",):
            result = decision.authenticator.verify(request.method,
                                                   request.headers.get("Authorization"))
            if result.outcome is not DigestOutcome.OK:
                if result.outcome is DigestOutcome.INVALID:
                    log.warning("SIP %s from %s: digest credentials refused (user %r)",
                                request.method, address[0], result.username)
                self._respond(txn, response_to(
                    request, 401, to_tag=new_tag(),
                    extra=[("WWW-Authenticate", decision.authenticator.challenge(
                        stale=result.outcome is DigestOutcome.STALE))]))
                return
            username = result.username
        method = request.method
        if method == "INVITE":
            self._spawn(self._on_invite(request, txn, username))
        elif method == "OPTIONS":
            self._respond(txn, self._options_response(request))
        elif method == "CANCEL":
            self._on_cancel(request, txn)
        elif method == "BYE":
            self._respond(txn, response_to(request, 481, to_tag=new_tag()))
        elif method in KNOWN_UNSUPPORTED:
            self._respond(txn, response_to(request, 405, to_tag=new_tag(), extra=[("Allow", ALLOW)]))
        else:
            self._respond(txn, response_to(request, 501, to_tag=new_tag(), extra=[("Allow", ALLOW)]))

    # ------------------------------------------------------------- helpers

    def _may_log(self, source: str, every_s: float = 60.0) -> bool:
        now = asyncio.get_running_loop().time()
        if now - self._logged.get(source, -every_s) < every_s:
            return False
        if len(self._logged) > 10_000:
            self._logged.clear()
        self._logged[source] = now
        return True

    def _reply(self, request: SipRequest, address: Address, status: int, reason: str = "") -> None:
        self._send(response_to(request, status, reason, to_tag=new_tag()).to_bytes(), address)

    async def close(self, reason: str = "shutdown") -> None:
        """Hang up every call (BYE) and stop all timers."""
        for call in list(self._dialogs.values()):
            await self.hang_up(call, reason, abnormal=True)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for call in self._client.values():
            if call._bye is not None:
                call._bye.stop()
        self._client.clear()
        self.transactions.close()

    def __len__(self) -> int:
        return len(self._dialogs)
