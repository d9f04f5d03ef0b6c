"""RTP receiving for the SIP edge: the port pool and one ``RtpStream`` per party of a call.

An ``RtpStream`` is the datagram protocol of one RTP socket: it latches on its
peer's address (symmetric RTP), reorders and decodes PCMU/PCMA through a jitter
buffer, places the audio on the call clock and pushes 8 kHz ``AudioFrame``s and
RFC 4733 DTMF digits into the call's ``CallSession``.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

import numpy as np

from media.dtmf import DtmfError, DtmfReceiver
from media.frames import AudioFrame, Party
from media.g711 import alaw_decode, ulaw_decode
from media.jitter import JitterBuffer, PlayoutFrame
from media.rtp import RtpError, RtpPacket, Unwrapper, looks_like_rtcp
from voice_server.call_session import CallSession
from voice_server.metrics import NodeMetrics
from voice_server.sip.application import CallRejected
from voice_server.sip.sdp import NegotiatedStream
from voice_server.sip.transactions import Address

SAMPLE_RATE = 8000
_DECODERS: dict[str, Callable[[bytes], np.ndarray]] = {"PCMU": ulaw_decode, "PCMA": alaw_decode}
_MAX_RTP_PAYLOAD = 1500
# Reordering window: a frame with a hole waits this long (in later audio) for the packet.
JITTER_DEPTH_MS = 60


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
