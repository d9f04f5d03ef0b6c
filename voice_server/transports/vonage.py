# Long module: Vonage end to end (webhooks, NCCO, media socket, dialer) in one place.
"""Vonage end to end: signed webhooks, NCCO, the Voice WebSocket, the outbound dialer.

Webhooks. Vonage signs each webhook with a JWT (HS256, the account's signature
secret) in ``Authorization: Bearer …``; its ``payload_hash`` claim is the SHA-256
of the body. ``vonage_signature`` checks the token (the vonage SDK's
``verify_signature``), the body hash, the age and that the token is used once;
the handlers read the signed JSON body only, never the query string, so both
webhooks must be POSTed (``answer_method: POST`` on the Vonage application).

Media. ``GET /media/vonage`` takes one socket per call. Vonage first sends a
JSON text message (``event: websocket:connected``, the ``content-type`` and the
``headers`` our NCCO asked for, flattened into the object), then binary frames
of 20 ms of 16-bit little-endian linear PCM (640 bytes at 16 kHz, 320 at 8 kHz,
960 at 24 kHz). Later text messages are events (``websocket:dtmf``, …).

A Vonage websocket endpoint is a leg of the call's conversation and hears the
conversation's mix, so the audio is ONE mixed channel holding both people: it
is pushed as ``Party.MIXED`` and speaker attribution separates the voices.
(Per-leg streams, one socket per person, would need a websocket leg per call
leg; Coachline does not configure that.)

Vonage does not sign the websocket it opens, so every websocket endpoint we hand
it (answer NCCO, outbound NCCO, inbound media leg) carries a one-time token issued
with the instruction (only its hash is stored, ``crm_core.calls.stream_admissions``)
twice: as the endpoint's custom ``authorization``, which Vonage sends as the
upgrade's ``Authorization`` header (checked before the socket is accepted,
``vonage_socket_auth``), and as a ``stream_token`` header, which the connected
message must echo with the same call for the stream to be admitted, once, while
the call is live; otherwise the socket is closed (1008) before any audio is taken.

Vonage gives frames no sequence numbers or timestamps: the call clock is the
count of frames received, 20 ms each.

Outbound calls go through the vonage SDK, which is synchronous (``requests``),
so each runs in a worker thread; its API host is configurable so tests and the
demo point it at the loopback carrier fake (``voice_server/simulator/carrier``). They ring
the customer with an NCCO connecting our media WebSocket. Inbound calls are
bridged through a named conversation: the caller waits in it, and
``VonageDialer.bridge_inbound`` dials two more legs into it, our media WebSocket
(which then hears the conversation's mix) and the rep.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time

import asyncpg
import numpy as np
import requests
from aiohttp import WSCloseCode, web
from vonage import Auth, HttpClientOptions, Vonage
from vonage_utils import VonageError
from vonage_voice.models.common import Phone, Sip, Websocket
from vonage_voice.models.connect_endpoints import WebsocketEndpoint
from vonage_voice.models.ncco import Connect, Conversation, Talk
from vonage_voice.models.requests import CreateCallRequest, ToPhone

from crm_core.api_errors import ApiError, BadRequest, MethodNotAllowed, ServiceUnavailable
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
from media.track_clock import PartyTimeline
from voice_server.call_session import CallSession, CallSessions
from voice_server.logs import call_id_var
from voice_server.transports.carrier_config import CarrierConfig, CarrierEdge
from voice_server.transports.carrier_metrics import CarrierMetrics
from voice_server.transports.media_socket import MessageRejected, serve_media_socket
from voice_server.transports.stream_calls import open_stream_session
from voice_server.transports.vonage_signature import (
    InvalidSignature,
    ReplayGuard,
    ReplayStoreUnavailable,
    SignatureRejected,
    verify_signed_webhook,
)
from voice_server.transports.vonage_socket_auth import (
    SocketCredential,
    authorize_upgrade,
    socket_authorization,
)
from voice_server.transports.webhook_input import (
    UnreadableBody,
    count_field,
    json_object,
    text_field,
)

log = logging.getLogger(__name__)

MEDIA_PATH = "/media/vonage"
ANSWER_PATH = "/carriers/vonage/answer"
EVENT_PATH = "/carriers/vonage/event"
CONTENT_TYPE = "audio/l16;rate=16000"
# Vonage call states -> ours; states not listed (e.g. "started" of a leg) change nothing.
VONAGE_STATUSES = {
    "ringing": "ringing", "answered": "in-progress", "completed": "completed",
    "busy": "busy", "failed": "failed", "rejected": "failed", "timeout": "no-answer",
    "unanswered": "no-answer", "cancelled": "canceled", "machine": "in-progress",
}


def stream_headers(call_id: str, uuid: str | None, token: str) -> dict[str, str]:
    """What our media socket needs to hear back in Vonage's connected message."""
    headers = {"call_id": call_id, "stream_token": token}
    if uuid:
        headers["vonage_uuid"] = uuid
    return headers


def stream_connect(config: CarrierConfig, call_id: str, uuid: str | None,
                   from_number: str | None, token: str) -> Connect:
    """The NCCO action connecting a call to our media WebSocket (16 kHz L16), ids in headers."""
    headers = stream_headers(call_id, uuid, token)
    number = (from_number or config.vonage_number or "").lstrip("+") or None
    return Connect(
        endpoint=[WebsocketEndpoint(uri=config.ws_url(MEDIA_PATH), contentType=CONTENT_TYPE,
                                    headers=headers,
                                    authorization=socket_authorization(call_id, token))],
        eventUrl=[config.url(EVENT_PATH)],
        from_=number,
        randomFromNumber=None if number else True,
    )


def stream_ncco(config: CarrierConfig, call_id: str, uuid: str | None,
                from_number: str | None, token: str) -> list[dict]:
    connect = stream_connect(config, call_id, uuid, from_number, token)
    return [connect.model_dump(mode="json", by_alias=True, exclude_none=True)]


def _not_in_service() -> list[dict]:
    return [Talk(text="This number is not in service.").model_dump(
        mode="json", by_alias=True, exclude_none=True)]


def conversation_ncco(name: str) -> list[dict]:
    """Hold the caller in a named conversation; the call ends when the caller leaves."""
    action = Conversation(name=name, startOnEnter=True, endOnExit=True)
    return [action.model_dump(mode="json", by_alias=True, exclude_none=True)]


class VonageWebhooks:
    """Answer and event webhooks.

    With a Vonage dialer configured (``bridge`` set) an inbound call is held in a
    conversation that our media WebSocket and the rep are dialed into; without
    one the answer connects the call straight to our WebSocket (listening only:
    no rep is rung, for set-ups where Vonage bridges the rep itself).
    """

    def __init__(self, config: CarrierConfig, pool_of, metrics: CarrierMetrics,
                 redis_of=lambda: None) -> None:
        self._config = config
        self._pool_of = pool_of
        self._metrics = metrics
        self._replays = ReplayGuard(redis_of, config.vonage_signature_max_age_s)
        # async (call_id, caller_uuid, conversation, rep_target, from_number, token) -> None
        self.bridge = None
        self._bridging: set[asyncio.Task] = set()

    async def answer(self, request: web.Request) -> web.Response:
        return await self._signed(request, "answer", self._answer)

    async def event(self, request: web.Request) -> web.Response:
        return await self._signed(request, "event", self._event)

    def _refused(self, request: web.Request, hook: str, error: ApiError) -> web.Response:
        self._metrics.webhook_rejections.labels("vonage", hook).inc()
        log.warning("vonage %s webhook refused: %s (from %s)", hook, error.message, request.remote)
        return error.response()

    async def _signed(self, request: web.Request, hook: str, handle) -> web.Response:
        """Verify, claim the token once, then ``handle(params)`` with the signed body's fields."""
        body = await request.read()
        try:
            claims = verify_signed_webhook(self._config.vonage_signature_secret,
                                           request.headers.get("Authorization"), body,
                                           self._config.vonage_signature_max_age_s)
            claim = await self._replays.claim(claims)
        except SignatureRejected as exc:
            log.info("vonage %s webhook signature: %s", hook, exc)
            return self._refused(request, hook, InvalidSignature("invalid Vonage signature"))
        except ReplayStoreUnavailable as exc:
            log.error("vonage %s webhook: cannot check for replays (%s); answering 503", hook, exc)
            return ServiceUnavailable("cannot verify the webhook now; retry").response()
        try:
            params = json_object(body)
        except UnreadableBody as exc:
            return self._refused(request, hook, BadRequest(str(exc)))
        try:
            response = await handle(params)
        except BaseException:
            await self._replays.release(claim)
            raise
        if response.status >= 500:
            await self._replays.release(claim)
        return response

    async def _answer(self, params: dict) -> web.Response:
        uuid = text_field(params.get("uuid"))
        to = text_field(params.get("to")) or ""
        if not uuid:
            return BadRequest("no usable uuid").response()
        async with self._pool_of().acquire() as conn:
            rep_id = await self._config.rep_for_number(conn, to)
            rep = await rep_contact(conn, rep_id) if rep_id else None
            if rep is None:
                log.warning("vonage call %s to %s: no rep is routed to this number", uuid, to)
                return web.json_response(_not_in_service())
            row = await create_call(conn, NewCall(
                org_id=rep.org_id, carrier="vonage", direction="inbound", external_id=uuid,
                from_number=text_field(params.get("from")) or None, to_number=to,
                rep_id=rep.rep_id, status="ringing",
                metadata={"conversation_uuid": text_field(params.get("conversation_uuid"))},
            ))
            call_id = str(row["id"])
            token = await issue_stream_admission(conn, call_id, "vonage")
        if self.bridge is None or rep.target is None:
            return web.json_response(stream_ncco(self._config, call_id, uuid, to or None, token))
        conversation = f"coachline-{call_id}"
        # The legs are dialed after Vonage has our answer: the caller must be in the
        # conversation first, and a webhook must answer quickly.
        task = asyncio.create_task(
            self._bridge_later(call_id, uuid, conversation, rep.target, to, token))
        self._bridging.add(task)
        task.add_done_callback(self._bridging.discard)
        return web.json_response(conversation_ncco(conversation))

    async def _bridge_later(self, call_id: str, uuid: str, conversation: str, rep_target: str,
                            to: str, token: str) -> None:
        try:
            await self.bridge(call_id, uuid, conversation, rep_target, to or None, token)
        except Exception:
            log.exception("vonage call %s: bridging the rep and media legs failed", call_id)

    async def _event(self, params: dict) -> web.Response:
        uuid = text_field(params.get("uuid"))
        status = VONAGE_STATUSES.get(text_field(params.get("status")) or "")
        if status is None:
            return web.Response(status=204)  # an event we do not track (started, transfer, …)
        if not uuid:
            return BadRequest("no usable uuid").response()
        # An unusable duration (past the column, not a number) is dropped, the status kept:
        # refusing would make Vonage retry an event that can never succeed.
        duration = params.get("duration")
        duration_s = count_field(duration)
        if duration is not None and duration_s is None:
            log.warning("vonage event for %s: unusable duration ignored", uuid)
        async with self._pool_of().acquire() as conn:
            call = await find_call(conn, "vonage", uuid)
            if call is None:
                log.info("vonage event %s for unknown call %s ignored", status, uuid)
                return web.Response(status=204)
            await update_call_status(conn, call["id"], status, duration_s=duration_s)
        return web.Response(status=204)


# -- media socket ---------------------------------------------------------------------------------

FRAME_MS = 20
_RATE_RE = re.compile(r"^audio/l16;\s*rate=(8000|16000|24000)$", re.IGNORECASE)
DTMF_DIGITS = frozenset("0123456789*#ABCD")


class VonageMediaStream:
    carrier = "vonage"

    def __init__(self, pool: asyncpg.Pool, sessions: CallSessions, metrics: CarrierMetrics,
                 credential: SocketCredential | None = None) -> None:
        self._pool = pool
        # What the upgrade proved; without one no connected message is admitted.
        self._credential = credential
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
        token = headers.get("stream_token")
        if (not isinstance(call_id, str) or not isinstance(token, str)
                or not (uuid is None or isinstance(uuid, str))):
            self._refuse(WSCloseCode.POLICY_VIOLATION)
            raise MessageRejected("unknown_call", "no call_id/stream_token header")
        if self._credential is None or not self._credential.matches(call_id, token):
            self._refuse(WSCloseCode.POLICY_VIOLATION)
            raise MessageRejected("credential_mismatch",
                                  "the headers name another call or token than the upgrade")
        session = await open_stream_session(self._pool, self._sessions, "vonage", call_id, uuid,
                                            token)
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
            finite = isinstance(duration, (int, float)) and abs(duration) < 86_400_000
            duration_ms = int(duration) if finite else 0  # NaN compares false: 0 too
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
                         max_message_bytes: int, idle_timeout_s: float, start_timeout_s: float):
    """``GET /media/vonage``: the upgrade must carry an open admission's Authorization
    (``vonage_socket_auth``); otherwise it is refused and no socket is opened."""

    async def handle(request: web.Request) -> web.StreamResponse:
        try:
            credential = await authorize_upgrade(pool_of(), request.headers.get("Authorization"))
        except ApiError as refused:
            metrics.webhook_rejections.labels("vonage", "media").inc()
            log.warning("vonage media socket refused before the upgrade: %d %s (from %s)",
                        refused.status, refused.message, request.remote)
            return refused.response()
        stream = VonageMediaStream(pool_of(), sessions, metrics, credential)
        return await serve_media_socket(request, stream, max_message_bytes=max_message_bytes,
                                        idle_timeout_s=idle_timeout_s,
                                        start_timeout_s=start_timeout_s)

    return handle


# -- outbound calls -------------------------------------------------------------------------------

# Vonage's states in a create-call answer -> ours.
CREATED_STATUSES = {"started": "queued", "ringing": "ringing", "answered": "in-progress"}


class VonageDialer:
    carriers = frozenset({"vonage"})

    def __init__(self, config: CarrierConfig, pool_of) -> None:
        self._config = config
        self._pool_of = pool_of
        if config.vonage_private_key_path is None:
            raise DialerError("COACHLINE_VONAGE_PRIVATE_KEY_PATH is not set")
        auth = Auth(application_id=config.vonage_application_id,
                    private_key=str(config.vonage_private_key_path))
        self._client = Vonage(auth, HttpClientOptions(api_host=config.vonage_api_host, timeout=10))

    async def place_call(self, request: OutboundCallRequest) -> PlacedCall:
        from_number = (request.from_number or self._config.vonage_number or "").lstrip("+")
        if not from_number:
            raise DialerError("no caller id: set COACHLINE_VONAGE_NUMBER or give from_number")
        async with self._pool_of().acquire() as conn:
            token = await issue_stream_admission(conn, request.call_id, "vonage")
        params = CreateCallRequest(
            to=[ToPhone(number=request.to_number.lstrip("+"))],
            from_=Phone(number=from_number),
            ncco=[stream_connect(self._config, request.call_id, None, from_number, token)],
            event_url=[self._config.url(EVENT_PATH)],
            event_method="POST",
        )
        try:
            response = await asyncio.to_thread(self._client.voice.create_call, params)
        except (VonageError, requests.RequestException) as exc:
            log.warning("vonage refused outbound call %s: %s", request.call_id, exc)
            raise DialerError(f"Vonage refused the call: {exc}") from exc
        return PlacedCall(external_id=response.uuid,
                          status=CREATED_STATUSES.get(response.status, "queued"))

    async def bridge_inbound(self, call_id: str, caller_uuid: str, conversation: str,
                             rep_target: str, from_number: str | None, token: str) -> None:
        """Join our media WebSocket and the rep to the caller's conversation (two REST legs).

        ``token`` is the call's stream token, issued when the answer webhook held the caller.
        """
        number = (from_number or self._config.vonage_number or "").lstrip("+")
        joined = [Conversation(name=conversation)]
        media_leg = CreateCallRequest(
            to=[Websocket(uri=self._config.ws_url(MEDIA_PATH), content_type=CONTENT_TYPE,
                          headers=stream_headers(call_id, caller_uuid, token),
                          authorization=socket_authorization(call_id, token))],
            from_=Phone(number=number) if number else None,
            random_from_number=None if number else True,
            ncco=joined,
        )
        rep = (Sip(uri=rep_target) if rep_target.startswith("sip:")
               else ToPhone(number=rep_target.lstrip("+")))
        rep_leg = CreateCallRequest(
            to=[rep], from_=Phone(number=number) if number else None,
            random_from_number=None if number else True, ncco=joined,
        )
        for name, leg in (("media", media_leg), ("rep", rep_leg)):
            try:
                created = await asyncio.to_thread(self._client.voice.create_call, leg)
            except (VonageError, requests.RequestException) as exc:
                log.error("vonage call %s: could not add the %s leg: %s", call_id, name, exc)
                continue
            log.info("vonage call %s: %s leg %s joined %s", call_id, name, created.uuid, conversation)


async def _answer_by_get(request: web.Request) -> web.Response:
    log.warning("vonage answer webhook by GET refused: set answer_method POST on the application")
    return MethodNotAllowed("the answer webhook must be POSTed (answer_method: POST)",
                            headers={"Allow": "POST"}).response()


def setup_vonage(app: web.Application, edge: CarrierEdge) -> None:
    """Vonage's webhook and media routes; its dialer (and inbound bridging) when configured."""
    webhooks = VonageWebhooks(edge.config, edge.pool_of, edge.metrics, edge.redis_of)
    # POST only: a GET answer carries its call in the query string, which no signature covers.
    app.router.add_post(ANSWER_PATH, webhooks.answer)
    app.router.add_get(ANSWER_PATH, _answer_by_get)
    app.router.add_post(EVENT_PATH, webhooks.event)
    app.router.add_get(MEDIA_PATH, vonage_media_handler(
        edge.pool_of, edge.sessions, edge.metrics, **edge.media_limits))
    config = edge.config
    if config.vonage_application_id and config.vonage_private_key_path:
        try:
            edge.dialers["vonage"] = VonageDialer(config, edge.pool_of)
            webhooks.bridge = edge.dialers["vonage"].bridge_inbound
        except (DialerError, OSError, ValueError) as exc:
            log.error("vonage outbound calls disabled: %s", exc)
