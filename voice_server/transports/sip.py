"""The SIP/RTP edge: one UDP socket for SIP, one UDP socket per RTP stream, calls into CallSessions.

``SipEdge`` is the ``CallApplication`` behind the ``SipUserAgentServer``:
it routes an INVITE to a rep (``crm_core.calls.routing``), persists the call
(carrier ``sip``), binds RTP receivers on ports from the configured range,
and, once answered, opens a ``CallSession`` and pushes 8 kHz ``AudioFrame``s
per party on the call clock plus RFC 4733 DTMF digits. A call ends on BYE,
on CANCEL, or when its RTP stops for ``rtp_timeout_s`` while not on hold
(then we send BYE and the call ends as abnormal).

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
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Self

import asyncpg
import numpy as np

from crm_core.calls.live_events import CallHoldEvent
from crm_core.calls.records import NewCall, create_call, update_call_status
from crm_core.calls.routing import RepRoute, find_lead_by_phone, find_rep
from media.dtmf import DtmfError, DtmfReceiver
from media.frames import AudioFrame, Party
from media.g711 import alaw_decode, ulaw_decode
from media.jitter import JitterBuffer, PlayoutFrame
from media.rtp import RtpError, RtpPacket, Unwrapper, looks_like_rtcp
from voice_server.call_session import CallInfo, CallSession, CallSessions
from voice_server.logs import call_id_var
from voice_server.metrics import NodeMetrics
from voice_server.settings import Settings
from voice_server.sip.addresses import SipUri
from voice_server.sip.message import SipParseError
from voice_server.sip.peers import PeerPolicy
from voice_server.sip.sdp import Answer, NegotiatedStream, receivable_streams
from voice_server.sip.transactions import Address, TimerConfig
from voice_server.sip.uas import (
    Admission,
    CallRejected,
    IncomingCall,
    SipUserAgentServer,
    UasOptions,
)

log = logging.getLogger(__name__)

SAMPLE_RATE = 8000
_DECODERS: dict[str, Callable[[bytes], np.ndarray]] = {"PCMU": ulaw_decode, "PCMA": alaw_decode}
_MAX_RTP_PAYLOAD = 1500
# Reordering window: a frame with a hole waits this long (in later audio) for the packet.
JITTER_DEPTH_MS = 60
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

    @classmethod
    def from_settings(cls, settings: Settings) -> SipEdgeOptions:
        return cls(
            bind_host=settings.sip_host, port=settings.sip_port,
            advertised_host=settings.sip_advertised_host, rtp_port_min=settings.rtp_port_min,
            rtp_port_max=settings.rtp_port_max, peers=settings.sip_peers,
            realm=settings.sip_realm, nonce_ttl_s=settings.sip_nonce_ttl_s,
            max_calls=settings.sip_max_calls, rtp_timeout_s=settings.rtp_timeout_s,
        )

    @property
    def public_host(self) -> str:
        if self.advertised_host:
            return self.advertised_host
        if self.bind_host in ("0.0.0.0", "::"):
            raise ValueError("COACHLINE_SIP_ADVERTISED_HOST is needed when SIP binds all addresses")
        return self.bind_host


class RtpPortPool:
    """Even RTP ports from a range (RFC 3550 §11), handed out round-robin so a port
    just released is the last to be reused (stray packets of the old call die out)."""

    def __init__(self, low: int, high: int) -> None:
        first = low + (low % 2)
        self._free = deque(range(first, high + 1, 2))

    def __len__(self) -> int:
        return len(self._free)

    async def bind(self, host: str, factory: Callable[[], asyncio.DatagramProtocol]
                   ) -> tuple[asyncio.DatagramTransport, asyncio.DatagramProtocol, int]:
        loop = asyncio.get_running_loop()
        for _ in range(len(self._free)):
            port = self._free.popleft()
            try:
                transport, protocol = await loop.create_datagram_endpoint(
                    factory, local_addr=(host, port))
            except OSError:
                self._free.append(port)  # taken by someone else; try it again later
                continue
            return transport, protocol, port
        raise CallRejected(503, "No RTP ports free")

    def release(self, port: int) -> None:
        self._free.append(port)


class _SourceClock:
    """Maps one SSRC's RTP timestamps onto the call clock (ms since the call was answered).

    Its first packet is placed at its arrival time; later packets follow the
    RTP timestamps, so both parties stay aligned and jitter does not move audio.
    """

    __slots__ = ("_ms0", "_ts0", "_unwrap")

    def __init__(self, timestamp: int, arrival_ms: int) -> None:
        self._unwrap = Unwrapper(32)
        self._ts0 = self._unwrap.unwrap(timestamp)
        self._ms0 = arrival_ms

    def ms(self, timestamp: int) -> int:
        return max(0, self._ms0 + (self._unwrap.unwrap(timestamp) - self._ts0) // 8)


class RtpStream(asyncio.DatagramProtocol):
    """One RTP stream of one call (one party): datagrams in, frames and digits out."""

    _MAX_SOURCES = 8

    def __init__(self, metrics: NodeMetrics | None) -> None:
        self._metrics = metrics
        self.transport: asyncio.DatagramTransport | None = None
        self.port = 0
        self.party: Party = Party.CUSTOMER
        self.session: CallSession | None = None
        self.codec: str | None = None
        self.payload_type = -1
        self.dtmf_payload_type: int | None = None
        self.call_started = 0.0  # loop time of the call clock's zero
        self.last_packet = 0.0
        self.source: Address | None = None
        self.packets = 0
        self._decode: Callable[[bytes], np.ndarray] | None = None
        self._clocks: dict[int, _SourceClock] = {}  # for DTMF, which may have its own SSRC
        self._dtmf = DtmfReceiver(clock_rate=SAMPLE_RATE)
        self._jitter: JitterBuffer | None = None
        self._anchor: tuple[int, int] | None = None  # (RTP timestamp, call-clock ms)
        self._resets = -1

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def configure(self, stream: NegotiatedStream, party: Party, session: CallSession,
                  call_started: float) -> None:
        self.party = party
        self.session = session
        self.codec = stream.codec
        self._decode = _DECODERS[stream.codec]
        self._jitter = JitterBuffer(depth_ms=JITTER_DEPTH_MS, frame_ms=20, sample_rate=SAMPLE_RATE,
                                    decoders={stream.payload_type: self._decode})
        self.payload_type = stream.payload_type
        self.dtmf_payload_type = stream.dtmf_payload_type
        self.call_started = call_started
        self.last_packet = asyncio.get_running_loop().time()

    def _drop(self, reason: str) -> None:
        if self._metrics is not None:
            self._metrics.rtp_dropped.labels(reason).inc()

    def _clock(self, packet: RtpPacket, now: float) -> _SourceClock:
        clock = self._clocks.get(packet.ssrc)
        if clock is None:
            if len(self._clocks) >= self._MAX_SOURCES:
                self._clocks.clear()
            clock = _SourceClock(packet.timestamp, int((now - self.call_started) * 1000))
            self._clocks[packet.ssrc] = clock
        return clock

    def datagram_received(self, data: bytes, addr: Address) -> None:
        session = self.session
        if session is None or self._decode is None or len(data) > _MAX_RTP_PAYLOAD + 64:
            self._drop("unexpected")
            return
        if self.source is not None and addr != self.source:
            self._drop("foreign_source")
            return
        if looks_like_rtcp(data):
            return
        try:
            packet = RtpPacket.parse(data)
        except RtpError:
            self._drop("malformed")
            return
        # Symmetric RTP: latch on the first valid packet's source; another is someone else's.
        if self.source is None:
            self.source = addr
        now = asyncio.get_running_loop().time()
        self.last_packet = now
        self.packets += 1
        if packet.payload_type == self.payload_type and self._jitter is not None:
            now_ms = (now - self.call_started) * 1000
            self._jitter.push(packet, now_ms)
            resets = self._jitter.stats.resets
            if resets != self._resets or self._anchor is None:
                # A new source or a clock jump: place its audio by this packet's arrival.
                self._resets = resets
                self._anchor = (packet.timestamp, int(now_ms))
            self._play_out(session, None)
        elif packet.payload_type == self.dtmf_payload_type:
            clock = self._clock(packet, now)
            try:
                digits = self._dtmf.push(packet)
            except DtmfError:
                self._drop("malformed")
                return
            for digit in digits:
                self._spawn_dtmf(session, digit.digit, clock.ms(digit.timestamp), digit.duration_ms)
        else:
            self._drop("payload_type")  # comfort noise and the like

    def _play_out(self, session: CallSession, now_ms: float | None) -> None:
        # Frames leave by audio, not by wall clock: complete, or depth_ms of later audio
        # behind them. A busy event loop then delays audio but never replaces it with
        # silence; ``tick`` releases what a pause in the stream leaves waiting.
        assert self._jitter is not None
        jitter = self._jitter
        while (now_ms is None or jitter.buffered_ms > 0) and (frame := jitter.pop(now_ms)):
            self._emit(session, frame)

    def _emit(self, session: CallSession, frame: PlayoutFrame) -> None:
        assert self._anchor is not None
        anchor_ts, anchor_ms = self._anchor
        # PlayoutFrame timestamps are unwrapped; the anchor is the raw value it started from.
        at_ms = anchor_ms + (frame.timestamp - anchor_ts) // 8
        session.push_audio(AudioFrame(frame.pcm, SAMPLE_RATE, self.party, max(0, at_ms)))

    def tick(self, now: float) -> None:
        """Release frames whose wait for a lost packet is over (the stream may have paused)."""
        if self.session is not None and self._jitter is not None and self._anchor is not None:
            self._play_out(self.session, (now - self.call_started) * 1000)

    def _flush_audio(self) -> None:
        if self.session is not None and self._jitter is not None and self._anchor is not None:
            for frame in self._jitter.flush():
                self._emit(self.session, frame)

    def _spawn_dtmf(self, session: CallSession, digit: str, at_ms: int, duration_ms: int) -> None:
        # push_dtmf publishes on the bus (async); the datagram callback cannot await.
        task = asyncio.get_running_loop().create_task(session.push_dtmf(digit, at_ms, duration_ms))
        _background.add(task)
        task.add_done_callback(_background.discard)

    def resume(self) -> None:
        """After a re-INVITE the peer may move its media or restart its clock: re-latch."""
        self._flush_audio()
        self.source = None
        self._clocks.clear()
        self._anchor = None
        if self._jitter is not None and self._decode is not None:
            self._jitter = JitterBuffer(depth_ms=JITTER_DEPTH_MS, frame_ms=20,
                                        sample_rate=SAMPLE_RATE,
                                        decoders={self.payload_type: self._decode})

    async def flush(self) -> None:
        """The call is ending: play out buffered audio, report a press whose end never came."""
        if self.session is None:
            return
        self._flush_audio()
        for digit in self._dtmf.finish():
            await self.session.push_dtmf(digit.digit, digit.start_ms, digit.duration_ms)

    def close(self) -> None:
        self.session = None
        if self.transport is not None:
            self.transport.close()


_background: set[asyncio.Task] = set()


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
                       self.options.max_calls),
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
            customer = call.caller if direction == "inbound" else call.callee
            lead_id = await find_lead_by_phone(conn, route.org_id, customer.uri.user)
            row = await create_call(conn, NewCall(
                org_id=route.org_id, carrier="sip", direction=direction,
                external_id=f"{call.sip_call_id}/{call.caller.tag or ''}",
                from_number=call.caller.uri.user, to_number=call.callee.uri.user,
                rep_id=route.rep_id, lead_id=lead_id, status="ringing",
                metadata={"peer": call.source[0], "siprec": call.siprec is not None,
                          "sip_call_id": call.sip_call_id},
            ))
        call_id = str(row["id"])
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
