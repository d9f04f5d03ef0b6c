# Long module: Twilio end to end (webhooks, TwiML, media stream, dialer) in one place.
"""Twilio end to end: signed webhooks, TwiML, the Media Streams socket, the outbound dialer.

Webhooks. Every request must carry a valid ``X-Twilio-Signature`` (checked with
the twilio SDK's ``RequestValidator``) computed over the public URL Twilio used,
which behind a proxy is not the URL this server sees: the public base comes
from ``COACHLINE_PUBLIC_URL``. Form bodies are signed by their parameters;
JSON bodies by the URL, whose ``bodySHA256`` query parameter pins the body.

Media. ``GET /media/twilio`` takes one WebSocket per forked call. Twilio signs the
upgrade request too (``X-Twilio-Signature`` over the ``wss://`` URL of our public
base, no parameters): an upgrade without a valid one is refused with 403 before
the socket is accepted. The signature is the same for every stream, so it proves
the socket is Twilio's but not which call it carries: the TwiML's ``stream_token``
``<Parameter>``, a one-time token issued with it (``crm_core.calls.stream_admissions``),
must come back in ``start`` for the stream to be admitted, once, while the call is live.
Twilio sends
JSON text messages: ``connected``, ``start`` (stream and call ids, our
``<Parameter>``s, the media format), then ``media`` (base64 µ-law, 8 kHz,
20 ms per chunk, one track per message), ``dtmf``, ``mark`` and ``stop``.

Tracks and parties. ``inbound`` is the audio Twilio receives from the call leg
the stream is attached to; ``outbound`` is what Twilio plays to that leg. Which
person that is depends on who the leg is:

* inbound call (a customer rang our number; we ``<Dial>`` the rep):
  the leg is the customer -> inbound = customer, outbound = rep;
* outbound call (Coachline rings the rep first, then ``<Dial>``s the customer):
  the leg is the rep -> inbound = rep, outbound = customer.

Each track keeps its own chunk order and its own timeline; both timelines use
the stream's timestamps, so the two parties line up on one call clock.

Outbound calls go through the twilio SDK, which is synchronous (``requests``), so
each runs in a worker thread; its API base is configurable so tests and the demo
point it at the loopback carrier fake (``voice_server/simulator/carrier``).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import time
from dataclasses import dataclass

import asyncpg
import requests
from aiohttp import WSCloseCode, web
from twilio.base.exceptions import TwilioException
from twilio.request_validator import RequestValidator
from twilio.rest import Client as TwilioClient
from twilio.twiml.voice_response import Dial, Start, VoiceResponse

from crm_core.api_errors import BadRequest
from crm_core.calls.dialing import DialerError, OutboundCallRequest, PlacedCall
from crm_core.calls.records import (
    NewCall,
    create_call,
    find_call,
    rep_contact,
    update_call_status,
)
from crm_core.calls.stream_admissions import issue_stream_admission
from media.frames import Party
from media.g711 import ulaw_decode
from media.track_clock import ChunkOrder, PartyTimeline
from voice_server.call_session import CallSession, CallSessions
from voice_server.logs import call_id_var
from voice_server.transports.carrier_config import CarrierConfig, CarrierEdge
from voice_server.transports.carrier_metrics import CarrierMetrics
from voice_server.transports.media_socket import MessageRejected, serve_media_socket
from voice_server.transports.stream_calls import open_stream_session
from voice_server.transports.twilio_signature import signed_twilio_params
from voice_server.transports.webhook_input import UnreadableBody, count_field, text_field

log = logging.getLogger(__name__)

MEDIA_PATH = "/media/twilio"
VOICE_PATH = "/carriers/twilio/voice"
STATUS_PATH = "/carriers/twilio/status"
# Twilio's call statuses -> ours ("initiated" is Twilio's name for a queued outbound call).
TWILIO_STATUSES = {
    "queued": "queued", "initiated": "queued", "ringing": "ringing",
    "in-progress": "in-progress", "answered": "in-progress", "completed": "completed",
    "busy": "busy", "failed": "failed", "no-answer": "no-answer", "canceled": "canceled",
}


class TwilioSignature:
    def __init__(self, config: CarrierConfig) -> None:
        self._validator = RequestValidator(config.twilio_auth_token)
        self._config = config

    async def verify(self, request: web.Request) -> dict[str, str] | None:
        """The request's parameters when its signature is valid, else None (see twilio_signature)."""
        signature = request.headers.get("X-Twilio-Signature")
        if not signature or not self._config.twilio_auth_token:
            return None
        url = self._config.url(request.rel_url.path_qs)
        # UnreadableBody (a body that is not UTF-8 form data or a JSON object) propagates.
        return await signed_twilio_params(self._validator, url, signature, request)


    def socket_signature_ok(self, request: web.Request) -> bool:
        """Whether the Media Streams WebSocket upgrade carries Twilio's signature.

        Twilio signs it over the ``wss://`` URL it opened (our public base, not the URL
        this server sees behind a proxy) with no parameters.
        """
        signature = request.headers.get("X-Twilio-Signature")
        if not signature or not self._config.twilio_auth_token:
            return False
        url = self._config.ws_url(request.rel_url.path_qs)
        return self._validator.validate(url, {}, signature)


def stream_twiml(stream_url: str, parameters: dict[str, str], dial_target: str,
                 caller_id: str | None = None) -> str:
    """TwiML that forks both tracks to our media WebSocket and connects the call onward.

    ``<Start><Stream>`` (not ``<Connect><Stream>``, which carries the inbound
    track only and makes the call talk to us) leaves the call between people.
    """
    response = VoiceResponse()
    start = Start()
    stream = start.stream(url=stream_url, track="both_tracks")
    for name, value in parameters.items():
        stream.parameter(name=name, value=value)
    response.append(start)
    dial = Dial(caller_id=caller_id) if caller_id else Dial()
    if dial_target.startswith("sip:"):
        dial.sip(dial_target)
    else:
        dial.number(dial_target)
    response.append(dial)
    return str(response)


def _reject_twiml() -> str:
    response = VoiceResponse()
    response.reject()
    return str(response)


def _twiml(body: str) -> web.Response:
    return web.Response(text=body, content_type="application/xml")


class TwilioWebhooks:
    def __init__(self, config: CarrierConfig, pool_of, metrics: CarrierMetrics) -> None:
        self._config = config
        self._signature = TwilioSignature(config)
        self.signature = self._signature
        self._pool_of = pool_of
        self._metrics = metrics

    def _forbidden(self, request: web.Request, hook: str) -> web.Response:
        self._metrics.webhook_rejections.labels("twilio", hook).inc()
        log.warning("twilio %s webhook refused: missing or invalid X-Twilio-Signature (from %s)",
                    hook, request.remote)
        return web.json_response(
            {"error": {"code": "forbidden", "message": "invalid or missing Twilio signature"}},
            status=403,
        )

    async def _signed_params(self, request: web.Request, hook: str):
        """(params, None) for a genuine Twilio request, else (None, the refusal)."""
        try:
            params = await self._signature.verify(request)
        except UnreadableBody as exc:
            return None, self._bad_request(hook, str(exc))
        if params is None:
            return None, self._forbidden(request, hook)
        return params, None

    def _bad_request(self, hook: str, message: str) -> web.Response:
        self._metrics.webhook_rejections.labels("twilio", hook).inc()
        log.warning("twilio %s webhook refused: %s", hook, message)
        return BadRequest(message).response()

    async def voice(self, request: web.Request) -> web.Response:
        params, refusal = await self._signed_params(request, "voice")
        if refusal is not None:
            return refusal
        call_sid, to = text_field(params.get("CallSid")), text_field(params.get("To")) or ""
        if not call_sid:
            return self._bad_request("voice", "no usable CallSid")
        async with self._pool_of().acquire() as conn:
            rep_id = await self._config.rep_for_number(conn, to)
            rep = await rep_contact(conn, rep_id) if rep_id else None
            if rep is None or rep.target is None:
                log.warning("twilio call %s to %s: no rep is routed to this number; rejecting",
                            call_sid, to)
                return _twiml(_reject_twiml())
            row = await create_call(conn, NewCall(
                org_id=rep.org_id, carrier="twilio", direction="inbound", external_id=call_sid,
                from_number=text_field(params.get("From")), to_number=to, rep_id=rep.rep_id,
                status="ringing",
            ))
            call_id = str(row["id"])
            token = await issue_stream_admission(conn, call_id, "twilio")
        twiml = stream_twiml(
            self._config.ws_url(MEDIA_PATH),
            {"call_id": call_id, "org_id": rep.org_id, "direction": "inbound",
             "stream_token": token},
            rep.target,
            caller_id=text_field(params.get("From")) or None,
        )
        log.info("twilio inbound call %s -> rep %s (call %s)", call_sid, rep.rep_id, call_id)
        return _twiml(twiml)

    async def status(self, request: web.Request) -> web.Response:
        params, refusal = await self._signed_params(request, "status")
        if refusal is not None:
            return refusal
        call_sid = text_field(params.get("CallSid"))
        if not call_sid:
            return self._bad_request("status", "no usable CallSid")
        status = TWILIO_STATUSES.get(params.get("CallStatus", ""))
        if status is None:
            return self._bad_request("status", "unknown CallStatus")
        # An unusable duration (past the column, not ASCII digits) is dropped, the status kept:
        # a refusal would be retried and fail the same way.
        duration = params.get("CallDuration")
        duration_s = count_field(duration)
        if duration and duration_s is None:
            log.warning("twilio status for %s: unusable CallDuration ignored", call_sid)
        async with self._pool_of().acquire() as conn:
            call = await find_call(conn, "twilio", call_sid)
            if call is None:
                # Not ours (or long gone): acknowledge so Twilio does not retry forever.
                log.info("twilio status %s for unknown call %s ignored", status, call_sid)
                return web.Response(status=204)
            await update_call_status(conn, call["id"], status, duration_s=duration_s)
        return web.Response(status=204)


# -- media stream ---------------------------------------------------------------------------------

SAMPLE_RATE = 8000
MAX_CHUNK_BYTES = 1600  # 200 ms of µ-law; Twilio sends 160-byte (20 ms) chunks
REORDER_WINDOW = 5  # chunks (100 ms) a track waits for a late chunk before calling it lost
DTMF_DIGITS = frozenset("0123456789*#ABCD")
MAX_CLOCK_JUMP_MS = 60_000  # a timestamp this far past the stream's clock is bogus, not a gap

TRACK_PARTIES: dict[str, dict[str, Party]] = {
    "inbound": {"inbound": Party.CUSTOMER, "outbound": Party.REP},
    "outbound": {"inbound": Party.REP, "outbound": Party.CUSTOMER},
}


def track_party(direction: str, track: str) -> Party:
    """The party a Twilio track carries on a call of ``direction`` (see the module notes)."""
    return TRACK_PARTIES[direction][track]


@dataclass(slots=True)
class _Chunk:
    timestamp_ms: int
    payload: bytes
    arrived: float


class _Track:
    def __init__(self, party: Party, metrics: CarrierMetrics) -> None:
        self.party = party
        self.order: ChunkOrder[_Chunk] = ChunkOrder(REORDER_WINDOW, first=1)  # Twilio counts from 1
        self.timeline = PartyTimeline(party, SAMPLE_RATE)
        self.frames = metrics.media_frames.labels("twilio", str(party))
        self.gaps = metrics.media_gaps.labels("twilio", str(party))


class TwilioMediaStream:
    """One Twilio media stream, from ``connected`` to ``stop`` (or a dropped socket)."""

    carrier = "twilio"

    def __init__(self, pool: asyncpg.Pool, sessions: CallSessions, metrics: CarrierMetrics) -> None:
        self._pool = pool
        self._sessions = sessions
        self._metrics = metrics
        self._handling = metrics.frame_handling.labels("twilio")
        self._reordered = metrics.reordered.labels("twilio")
        self.session: CallSession | None = None
        self.stream_sid: str | None = None
        self.done = False
        self.close_code = WSCloseCode.OK
        self.rejections = 0
        self._tracks: dict[str, _Track] = {}
        self._last_sequence: int | None = None
        self._clock_ms = 0  # the latest media timestamp seen: where DTMF lands on the call clock

    # -- messages ---------------------------------------------------------------------

    async def on_text(self, data: str, arrived: float) -> None:
        try:
            message = json.loads(data)
            if not isinstance(message, dict):
                raise MessageRejected("malformed_json", "not a JSON object")
            event = message.get("event")
            self._check_sequence(message.get("sequenceNumber"))
            if event == "media":
                self._on_media(message, arrived)
            elif event == "start":
                await self._on_start(message)
            elif event == "dtmf":
                await self._on_dtmf(message)
            elif event == "stop":
                self.done = True
            elif event in ("connected", "mark"):
                pass  # nothing to do: connected announces the protocol, marks echo playback
            else:
                raise MessageRejected("unknown_event", repr(event)[:60])
        except json.JSONDecodeError as exc:
            self.reject("malformed_json", str(exc))
        except MessageRejected as exc:
            self.reject(exc.reason, exc.detail)

    async def on_binary(self, data: bytes, arrived: float) -> None:
        self.reject("binary_message", f"{len(data)} bytes")

    def reject(self, reason: str, detail: str = "") -> None:
        self.rejections += 1
        self._metrics.rejected_messages.labels("twilio", reason).inc()
        # The first few say what is wrong; a flood of the same must not flood the log.
        level = logging.WARNING if self.rejections <= 10 else logging.DEBUG
        log.log(level, "twilio media message rejected: %s %s", reason, detail,
                extra={"stream_sid": self.stream_sid})

    async def _on_start(self, message: dict) -> None:
        if self.session is not None:
            raise MessageRejected("duplicate_start")
        start = message.get("start")
        if not isinstance(start, dict):
            raise MessageRejected("malformed_start", "no start object")
        media_format = start.get("mediaFormat")
        if not isinstance(media_format, dict):
            media_format = {}
        if (media_format.get("encoding"), media_format.get("sampleRate"), media_format.get("channels")) != (
            "audio/x-mulaw", SAMPLE_RATE, 1
        ):
            self._refuse(WSCloseCode.UNSUPPORTED_DATA)
            raise MessageRejected("unsupported_format", repr(media_format)[:120])
        params = start.get("customParameters") or {}
        if not isinstance(params, dict):
            params = {}
        call_id, token = params.get("call_id"), params.get("stream_token")
        call_sid = start.get("callSid")
        if not all(isinstance(v, str) for v in (call_id, call_sid, token)):
            self._refuse(WSCloseCode.POLICY_VIOLATION)
            raise MessageRejected("unknown_call", "start names no call_id/callSid/stream_token")
        session = await open_stream_session(self._pool, self._sessions, "twilio", call_id,
                                            call_sid, token)
        if session is None:
            self._refuse(WSCloseCode.POLICY_VIOLATION)
            raise MessageRejected("unknown_call", f"call_id={call_id[:64]} callSid={call_sid[:64]}")
        self.session = session
        self.stream_sid = start.get("streamSid") or message.get("streamSid")
        direction = session.info.direction
        for track in ("inbound", "outbound"):
            self._tracks[track] = _Track(track_party(direction, track), self._metrics)
        token = call_id_var.set(session.call_id)
        try:
            log.info("twilio media stream %s started (%s call; tracks %s)", self.stream_sid,
                     direction, start.get("tracks"))
        finally:
            call_id_var.reset(token)

    def _on_media(self, message: dict, arrived: float) -> None:
        if self.session is None:
            raise MessageRejected("before_start", "media before start")
        media = message.get("media")
        if not isinstance(media, dict):
            raise MessageRejected("malformed_media", "no media object")
        name = media.get("track")
        track = self._tracks.get(name) if isinstance(name, str) else None
        if track is None:
            raise MessageRejected("unknown_track", repr(media.get("track"))[:40])
        try:
            chunk = int(media["chunk"])
            timestamp_ms = int(media["timestamp"])
        except (KeyError, TypeError, ValueError, OverflowError):  # Infinity/NaN are JSON to Python
            raise MessageRejected("malformed_media", "chunk/timestamp missing or not numbers") from None
        if chunk < 0 or timestamp_ms < 0:
            raise MessageRejected("malformed_media", "negative chunk/timestamp")
        if timestamp_ms > self._clock_ms + MAX_CLOCK_JUMP_MS:
            raise MessageRejected("timestamp_out_of_range", f"{timestamp_ms} ms")
        try:
            payload = base64.b64decode(media.get("payload") or "", validate=True)
        except (binascii.Error, ValueError, TypeError):
            raise MessageRejected("bad_base64") from None
        if not 0 < len(payload) <= MAX_CHUNK_BYTES:
            raise MessageRejected("bad_frame_size", f"{len(payload)} bytes")
        released = track.order.add(chunk, _Chunk(timestamp_ms, payload, arrived))
        if released.stale:
            raise MessageRejected("stale_chunk", f"{track.party} chunk {chunk}")
        if released.out_of_range:
            raise MessageRejected("chunk_out_of_range", f"{track.party} chunk {chunk}")
        if released.late:
            self._reordered.inc()
        self._deliver(track, released.items, released.missing)

    async def _on_dtmf(self, message: dict) -> None:
        if self.session is None:
            raise MessageRejected("before_start", "dtmf before start")
        dtmf = message.get("dtmf")
        digit = dtmf.get("digit") if isinstance(dtmf, dict) else None
        if not isinstance(digit, str) or digit not in DTMF_DIGITS:
            raise MessageRejected("malformed_dtmf", repr(digit)[:20])
        await self.session.push_dtmf(digit, self._clock_ms, 0)

    # -- delivery ---------------------------------------------------------------------

    def _deliver(self, track: _Track, chunks: list[_Chunk], missing: int) -> None:
        session = self.session
        assert session is not None
        if missing:
            track.gaps.inc(missing)
            log.info("twilio %s track lost %d chunk(s); filled with silence", track.party, missing,
                     extra={"stream_sid": self.stream_sid})
        for chunk in chunks:
            pcm = ulaw_decode(chunk.payload)
            for frame in track.timeline.place(chunk.timestamp_ms, pcm):
                session.push_audio(frame)
                track.frames.inc()
            self._clock_ms = max(self._clock_ms, chunk.timestamp_ms)
            self._handling.observe(time.perf_counter() - chunk.arrived)

    def _check_sequence(self, value: object) -> None:
        # sequenceNumber counts every message of the stream; a jump means Twilio's messages
        # were lost on the way (the per-track chunk numbers say which audio).
        try:
            sequence = int(value)  # type: ignore[arg-type]
        except (TypeError, ValueError, OverflowError):
            return
        if self._last_sequence is not None and sequence > self._last_sequence + 1:
            log.info("twilio stream %s: messages %d..%d missing", self.stream_sid,
                     self._last_sequence + 1, sequence - 1)
        if self._last_sequence is None or sequence > self._last_sequence:
            self._last_sequence = sequence

    def _refuse(self, code: int) -> None:
        self.done = True
        self.close_code = code

    async def finish(self, outcome: str) -> None:
        """Pass on what is still held, then end the call (abnormally unless Twilio said stop)."""
        if self.session is None:
            self._metrics.streams.labels("twilio", "rejected" if self.done else outcome).inc()
            return
        for track in self._tracks.values():
            released = track.order.flush()
            self._deliver(track, released.items, released.missing)
        normal = outcome == "completed"
        # Twilio always says stop before it closes; a socket closed without it was dropped.
        reason = "stop" if normal else ("dropped" if outcome == "closed" else outcome)
        self._metrics.streams.labels("twilio", outcome).inc()
        await self._sessions.close(self.session.call_id, abnormal=not normal, reason=reason)


def twilio_media_handler(pool_of, sessions: CallSessions, metrics: CarrierMetrics, *,
                         max_message_bytes: int, idle_timeout_s: float, start_timeout_s: float,
                         signature_ok):
    """The aiohttp handler for ``GET /media/twilio``; ``pool_of()`` gives the live DB pool.

    ``signature_ok(request)`` checks the handshake's X-Twilio-Signature; without a valid
    one the upgrade is refused with 403 and no socket is opened.
    """

    async def handle(request: web.Request) -> web.StreamResponse:
        if not signature_ok(request):
            metrics.webhook_rejections.labels("twilio", "media").inc()
            log.warning("twilio media stream refused: missing or invalid X-Twilio-Signature"
                        " (from %s)", request.remote)
            return web.json_response(
                {"error": {"code": "forbidden", "message": "invalid or missing Twilio signature"}},
                status=403)
        stream = TwilioMediaStream(pool_of(), sessions, metrics)
        return await serve_media_socket(request, stream, max_message_bytes=max_message_bytes,
                                        idle_timeout_s=idle_timeout_s,
                                        start_timeout_s=start_timeout_s)

    return handle


# -- outbound calls -------------------------------------------------------------------------------

class TwilioDialer:
    """Agent-first calls: Twilio rings the rep, and the TwiML forks both tracks to us and
    then ``<Dial>``s the customer, so the stream's leg is the rep (inbound track = rep)."""

    carriers = frozenset({"twilio"})

    def __init__(self, config: CarrierConfig, pool_of) -> None:
        self._config = config
        self._pool_of = pool_of
        self._client = TwilioClient(config.twilio_account_sid, config.twilio_auth_token)
        self._client.api.base_url = config.twilio_api_base.rstrip("/")

    async def place_call(self, request: OutboundCallRequest) -> PlacedCall:
        if not request.rep_id:
            raise DialerError("a Twilio call needs a rep to ring first")
        async with self._pool_of().acquire() as conn:
            rep = await rep_contact(conn, request.rep_id)
        if rep is None or rep.target is None:
            raise DialerError("the rep has no phone number or SIP address to ring")
        caller_id = request.from_number or self._config.twilio_caller_id
        if not caller_id:
            raise DialerError("no caller id: set COACHLINE_TWILIO_CALLER_ID or give from_number")
        async with self._pool_of().acquire() as conn:
            token = await issue_stream_admission(conn, request.call_id, "twilio")
        twiml = stream_twiml(
            self._config.ws_url(MEDIA_PATH),
            {"call_id": request.call_id, "org_id": request.org_id, "direction": "outbound",
             "stream_token": token},
            request.to_number,
            caller_id=caller_id,
        )
        try:
            call = await asyncio.to_thread(
                self._client.calls.create,
                to=rep.target,
                from_=caller_id,
                twiml=twiml,
                status_callback=self._config.url(STATUS_PATH),
                status_callback_method="POST",
                status_callback_event=["initiated", "ringing", "answered", "completed"],
            )
        except (TwilioException, requests.RequestException) as exc:
            log.warning("twilio refused outbound call %s: %s", request.call_id, exc)
            raise DialerError(f"Twilio refused the call: {exc}") from exc
        return PlacedCall(external_id=call.sid, status=TWILIO_STATUSES.get(call.status, "queued"))


def setup_twilio(app: web.Application, edge: CarrierEdge) -> None:
    """Twilio's webhook and media routes; its dialer when an auth token is configured."""
    webhooks = TwilioWebhooks(edge.config, edge.pool_of, edge.metrics)
    app.router.add_post(VOICE_PATH, webhooks.voice)
    app.router.add_post(STATUS_PATH, webhooks.status)
    app.router.add_get(MEDIA_PATH, twilio_media_handler(
        edge.pool_of, edge.sessions, edge.metrics,
        signature_ok=webhooks.signature.socket_signature_ok, **edge.media_limits))
    if edge.config.twilio_auth_token:
        edge.dialers["twilio"] = TwilioDialer(edge.config, edge.pool_of)
