"""Twilio's webhooks: the inbound-call TwiML and call status callbacks.

Every request must carry a valid ``X-Twilio-Signature`` (checked with the
twilio SDK's ``RequestValidator``) computed over the public URL Twilio used,
which behind a proxy is not the URL this server sees: the public base comes
from ``COACHLINE_PUBLIC_URL``. Form bodies are signed by their parameters;
JSON bodies by the URL, whose ``bodySHA256`` query parameter pins the body.
"""

from __future__ import annotations

import logging

from aiohttp import web
from twilio.request_validator import RequestValidator
from twilio.twiml.voice_response import Dial, Start, VoiceResponse

from crm_core.calls.records import NewCall, create_call, find_call, update_call_status
from voice_server.carriers.call_records import rep_route
from voice_server.carriers.config import CarrierConfig
from voice_server.carriers.metrics import CarrierMetrics

log = logging.getLogger(__name__)

MEDIA_PATH = "/media/twilio"
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
        """The request's parameters when its signature is valid, else None."""
        signature = request.headers.get("X-Twilio-Signature")
        if not signature or not self._config.twilio_auth_token:
            return None
        url = self._config.url(request.rel_url.path_qs)
        if request.content_type == "application/json":
            if "bodySHA256" not in request.query:
                return None  # an unpinned JSON body could be anything
            body = await request.text()
            if not self._validator.validate(url, body, signature):
                return None
            try:
                data = await request.json()
            except ValueError:
                return None
            return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else None
        form = await request.post()
        if not self._validator.validate(url, form, signature):
            return None
        return {k: str(v) for k, v in form.items()}


    def socket_signature_ok(self, request: web.Request) -> bool:
        """Twilio signs the Media Streams WebSocket upgrade over the wss:// URL it opened.

        A handshake without a signature is let through (the stream must still name a
        call of ours and its CallSid); one with a wrong signature is not.
        """
        signature = request.headers.get("X-Twilio-Signature")
        if signature is None:
            return True
        url = self._config.ws_url(request.rel_url.path_qs)
        return bool(self._config.twilio_auth_token) and self._validator.validate(url, {}, signature)


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

    async def voice(self, request: web.Request) -> web.Response:
        params = await self._signature.verify(request)
        if params is None:
            return self._forbidden(request, "voice")
        call_sid, to = params.get("CallSid"), params.get("To", "")
        if not call_sid:
            self._metrics.webhook_rejections.labels("twilio", "voice").inc()
            return web.json_response({"error": {"code": "bad_request", "message": "no CallSid"}},
                                     status=400)
        rep_id = self._config.carrier_numbers.get(to)
        async with self._pool_of().acquire() as conn:
            rep = await rep_route(conn, rep_id) if rep_id else None
            if rep is None or rep.target is None:
                log.warning("twilio call %s to %s: no rep is routed to this number; rejecting",
                            call_sid, to)
                return _twiml(_reject_twiml())
            row = await create_call(conn, NewCall(
                org_id=rep.org_id, carrier="twilio", direction="inbound", external_id=call_sid,
                from_number=params.get("From"), to_number=to, rep_id=rep.rep_id, status="ringing",
            ))
        call_id = str(row["id"])
        twiml = stream_twiml(
            self._config.ws_url(MEDIA_PATH),
            {"call_id": call_id, "org_id": rep.org_id, "direction": "inbound"},
            rep.target,
            caller_id=params.get("From") or None,
        )
        log.info("twilio inbound call %s -> rep %s (call %s)", call_sid, rep.rep_id, call_id)
        return _twiml(twiml)

    async def status(self, request: web.Request) -> web.Response:
        params = await self._signature.verify(request)
        if params is None:
            return self._forbidden(request, "status")
        call_sid = params.get("CallSid", "")
        status = TWILIO_STATUSES.get(params.get("CallStatus", ""))
        if status is None:
            self._metrics.webhook_rejections.labels("twilio", "status").inc()
            log.warning("twilio status callback with unknown status %r", params.get("CallStatus"))
            return web.json_response(
                {"error": {"code": "bad_request", "message": "unknown CallStatus"}}, status=400)
        duration = params.get("CallDuration")
        duration_s = int(duration) if duration and duration.isdigit() else None
        async with self._pool_of().acquire() as conn:
            call = await find_call(conn, "twilio", call_sid)
            if call is None:
                # Not ours (or long gone): acknowledge so Twilio does not retry forever.
                log.info("twilio status %s for unknown call %s ignored", status, call_sid)
                return web.Response(status=204)
            await update_call_status(conn, call["id"], status, duration_s=duration_s)
        return web.Response(status=204)
