"""The calls of a SIP user agent server: INVITE, ACK, CANCEL, in-dialog requests, hang-up.

``CallHandling`` holds each call's state (``SipCall``: its INVITE, dialog,
answer and retransmitted 2xx) and is the half of ``SipUserAgentServer``
(``voice_server.sip.uas``) that requests reach once the dispatcher there has
parsed them, checked the peer and found their transaction.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from voice_server.sip.addresses import NameAddr, SipUri, Via
from voice_server.sip.application import Admission, CallApplication, CallRejected, IncomingCall
from voice_server.sip.dialog import Dialog, DialogState, new_tag
from voice_server.sip.message import SipParseError, SipRequest, SipResponse, response_to
from voice_server.sip.sdp import (
    Answer,
    SdpError,
    SdpNegotiationError,
    SessionDescription,
    negotiate,
    parse_sdp,
    receivable_streams,
)
from voice_server.sip.siprec import RecordingMetadata, SiprecError, read_siprec_body
from voice_server.sip.transactions import (
    Address,
    Retransmission,
    ServerTransaction,
    TimerConfig,
    TransactionLayer,
    transaction_key,
)

log = logging.getLogger(__name__)

ALLOW = "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO"
ACCEPT = "application/sdp, multipart/mixed"
SUPPORTED = "siprec"
KNOWN_UNSUPPORTED = {"REGISTER", "SUBSCRIBE", "NOTIFY", "REFER", "MESSAGE", "UPDATE",
                     "PRACK", "PUBLISH"}
_DTMF_RELAY_RE = re.compile(r"^\s*signal\s*=\s*([0-9*#A-Da-d])\s*$", re.IGNORECASE | re.MULTILINE)
_DURATION_RE = re.compile(r"^\s*duration\s*=\s*([0-9]{1,6})\s*$", re.IGNORECASE | re.MULTILINE)


@dataclass(eq=False)
class SipCall:
    invite: SipRequest
    address: Address
    local_tag: str
    txn: ServerTransaction | None
    dialog: Dialog | None = None
    admission: Admission | None = None
    answer: Answer | None = None
    ok: Retransmission | None = None
    reinvite_pending: bool = False
    canceled: bool = False
    ended: bool = False
    sdp_version: int = 1
    _bye: Retransmission | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class UasOptions:
    host: str  # the address we put in Contact and our own Via
    port: int
    timers: TimerConfig = field(default_factory=TimerConfig)
    max_calls: int = 1000
    user_agent: str = "Coachline"
    # Sources no peer entry covers: "drop" or "reject" (stateless 403 within these budgets).
    non_peer_policy: str = "drop"
    non_peer_burst: int = 3
    non_peer_per_s: float = 0.1
    non_peer_total_per_s: float = 20.0
    # Failed digest attempts allowed per source and per configured user, each refilled at
    # ``digest_failure_refill_per_min`` (voice_server.sip.digest_limits).
    digest_failures_per_source: int = 10
    digest_failures_per_user: int = 30
    digest_failure_refill_per_min: float = 1.0


class CallHandling:
    """The call-handling half of ``SipUserAgentServer``, which sets these attributes."""

    options: UasOptions
    app: CallApplication
    transactions: TransactionLayer
    _send: Callable[[bytes, Address], None]
    _by_invite_key: dict[tuple, SipCall]  # (call-id, from-tag, cseq): retransmits
    _dialogs: dict[tuple[str, str, str], SipCall]
    _client: dict[str, SipCall]  # branch of our BYE → call
    _tasks: set[asyncio.Task]
    _admitting: int  # INVITEs waiting on the application (they count as calls)

    # ------------------------------------------------------------- helpers

    def _spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _respond(self, txn: ServerTransaction, response: SipResponse) -> None:
        response.headers.add("Server", self.options.user_agent)
        self.transactions.respond(txn, response)

    @property
    def contact(self) -> str:
        return f"<sip:coachline@{self._host_for_uri()}:{self.options.port}>"

    def _host_for_uri(self) -> str:
        host = self.options.host
        return f"[{host}]" if ":" in host else host

    def _options_response(self, request: SipRequest) -> SipResponse:
        if not self.app.accepting():
            return response_to(request, 503, to_tag=new_tag(), extra=[("Retry-After", "30")])
        return response_to(request, 200, to_tag=new_tag(), extra=[
            ("Allow", ALLOW), ("Accept", ACCEPT), ("Supported", SUPPORTED),
            ("Contact", self.contact)])

    def _unsupported_requirements(self, request: SipRequest) -> list[str]:
        required = [t.strip().lower() for raw in request.headers.get_all("Require")
                    for t in raw.split(",") if t.strip()]
        return [t for t in required if t not in SUPPORTED.split(", ")]

    def _read_offer(self, request: SipRequest) -> tuple[SessionDescription, RecordingMetadata | None]:
        ctype = request.content_type
        if not request.body:
            # A delayed offer (offer in our 200, answer in the ACK) is not supported.
            raise CallRejected(488, "SDP offer required")
        if ctype == "application/sdp":
            return parse_sdp(request.body), None
        if ctype == "multipart/mixed":
            sdp, metadata = read_siprec_body(request.headers.get("Content-Type") or "", request.body)
            return parse_sdp(sdp), metadata
        raise CallRejected(415)

    # --------------------------------------------------------------- INVITE

    async def _on_invite(self, request: SipRequest, txn: ServerTransaction,
                         username: str | None) -> None:
        invite_key = (request.call_id, NameAddr.parse(request.headers.get("From") or "").tag,
                      request.cseq.number)
        existing = self._by_invite_key.get(invite_key)
        if existing is not None:
            # The INVITE again after our 2xx ended its transaction: repeat the 2xx.
            self.transactions.discard(txn)
            if existing.ok is not None:
                existing.ok.resend()
            return
        call = SipCall(request, txn.address, new_tag(), txn)
        self._by_invite_key[invite_key] = call
        self._respond(txn, response_to(request, 100))
        status, reason = 0, ""
        try:
            await self._admit_and_answer(call, username)
        except CallRejected as exc:
            status, reason = exc.status, exc.reason
        except (SdpError, SiprecError, SipParseError) as exc:
            log.warning("INVITE %s rejected: %s", request.call_id, exc)
            status, reason = 400, str(exc)[:80]
        except SdpNegotiationError as exc:
            log.info("INVITE %s: %s", request.call_id, exc)
            status = 488
        except Exception:
            log.exception("INVITE %s failed", request.call_id)
            status = 500
        if status:
            self._fail(call, status, reason)
            if call.admission is not None:
                await self._end(call, "rejected", abnormal=True)

    def _fail(self, call: SipCall, status: int, reason: str = "") -> None:
        self._by_invite_key.pop((call.invite.call_id,
                                 NameAddr.parse(call.invite.headers.get("From") or "").tag,
                                 call.invite.cseq.number), None)
        if call.txn is None or call.canceled:
            return
        extra: list[tuple[str, str]] = []
        if status == 415:
            extra.append(("Accept", ACCEPT))
        elif status == 420:
            extra.append(("Unsupported", reason))
            reason = ""
        elif status == 503:
            extra.append(("Retry-After", "30"))
        self._respond(call.txn, response_to(call.invite, status, reason, to_tag=call.local_tag,
                                            extra=extra))

    async def _admit_and_answer(self, call: SipCall, username: str | None) -> None:
        request = call.invite
        unsupported = self._unsupported_requirements(request)
        if unsupported:
            raise CallRejected(420, ", ".join(unsupported))
        if not self.app.accepting():
            raise CallRejected(503)
        if len(self._dialogs) + self._admitting >= self.options.max_calls:
            raise CallRejected(503, "Too many calls")
        offer, metadata = self._read_offer(request)
        usable = len(receivable_streams(offer))
        if usable == 0:
            raise SdpNegotiationError("no PCMU/PCMA audio stream in the offer")
        try:
            request_uri: SipUri | None = SipUri.parse(request.uri)
        except SipParseError:
            request_uri = None
        incoming = IncomingCall(
            sip_call_id=request.call_id,
            caller=NameAddr.parse(request.headers.get("From") or ""),
            callee=NameAddr.parse(request.headers.get("To") or ""),
            request_uri=request_uri, source=call.address, offer=offer,
            audio_streams=usable if metadata is not None else 1, siprec=metadata,
            username=username,
        )
        self._admitting += 1
        try:
            call.admission = await self.app.admit(incoming)
        finally:
            self._admitting -= 1
        if call.canceled:
            await self._end(call, "canceled", abnormal=False)
            return
        answer = negotiate(offer, call.admission.local_ip, call.admission.ports,
                           audio_streams=len(call.admission.ports))
        call.answer = answer
        dialog = Dialog.from_invite(request, call.local_tag, call.address)
        call.dialog = dialog
        self._dialogs[dialog.key] = call
        assert call.txn is not None
        self._respond(call.txn, response_to(request, 180, to_tag=call.local_tag,
                                            extra=[("Contact", self.contact)]))
        await self.app.answered(call.admission.handle, answer)
        if call.canceled:
            return
        self._send_ok(call, call.invite, answer)
        call.txn = None  # the 2xx ended the transaction

    def _send_ok(self, call: SipCall, request: SipRequest, answer: Answer) -> None:
        ok = response_to(request, 200, to_tag=call.local_tag, body=answer.sdp,
                         content_type="application/sdp",
                         extra=[("Contact", self.contact), ("Allow", ALLOW),
                                ("Supported", SUPPORTED)])
        ok.headers.add("Server", self.options.user_agent)
        wire = ok.to_bytes()
        self._send(wire, call.address)
        if call.ok is not None:
            call.ok.stop()
        call.ok = Retransmission(self._send, wire, call.address, self.options.timers,
                                 on_give_up=lambda: self._spawn(self._no_ack(call)))
        txn = self.transactions.find(transaction_key(request))
        if txn is not None:
            self.transactions.discard(txn)

    async def _no_ack(self, call: SipCall) -> None:
        # §13.3.1.4: no ACK for the 2xx in 64*T1: confirm the dialog then end it with BYE.
        log.warning("no ACK for 200 OK of %s; hanging up", call.invite.call_id)
        await self.hang_up(call, "no-ack", abnormal=True)

    def _on_ack(self, request: SipRequest) -> None:
        to_tag = NameAddr.parse(request.headers.get("To") or "").tag
        from_tag = NameAddr.parse(request.headers.get("From") or "").tag
        call = self._dialogs.get((request.call_id, to_tag or "", from_tag or ""))
        if call is None or call.ok is None:
            return
        call.ok.acked()
        call.reinvite_pending = False
        if call.dialog is not None and call.dialog.state is DialogState.EARLY:
            call.dialog.state = DialogState.CONFIRMED

    # --------------------------------------------------------------- CANCEL

    def _on_cancel(self, request: SipRequest, txn: ServerTransaction) -> None:
        invite_txn = self.transactions.find(transaction_key(request)[:-1] + ("INVITE",))
        call = next((c for c in self._by_invite_key.values() if c.txn is invite_txn), None) \
            if invite_txn is not None else None
        if call is None or call.txn is None:
            self._respond(txn, response_to(request, 481, to_tag=new_tag()))
            return
        self._respond(txn, response_to(request, 200, to_tag=call.local_tag))
        call.canceled = True
        self._respond(call.txn, response_to(call.invite, 487, to_tag=call.local_tag))
        self._forget(call)
        if call.admission is not None:
            self._spawn(self._end(call, "canceled", abnormal=False))

    # ----------------------------------------------------------- in-dialog

    def _in_dialog(self, request: SipRequest, txn: ServerTransaction, to_tag: str) -> None:
        from_tag = NameAddr.parse(request.headers.get("From") or "").tag or ""
        call = self._dialogs.get((request.call_id, to_tag, from_tag))
        if request.method == "CANCEL":
            self._on_cancel(request, txn)
            return
        if call is None or call.dialog is None or call.ended:
            self._respond(txn, response_to(request, 481))
            return
        if (request.method == "INVITE" and call.ok is not None
                and request.cseq.number == call.dialog.remote_cseq):
            # The re-INVITE again after our 2xx ended its transaction: repeat the 2xx.
            self.transactions.discard(txn)
            call.ok.resend()
            return
        if not call.dialog.accept_cseq(request):
            self._respond(txn, response_to(request, 500, "CSeq out of order"))
            return
        if request.method == "BYE":
            self._respond(txn, response_to(request, 200))
            self._forget(call)
            self._spawn(self._end(call, "bye", abnormal=False))
        elif request.method == "INVITE":
            self._spawn(self._on_reinvite(call, request, txn))
        elif request.method == "OPTIONS":
            self._respond(txn, self._options_response(request))
        elif request.method == "INFO":
            self._on_info(call, request, txn)
        elif request.method in KNOWN_UNSUPPORTED:
            self._respond(txn, response_to(request, 405, extra=[("Allow", ALLOW)]))
        else:
            self._respond(txn, response_to(request, 501, extra=[("Allow", ALLOW)]))

    def _on_info(self, call: SipCall, request: SipRequest, txn: ServerTransaction) -> None:
        """Key presses some PBXs send as SIP INFO instead of RFC 4733 packets."""
        text = request.body.decode("utf-8", "replace")[:512]
        if request.content_type == "application/dtmf-relay":
            signal, duration = _DTMF_RELAY_RE.search(text), _DURATION_RE.search(text)
            digit = signal.group(1).upper() if signal else None
            duration_ms = int(duration.group(1)) if duration else 0
        elif request.content_type == "application/dtmf" and text.strip()[:1] in "0123456789*#":
            digit, duration_ms = text.strip()[:1] or None, 0
        else:
            self._respond(txn, response_to(request, 415, extra=[
                ("Accept", "application/dtmf-relay, application/dtmf")]))
            return
        if digit is None:
            self._respond(txn, response_to(request, 400, "No DTMF signal"))
            return
        self._respond(txn, response_to(request, 200))
        if call.admission is not None:
            self._spawn(self.app.dtmf(call.admission.handle, digit, duration_ms))

    async def _on_reinvite(self, call: SipCall, request: SipRequest,
                           txn: ServerTransaction) -> None:
        if call.reinvite_pending or (call.ok is not None and not call.ok.done):
            self._respond(txn, response_to(request, 491))
            return
        assert call.admission is not None
        try:
            offer, _ = self._read_offer(request)
            answer = negotiate(offer, call.admission.local_ip, call.admission.ports,
                               audio_streams=len(call.admission.ports),
                               version=call.sdp_version + 1)
        except CallRejected as exc:
            self._respond(txn, response_to(request, exc.status, exc.reason,
                                           extra=[("Accept", ACCEPT)] if exc.status == 415 else []))
            return
        except (SdpError, SiprecError) as exc:
            self._respond(txn, response_to(request, 400, str(exc)[:80]))
            return
        except SdpNegotiationError:
            self._respond(txn, response_to(request, 488))
            return
        call.sdp_version += 1
        call.reinvite_pending = True
        call.answer = answer
        await self.app.media_changed(call.admission.handle, answer)
        call.txn = None
        self._send_ok(call, request, answer)

    # ---------------------------------------------------------------- end

    def _forget(self, call: SipCall) -> None:
        if call.ok is not None:
            call.ok.stop()
        if call.dialog is not None:
            call.dialog.state = DialogState.TERMINATED
            self._dialogs.pop(call.dialog.key, None)
        self._by_invite_key.pop((call.invite.call_id,
                                 NameAddr.parse(call.invite.headers.get("From") or "").tag,
                                 call.invite.cseq.number), None)

    async def _end(self, call: SipCall, reason: str, *, abnormal: bool) -> None:
        if call.ended:
            return
        call.ended = True
        self._forget(call)
        if call.admission is not None:
            try:
                await self.app.ended(call.admission.handle, reason, abnormal)
            except Exception:
                log.exception("ending call %s failed", call.invite.call_id)

    def find_call(self, handle: object) -> SipCall | None:
        return next((c for c in self._dialogs.values()
                     if c.admission is not None and c.admission.handle is handle), None)

    async def hang_up(self, call: SipCall, reason: str, *, abnormal: bool) -> None:
        """End a call from our side: BYE to the peer (repeated until answered), then end it."""
        if call.ended:
            return
        if call.dialog is not None:
            bye = call.dialog.request("BYE", self.options.host, self.options.port)
            bye.headers.add("User-Agent", self.options.user_agent)
            bye.headers.add("Reason", f'SIP;cause=200;text="{reason}"')
            wire = bye.to_bytes()
            target = call.dialog.remote_address
            self._send(wire, target)
            branch = Via.parse(bye.vias[0]).branch
            call._bye = Retransmission(self._send, wire, target, self.options.timers,
                                       on_give_up=lambda: self._client.pop(branch, None))
            self._client[branch] = call
        await self._end(call, reason, abnormal=abnormal)
