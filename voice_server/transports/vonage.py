"""Vonage Voice WebSocket: ``GET /media/vonage``, one socket per call.

Vonage first sends a JSON text message (``event: websocket:connected``, the
``content-type`` and the ``headers`` our NCCO asked for, flattened into the
object), then binary frames of 20 ms of 16-bit little-endian linear PCM (640
bytes at 16 kHz, 320 at 8 kHz, 960 at 24 kHz). Later text messages are events
(``websocket:dtmf``, …).

A Vonage websocket endpoint is a leg of the call's conversation and hears the
conversation's mix, so the audio is ONE mixed channel holding both people: it
is pushed as ``Party.MIXED`` and speaker attribution separates the voices.
(Per-leg streams, one socket per person, would need a websocket leg per call
leg; Coachline does not configure that.)

Vonage gives frames no sequence numbers or timestamps: the call clock is the
count of frames received, 20 ms each.
"""

from __future__ import annotations

import json
import logging
import re
import time

import asyncpg
import numpy as np
from aiohttp import WSCloseCode, web

from media.frames import Party
from voice_server.call_session import CallSession, CallSessions
from voice_server.carriers.metrics import CarrierMetrics
from voice_server.logs import call_id_var
from voice_server.transports.media_socket import serve_media_socket
from voice_server.transports.stream_calls import open_stream_session
from media.track_clock import PartyTimeline

log = logging.getLogger(__name__)

FRAME_MS = 20
_RATE_RE = re.compile(r"^audio/l16;\s*rate=(8000|16000|24000)$", re.IGNORECASE)
DTMF_DIGITS = frozenset("0123456789*#ABCD")


class MessageRejected(ValueError):
    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class VonageMediaStream:
    carrier = "vonage"

    def __init__(self, pool: asyncpg.Pool, sessions: CallSessions, metrics: CarrierMetrics) -> None:
        self._pool = pool
        self._sessions = sessions
        self._metrics = metrics
        self._frames = metrics.media_frames.labels("vonage", str(Party.MIXED))
        self._handling = metrics.frame_handling.labels("vonage")
        self.session: CallSession | None = None
        self.sample_rate = 0
        self.frame_bytes = 0
        self.timeline: PartyTimeline | None = None
        self.done = False
        self.close_code = WSCloseCode.OK
        self.rejections = 0

    async def on_text(self, data: str, arrived: float) -> None:
        try:
            try:
                message = json.loads(data)
            except json.JSONDecodeError as exc:
                raise MessageRejected("malformed_json", str(exc)) from None
            if not isinstance(message, dict):
                raise MessageRejected("malformed_json", "not a JSON object")
            if self.session is None:
                await self._on_connected(message)
            else:
                await self._on_event(message)
        except MessageRejected as exc:
            self.reject(exc.reason, exc.detail)

    async def on_binary(self, data: bytes, arrived: float) -> None:
        if self.session is None or self.timeline is None:
            self.reject("before_start", "audio before the connected message")
            return
        if len(data) != self.frame_bytes:
            self.reject("bad_frame_size", f"{len(data)} bytes, expected {self.frame_bytes}")
            return
        pcm = np.frombuffer(data, dtype="<i2").astype(np.int16, copy=False)
        for frame in self.timeline.place(self.timeline.position_ms, pcm):
            self.session.push_audio(frame)
            self._frames.inc()
        self._handling.observe(time.perf_counter() - arrived)

    def reject(self, reason: str, detail: str = "") -> None:
        self.rejections += 1
        self._metrics.rejected_messages.labels("vonage", reason).inc()
        level = logging.WARNING if self.rejections <= 10 else logging.DEBUG
        log.log(level, "vonage media message rejected: %s %s", reason, detail)

    async def _on_connected(self, message: dict) -> None:
        content_type = message.get("content-type")
        match = _RATE_RE.match(content_type) if isinstance(content_type, str) else None
        if match is None:
            self._refuse(WSCloseCode.UNSUPPORTED_DATA)
            raise MessageRejected("unsupported_format", repr(content_type)[:80])
        # Our headers arrive flattened into the first message (some set-ups nest them).
        headers = message.get("headers") if isinstance(message.get("headers"), dict) else message
        call_id = headers.get("call_id")
        uuid = headers.get("vonage_uuid")
        if not isinstance(call_id, str) or not (uuid is None or isinstance(uuid, str)):
            self._refuse(WSCloseCode.POLICY_VIOLATION)
            raise MessageRejected("unknown_call", "no call_id header")
        session = await open_stream_session(self._pool, self._sessions, "vonage", call_id, uuid)
        if session is None:
            self._refuse(WSCloseCode.POLICY_VIOLATION)
            raise MessageRejected("unknown_call", f"call_id={call_id[:64]}")
        self.session = session
        self.sample_rate = int(match.group(1))
        self.frame_bytes = self.sample_rate * FRAME_MS // 1000 * 2
        self.timeline = PartyTimeline(Party.MIXED, self.sample_rate, FRAME_MS)
        token = call_id_var.set(session.call_id)
        try:
            log.info("vonage media stream started (%s, %d Hz, mixed channel)",
                     session.info.direction, self.sample_rate)
        finally:
            call_id_var.reset(token)

    async def _on_event(self, message: dict) -> None:
        event = message.get("event")
        if event == "websocket:dtmf":
            digit = message.get("digit")
            if not isinstance(digit, str) or digit not in DTMF_DIGITS:
                raise MessageRejected("malformed_dtmf", repr(digit)[:20])
            duration = message.get("duration")
            duration_ms = int(duration) if isinstance(duration, (int, float)) else 0
            assert self.session is not None and self.timeline is not None
            await self.session.push_dtmf(digit, self.timeline.position_ms, duration_ms)
        elif event in ("websocket:connected", "websocket:cleared", "websocket:notify",
                       "websocket:media:update"):
            log.debug("vonage event %s", event)
        else:
            raise MessageRejected("unknown_event", repr(event)[:60])

    def _refuse(self, code: int) -> None:
        self.done = True
        self.close_code = code

    async def finish(self, outcome: str) -> None:
        if self.session is None:
            self._metrics.streams.labels("vonage", "rejected" if self.done else outcome).inc()
            return
        # Vonage ends a stream by closing the socket cleanly when the call hangs up.
        normal = outcome == "closed"
        self._metrics.streams.labels("vonage", outcome).inc()
        await self._sessions.close(self.session.call_id, abnormal=not normal,
                                   reason="hangup" if normal else outcome)


def vonage_media_handler(pool_of, sessions: CallSessions, metrics: CarrierMetrics, *,
                         max_message_bytes: int, idle_timeout_s: float):
    async def handle(request: web.Request) -> web.StreamResponse:
        stream = VonageMediaStream(pool_of(), sessions, metrics)
        return await serve_media_socket(request, stream, max_message_bytes=max_message_bytes,
                                        idle_timeout_s=idle_timeout_s)

    return handle
