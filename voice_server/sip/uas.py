"""A SIP user agent server that answers calls so Coachline can listen to them.

``SipUserAgentServer`` is sans-IO: the transport feeds it datagrams
(``datagram_received``) and gives it a ``send`` function; what a call
*means* — who the rep is, where its RTP goes, what is persisted — is the
``CallApplication``'s business. Request handling, in order:

* a source no peer entry covers → nothing, or (policy ``reject``) one stateless 403 per
  request: never retransmitted, no transaction, never bigger than the request, within a
  token bucket per source and one for all of them (``SourceBudget``), since UDP sources
  can be forged and every answer may land on a victim;
* unparseable datagram from a peer → 400 when there is a Via to answer to, else dropped (logged);
* a peer that owes a digest → a stateless 401 challenge: until it has proved the password it
  creates no state either (its in-dialog requests need a dialog, its CANCEL an INVITE); once
  its source (or the user it names) has spent its budget of failed attempts
  (``DigestFailures``), no challenge and no check at all: it is answered as a non-peer is
  (nothing, or a stateless 403 within the same budgets) until the budget refills;
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
from voice_server.sip.digest import DigestOutcome, parse_digest
from voice_server.sip.digest_limits import DigestFailures
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
from voice_server.sip.peers import PeerDecision, PeerPolicy
from voice_server.sip.source_limits import SourceBudget
from voice_server.sip.transactions import Address, TransactionLayer, transaction_key

log = logging.getLogger(__name__)

# An attempt whose source or user has spent its failed digest attempts: answered as a non-peer.
_SPENT = SipResponse(Headers(), b"", status=403, reason="Forbidden")


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
        self.non_peers = SourceBudget(burst=options.non_peer_burst, per_s=options.non_peer_per_s,
                                      total_per_s=options.non_peer_total_per_s)
        self.digest_failures = DigestFailures(
            per_source=options.digest_failures_per_source, per_user=options.digest_failures_per_user,
            refill_per_min=options.digest_failure_refill_per_min)

    # ---------------------------------------------------------------- input

    def datagram_received(self, data: bytes, address: Address) -> None:
        if not data.strip():
            return  # CRLF keep-alive (RFC 5626 §4.4.1)
        decision = self.peers.decide(address[0])
        if not decision.allowed:
            self._from_non_peer(data, address)
            return
        # Error answers go only to sources trusted by their address; one that must still
        # prove a password could be anyone (``*``) and is not told what was wrong.
        trusted = decision.authenticator is None
        try:
            message = parse_message(data)
        except SipParseError as exc:
            self.rejected += 1
            self._answer_unparseable(data, address, exc, answer=trusted)
            return
        try:
            if isinstance(message, SipResponse):
                self._on_response(message)
            else:
                self._on_request(message, address, decision, len(data))
        except SipParseError as exc:
            self.rejected += 1
            if self._may_log(address[0]):
                log.warning("bad SIP %s from %s:%d: %s", getattr(message, "method", "response"),
                            address[0], address[1], exc)
            if trusted and isinstance(message, SipRequest) and message.method != "ACK":
                self._reply(message, address, exc.status, str(exc)[:80])

    def _from_non_peer(self, data: bytes, address: Address) -> None:
        """At most one stateless 403 per request, no bigger than it, within the budgets."""
        reject = self.options.non_peer_policy == "reject"
        if self._may_log(address[0]):
            log.warning("SIP datagram from %s, which no peer entry covers: %s", address[0],
                        "403 (rate-limited)" if reject else "dropped")
        if not reject:
            return
        try:
            request = parse_message(data)
            if not isinstance(request, SipRequest) or request.method == "ACK":
                return
            self._echo_via(request, address)
            NameAddr.parse(request.headers.get("From") or "")
            NameAddr.parse(request.headers.get("To") or "")
        except SipParseError:
            return
        self._forbid(request, len(data), address)

    def _forbid(self, request: SipRequest, size: int, address: Address) -> None:
        """The non-peer policy's answer: nothing, or one stateless 403 no bigger than the
        request (``size`` bytes), within the non-peer budgets."""
        if self.options.non_peer_policy != "reject":
            return
        wire = response_to(request, 403, to_tag=new_tag()).to_bytes()
        if len(wire) > size:
            return  # never an amplifier, whatever the request leaves out
        if self.non_peers.allow(address[0], asyncio.get_running_loop().time()):
            self._send(wire, address)

    def _answer_unparseable(self, data: bytes, address: Address, exc: SipParseError, *,
                            answer: bool) -> None:
        """400 (or 413) to a request we could not read, if it has a Via to answer to."""
        if self._may_log(address[0]):
            log.warning("malformed SIP from %s:%d (%d bytes): %s",
                        address[0], address[1], len(data), exc)
        if not answer:
            return
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

    @staticmethod
    def _echo_via(request: SipRequest, address: Address) -> None:
        """Add received=/rport= to the top Via, as the answer must echo it (RFC 3581)."""
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

    def _on_request(self, request: SipRequest, address: Address, decision: PeerDecision,
                    size: int) -> None:
        self._echo_via(request, address)
        _ = request.cseq  # validates the CSeq early
        NameAddr.parse(request.headers.get("From") or "")  # and From/To: bad ones get 400 here
        to_tag = NameAddr.parse(request.headers.get("To") or "").tag
        if request.method == "ACK":
            self._on_ack(request)
            self.transactions.receive(request, address)
            return
        username = None
        if decision.authenticator is not None and \
                self.transactions.find(transaction_key(request)) is None:
            refusal, username = self._authenticate(request, address, decision, to_tag)
            if refusal is _SPENT:
                self._forbid(request, size, address)
                return
            if refusal is not None:
                # Stateless (RFC 3261 §8.2.7, §26.3.2.4): no transaction, no retransmission.
                self._send(refusal.to_bytes(), address)
                return
        txn = self.transactions.receive(request, address)
        if txn is None:
            return  # a retransmission, answered by the transaction layer
        # In-dialog requests ride on the dialog the INVITE authenticated.
        if to_tag:
            self._in_dialog(request, txn, to_tag)
            return
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

    def _authenticate(self, request: SipRequest, address: Address, decision: PeerDecision,
                      to_tag: str | None) -> tuple[SipResponse | None, str | None]:
        """For a source that must prove a password: (the stateless refusal, None), (``_SPENT``,
        None) while its attempts are spent, or (None, the user name; None when the request
        rides on state that exists already)."""
        assert decision.authenticator is not None
        if request.method == "CANCEL":
            invite = transaction_key(request)[:-1] + ("INVITE",)
            if self.transactions.find(invite) is None:
                return response_to(request, 481, to_tag=new_tag()), None
            return None, None
        if to_tag:
            from_tag = NameAddr.parse(request.headers.get("From") or "").tag or ""
            if (request.call_id, to_tag, from_tag) not in self._dialogs:
                return response_to(request, 481), None
            return None, None
        authenticator = decision.authenticator
        authorization = request.headers.get("Authorization")
        named = (parse_digest(authorization) or {}).get("username") if authorization else None
        user = named if authenticator.knows(named) else None
        now = asyncio.get_running_loop().time()
        spent = self.digest_failures.refusal(address[0], user, now)
        if spent is not None:
            if self._may_log(address[0]):
                log.warning("SIP %s from %s: failed digest attempts of this %s spent; "
                            "no challenge until they refill", request.method, address[0], spent)
            return _SPENT, None
        result = authenticator.verify(request.method, authorization, address[0])
        if result.outcome is DigestOutcome.OK:
            assert result.username is not None
            self.digest_failures.succeeded(address[0], result.username, now)
            return None, result.username
        if result.guessed:
            self.digest_failures.failed(address[0], user, now)
        if result.outcome is DigestOutcome.INVALID and self._may_log(address[0]):
            log.warning("SIP %s from %s: digest credentials refused (user %r)",
                        request.method, address[0], result.username)
        return response_to(request, 401, to_tag=new_tag(), extra=[
            ("WWW-Authenticate", authenticator.challenge(
                stale=result.outcome is DigestOutcome.STALE, source=address[0]))]), None

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
