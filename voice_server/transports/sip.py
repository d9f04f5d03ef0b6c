"""The SIP/RTP edge: one UDP socket for SIP, one UDP socket per RTP stream, calls into CallSessions.

``SipEdge`` is the ``CallApplication`` behind the ``SipUserAgentServer``: it
routes an INVITE to a rep (``crm_core.calls.routing``), persists the call
(carrier ``sip``), binds RTP receivers
(``voice_server.transports.rtp_stream``) on ports from the configured range,
and, once answered, opens a ``CallSession`` that they push 8 kHz
``AudioFrame``s per party on the call clock into, plus RFC 4733 DTMF digits. A
call ends on BYE, on CANCEL, or when its RTP stops for ``rtp_timeout_s`` while
not on hold (then we send BYE and the call ends as abnormal).

Parties: a SIPREC INVITE (RFC 7866) carries one stream per participant; the
participant whose AOR is a rep's phone/SIP address is ``rep``, the others
``customer``. A plain INVITE carries the caller's audio only: it is the
``customer`` when the callee is the rep (inbound), the ``rep`` when the rep
is the caller (outbound through the PBX).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Self

import asyncpg

from crm_core.calls.live_events import CallHoldEvent
from crm_core.calls.records import NewCall, create_call, update_call_status
from crm_core.calls.routing import RepRoute, find_rep
from media.frames import Party
from voice_server.call_session import CallInfo, CallSession, CallSessions
from voice_server.logs import call_id_var
from voice_server.metrics import NodeMetrics
from voice_server.settings import Settings
from voice_server.sip.addresses import SipUri
from voice_server.sip.application import Admission, CallRejected, IncomingCall
from voice_server.sip.calls import UasOptions
from voice_server.sip.message import SipParseError
from voice_server.sip.peers import PeerPolicy
from voice_server.sip.sdp import Answer, receivable_streams
from voice_server.sip.transactions import Address, TimerConfig
from voice_server.sip.uas import SipUserAgentServer
from voice_server.transports.rtp_stream import RtpPortPool, RtpStream

log = logging.getLogger(__name__)

# How long an INVITE may wait for a database connection before it gets 503.
DB_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class SipEdgeOptions:
    bind_host: str = "127.0.0.1"
    port: int = 5060
    advertised_host: str | None = None
    rtp_port_min: int = 20000
    rtp_port_max: int = 20999
    peers: str = "127.0.0.1/32,::1/128"
    realm: str = "coachline"
    nonce_ttl_s: float = 300.0
    max_calls: int = 500
    rtp_timeout_s: float = 30.0
    timers: TimerConfig = field(default_factory=TimerConfig)
    non_peer_policy: str = "drop"
    non_peer_burst: int = 3
    non_peer_per_s: float = 0.1
    non_peer_total_per_s: float = 20.0
    digest_failures_per_source: int = 10
    digest_failures_per_user: int = 30
    digest_failure_refill_per_min: float = 1.0

    @classmethod
    def from_settings(cls, settings: Settings) -> SipEdgeOptions:
        return cls(
            bind_host=settings.sip_host, port=settings.sip_port,
            advertised_host=settings.sip_advertised_host, rtp_port_min=settings.rtp_port_min,
            rtp_port_max=settings.rtp_port_max, peers=settings.sip_peers,
            realm=settings.sip_realm, nonce_ttl_s=settings.sip_nonce_ttl_s,
            max_calls=settings.sip_max_calls, rtp_timeout_s=settings.rtp_timeout_s,
            non_peer_policy=settings.sip_non_peer_policy,
            non_peer_burst=settings.sip_non_peer_burst,
            non_peer_per_s=settings.sip_non_peer_per_s,
            non_peer_total_per_s=settings.sip_non_peer_total_per_s,
            digest_failures_per_source=settings.sip_digest_failures_per_source,
            digest_failures_per_user=settings.sip_digest_failures_per_user,
            digest_failure_refill_per_min=settings.sip_digest_failure_refill_per_min,
        )

    @property
    def public_host(self) -> str:
        if self.advertised_host:
            return self.advertised_host
        if self.bind_host in ("0.0.0.0", "::"):
            raise ValueError("COACHLINE_SIP_ADVERTISED_HOST is needed when SIP binds all addresses")
        return self.bind_host


@dataclass(eq=False)
class SipCallMedia:
    """Our side of one SIP call: the call row, its session and RTP streams."""

    call_id: str
    info: CallInfo
    incoming: IncomingCall
    route: RepRoute
    parties: list[Party]
    streams: list[RtpStream] = field(default_factory=list)
    session: CallSession | None = None
    on_hold: bool = False
    answered_at: float = 0.0


class _SipSocket(asyncio.DatagramProtocol):
    def __init__(self, edge: SipEdge) -> None:
        self._edge = edge

    def datagram_received(self, data: bytes, addr: Address) -> None:
        before = self._edge.uas.rejected
        try:
            self._edge.uas.datagram_received(data, addr[:2])
        except Exception:  # a bug for one datagram must not stop the socket
            log.exception("SIP datagram from %s:%d failed", addr[0], addr[1])
        if self._edge.uas.rejected != before and self._edge.metrics is not None:
            self._edge.metrics.sip_rejected.inc()

    def error_received(self, exc: Exception) -> None:
        log.debug("SIP socket error: %s", exc)  # ICMP unreachable from a peer gone away


class SipEdge:
    def __init__(self, options: SipEdgeOptions, sessions: CallSessions,
                 pool: Callable[[], asyncpg.Pool | None], *,
                 draining: asyncio.Event | None = None, metrics: NodeMetrics | None = None,
                 ) -> None:
        self.options = options
        self.sessions = sessions
        self._pool = pool
        self._draining = draining or asyncio.Event()
        self.metrics = metrics
        self.ports = RtpPortPool(options.rtp_port_min, options.rtp_port_max)
        self.peers = PeerPolicy.from_spec(options.peers, realm=options.realm,
                                          nonce_ttl_s=options.nonce_ttl_s)
        self._transport: asyncio.DatagramTransport | None = None
        self.port = options.port
        self.uas: SipUserAgentServer = None  # type: ignore[assignment]  # set in start()
        self.calls: dict[str, SipCallMedia] = {}
        self._watchdog: asyncio.Task | None = None

    async def start(self) -> Self:
        loop = asyncio.get_running_loop()
        self._transport, _ = await loop.create_datagram_endpoint(
            lambda: _SipSocket(self), local_addr=(self.options.bind_host, self.options.port))
        self.port = self._transport.get_extra_info("sockname")[1]
        self.uas = SipUserAgentServer(
            UasOptions(self.options.public_host, self.port, self.options.timers,
                       self.options.max_calls, non_peer_policy=self.options.non_peer_policy,
                       non_peer_burst=self.options.non_peer_burst,
                       non_peer_per_s=self.options.non_peer_per_s,
                       non_peer_total_per_s=self.options.non_peer_total_per_s,
                       digest_failures_per_source=self.options.digest_failures_per_source,
                       digest_failures_per_user=self.options.digest_failures_per_user,
                       digest_failure_refill_per_min=self.options.digest_failure_refill_per_min),
            self.peers, self, self._send)
        self._watchdog = loop.create_task(self._watch_media())
        log.info("SIP listening on %s:%d/udp, RTP %d-%d", self.options.bind_host, self.port,
                 self.options.rtp_port_min, self.options.rtp_port_max)
        return self

    def _send(self, data: bytes, address: Address) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.sendto(data, address)

    async def close(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            await asyncio.gather(self._watchdog, return_exceptions=True)
        if self.uas is not None:
            await self.uas.close("shutdown")
        for media in list(self.calls.values()):
            await self.ended(media, "shutdown", True)
        if self._transport is not None:
            self._transport.close()

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------ CallApplication

    def accepting(self) -> bool:
        return not self._draining.is_set()

    async def admit(self, call: IncomingCall) -> Admission:
        pool = self._pool()
        if pool is None:
            raise CallRejected(503, "Database not ready")
        try:
            return await self._admit(pool, call)
        except (asyncpg.PostgresError, OSError, TimeoutError) as exc:
            # The trunk should try another node rather than hear a 500.
            log.warning("SIP call %s refused, database unavailable: %s", call.sip_call_id, exc)
            raise CallRejected(503, "Database unavailable") from None

    async def _admit(self, pool: asyncpg.Pool, call: IncomingCall) -> Admission:
        async with pool.acquire(timeout=DB_TIMEOUT_S) as conn:
            route, parties, direction = await self._route(conn, call)
            row = await create_call(conn, NewCall(
                org_id=route.org_id, carrier="sip", direction=direction,
                external_id=f"{call.sip_call_id}/{call.caller.tag or ''}",
                from_number=call.caller.uri.user, to_number=call.callee.uri.user,
                rep_id=route.rep_id, status="ringing",
                metadata={"peer": call.source[0], "siprec": call.siprec is not None,
                          "sip_call_id": call.sip_call_id},
                node_id=self.sessions.node_id,
            ))
        call_id = str(row["id"])
        lead_id = str(row["lead_id"]) if row["lead_id"] is not None else None  # create_call linked it
        info = CallInfo(call_id, route.org_id, "sip", direction,
                        external_id=row["external_id"], rep_id=route.rep_id, lead_id=lead_id)
        media = SipCallMedia(call_id, info, call, route, parties)
        try:
            for _ in parties:
                _transport, protocol, port = await self.ports.bind(
                    self.options.bind_host, lambda: RtpStream(self.metrics))
                assert isinstance(protocol, RtpStream)
                protocol.port = port
                media.streams.append(protocol)
        except BaseException:
            self._release(media)
            raise
        self.calls[call_id] = media
        return Admission(media, self.options.public_host, [s.port for s in media.streams])

    async def _route(self, conn: asyncpg.Connection, call: IncomingCall
                     ) -> tuple[RepRoute, list[Party], str]:
        if call.siprec is not None:
            # One stream per participant, in the offer's order (RFC 7866 §8.1.1).
            labels = [m.label for m in receivable_streams(call.offer)]
            parties, route = [], None
            for label in labels[: call.audio_streams]:
                sender = call.siprec.sender_of(label)
                user = _aor_user(sender.aor) if sender and sender.aor else None
                found = await find_rep(conn, user)
                if found is not None and route is None:
                    route = found
                    parties.append(Party.REP)
                else:
                    parties.append(Party.CUSTOMER)
            if route is None:
                raise CallRejected(404, "No rep among the recorded participants")
            return route, parties, "inbound"
        callee_user = (call.request_uri.user if call.request_uri and call.request_uri.user
                       else call.callee.uri.user)
        route = await find_rep(conn, callee_user) or await find_rep(conn, call.callee.uri.user)
        if route is not None:
            return route, [Party.CUSTOMER], "inbound"
        route = await find_rep(conn, call.caller.uri.user)
        if route is not None:
            return route, [Party.REP], "outbound"
        raise CallRejected(404, "No rep for this number")

    async def answered(self, handle: object, answer: Answer) -> None:
        media = handle
        assert isinstance(media, SipCallMedia)
        media.session = await self.sessions.open(media.info)
        loop_now = asyncio.get_running_loop().time()
        media.answered_at = loop_now
        # Streams the answer refused (port 0) keep no socket.
        accepted = {s.local_port: s for s in answer.streams}
        for stream, party in zip(media.streams, media.parties):
            negotiated = accepted.get(stream.port)
            if negotiated is not None:
                stream.configure(negotiated, party, media.session, loop_now)
        media.on_hold = answer.on_hold
        await self._set_status(media, "in-progress")

    async def media_changed(self, handle: object, answer: Answer) -> None:
        media = handle
        assert isinstance(media, SipCallMedia)
        if media.on_hold != answer.on_hold:
            log.info("call %s %s", media.call_id, "on hold" if answer.on_hold else "resumed")
            if media.session is not None:
                await media.session.emit(CallHoldEvent(answer.on_hold))
        media.on_hold = answer.on_hold
        now = asyncio.get_running_loop().time()
        by_port = {s.local_port: s for s in answer.streams}
        for stream in media.streams:
            stream.last_packet = now  # the timeout counts from the resume
            negotiated = by_port.get(stream.port)
            if negotiated is not None:
                stream.resume()  # the peer may move its media (re-anchoring)

    async def dtmf(self, handle: object, digit: str, duration_ms: int) -> None:
        media = handle
        assert isinstance(media, SipCallMedia)
        if media.session is not None:
            at_ms = int((asyncio.get_running_loop().time() - media.answered_at) * 1000)
            await media.session.push_dtmf(digit, max(0, at_ms), duration_ms)

    async def ended(self, handle: object, reason: str, abnormal: bool) -> None:
        media = handle
        assert isinstance(media, SipCallMedia)
        if self.calls.pop(media.call_id, None) is None:
            return
        for stream in media.streams:
            await stream.flush()
        self._release(media)
        token = call_id_var.set(media.call_id)
        try:
            log.info("SIP call ended: %s%s", reason, " (abnormal)" if abnormal else "")
        finally:
            call_id_var.reset(token)
        if media.session is not None:
            # call.ended on the bus; the CRM's call-event writer records the end.
            await self.sessions.close(media.call_id, abnormal=abnormal, reason=reason)
        else:
            await self._set_status(media, "canceled" if reason == "canceled" else "failed")

    def _release(self, media: SipCallMedia) -> None:
        for stream in media.streams:
            stream.close()
            if stream.port:
                self.ports.release(stream.port)
        media.streams = []

    async def _set_status(self, media: SipCallMedia, status: str) -> None:
        pool = self._pool()
        if pool is None:
            return
        try:
            async with pool.acquire(timeout=DB_TIMEOUT_S) as conn:
                await update_call_status(conn, media.call_id, status)
        except (asyncpg.PostgresError, OSError, TimeoutError) as exc:
            # The call goes on; the status catches up with the next update or call.ended.
            log.warning("could not set call %s to %s: %s", media.call_id, status, exc)

    # ------------------------------------------------------ media timeout

    async def _watch_media(self) -> None:
        timeout = self.options.rtp_timeout_s
        period = min(1.0, timeout / 4)
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(period * (0.9 + 0.2 * random.random()))
            now = loop.time()
            for media in list(self.calls.values()):
                for stream in media.streams:
                    stream.tick(now)
                if media.session is None or media.on_hold or not media.streams:
                    continue
                last = max(s.last_packet for s in media.streams)
                if now - last > timeout:
                    call = self.uas.find_call(media)
                    log.warning("call %s: no RTP for %.0f s, hanging up", media.call_id, now - last)
                    if call is not None:
                        await self.uas.hang_up(call, "rtp-timeout", abnormal=True)
                    else:
                        await self.ended(media, "rtp-timeout", True)


def _aor_user(aor: str) -> str | None:
    try:
        return SipUri.parse(aor).user
    except SipParseError:
        return None
