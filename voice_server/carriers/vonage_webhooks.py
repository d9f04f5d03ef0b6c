"""Vonage's webhooks: the answer NCCO and call events, with signed-webhook checks.

Vonage signs each webhook with a JWT (HS256, the account's signature secret)
in ``Authorization: Bearer …``; its ``payload_hash`` claim is the SHA-256 of
the body. The token is checked with the vonage SDK's ``verify_signature``,
the claims for the body hash and the token's age.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time

import jwt
from aiohttp import web
from vonage_jwt.errors import VonageVerifyJwtError
from vonage_jwt.verify_jwt import verify_signature
from vonage_voice.models.connect_endpoints import WebsocketEndpoint
from vonage_voice.models.ncco import Connect, Conversation, Talk

from crm_core.calls.records import NewCall, create_call, find_call, update_call_status
from voice_server.carriers.call_records import rep_route
from voice_server.carriers.config import CarrierConfig
from voice_server.carriers.metrics import CarrierMetrics

log = logging.getLogger(__name__)

MEDIA_PATH = "/media/vonage"
EVENT_PATH = "/carriers/vonage/event"
CONTENT_TYPE = "audio/l16;rate=16000"
# Vonage call states -> ours; states not listed (e.g. "started" of a leg) change nothing.
VONAGE_STATUSES = {
    "ringing": "ringing", "answered": "in-progress", "completed": "completed",
    "busy": "busy", "failed": "failed", "rejected": "failed", "timeout": "no-answer",
    "unanswered": "no-answer", "cancelled": "canceled", "machine": "in-progress",
}


class SignatureRejected(Exception):
    """A Vonage webhook whose signature, body hash or age does not check out."""


def verify_signed_webhook(secret: str, authorization: str | None, body: bytes,
                          max_age_s: float, now: float | None = None) -> dict:
    """The token's claims when the webhook is genuinely Vonage's; else SignatureRejected."""
    if not secret:
        raise SignatureRejected("no signature secret configured")
    if not authorization or not authorization.startswith("Bearer "):
        raise SignatureRejected("no bearer token")
    token = authorization.removeprefix("Bearer ").strip()
    try:
        if not verify_signature(token, secret):
            raise SignatureRejected("bad signature")
    except VonageVerifyJwtError as exc:  # malformed, expired, …
        raise SignatureRejected(f"unusable token: {exc}") from None
    claims = jwt.decode(token, secret, algorithms=["HS256"])
    iat = claims.get("iat")
    now = time.time() if now is None else now
    if not isinstance(iat, (int, float)) or abs(now - iat) > max_age_s:
        raise SignatureRejected("token too old or without iat")
    if body:
        expected = hashlib.sha256(body).hexdigest()
        if not hmac.compare_digest(str(claims.get("payload_hash", "")), expected):
            raise SignatureRejected("payload_hash does not match the body")
    return claims


def stream_connect(config: CarrierConfig, call_id: str, uuid: str | None,
                   from_number: str | None) -> Connect:
    """The NCCO action connecting a call to our media WebSocket (16 kHz L16), ids in headers."""
    headers = {"call_id": call_id}
    if uuid:
        headers["vonage_uuid"] = uuid
    number = (from_number or config.vonage_number or "").lstrip("+") or None
    return Connect(
        endpoint=[WebsocketEndpoint(uri=config.ws_url(MEDIA_PATH), contentType=CONTENT_TYPE,
                                    headers=headers)],
        eventUrl=[config.url(EVENT_PATH)],
        from_=number,
        randomFromNumber=None if number else True,
    )


def stream_ncco(config: CarrierConfig, call_id: str, uuid: str | None,
                from_number: str | None) -> list[dict]:
    connect = stream_connect(config, call_id, uuid, from_number)
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

    def __init__(self, config: CarrierConfig, pool_of, metrics: CarrierMetrics) -> None:
        self._config = config
        self._pool_of = pool_of
        self._metrics = metrics
        # async (call_id, caller_uuid, conversation, rep_target, from_number) -> None
        self.bridge = None
        self._bridging: set[asyncio.Task] = set()

    async def _verified(self, request: web.Request, hook: str) -> tuple[dict | None, web.Response | None]:
        body = await request.read()
        try:
            verify_signed_webhook(self._config.vonage_signature_secret,
                                  request.headers.get("Authorization"), body,
                                  self._config.vonage_signature_max_age_s)
        except SignatureRejected as exc:
            self._metrics.webhook_rejections.labels("vonage", hook).inc()
            log.warning("vonage %s webhook refused: %s (from %s)", hook, exc, request.remote)
            return None, web.json_response(
                {"error": {"code": "unauthorized", "message": "invalid Vonage signature"}},
                status=401)
        params: dict = dict(request.query)
        if body:
            try:
                data = json.loads(body)
            except ValueError:
                data = None
            if not isinstance(data, dict):
                self._metrics.webhook_rejections.labels("vonage", hook).inc()
                return None, web.json_response(
                    {"error": {"code": "bad_request", "message": "body is not a JSON object"}},
                    status=400)
            params.update(data)
        return params, None

    async def answer(self, request: web.Request) -> web.Response:
        params, refusal = await self._verified(request, "answer")
        if refusal is not None:
            return refusal
        uuid, to = str(params.get("uuid") or ""), str(params.get("to") or "")
        if not uuid:
            return web.json_response({"error": {"code": "bad_request", "message": "no uuid"}},
                                     status=400)
        rep_id = self._config.carrier_numbers.get(to) or self._config.carrier_numbers.get("+" + to)
        async with self._pool_of().acquire() as conn:
            rep = await rep_route(conn, rep_id) if rep_id else None
            if rep is None:
                log.warning("vonage call %s to %s: no rep is routed to this number", uuid, to)
                return web.json_response(_not_in_service())
            row = await create_call(conn, NewCall(
                org_id=rep.org_id, carrier="vonage", direction="inbound", external_id=uuid,
                from_number=str(params.get("from") or "") or None, to_number=to,
                rep_id=rep.rep_id, status="ringing",
                metadata={"conversation_uuid": params.get("conversation_uuid")},
            ))
        call_id = str(row["id"])
        if self.bridge is None or rep.target is None:
            return web.json_response(stream_ncco(self._config, call_id, uuid, to or None))
        conversation = f"coachline-{call_id}"
        # The legs are dialed after Vonage has our answer: the caller must be in the
        # conversation first, and a webhook must answer quickly.
        task = asyncio.create_task(self._bridge_later(call_id, uuid, conversation, rep.target, to))
        self._bridging.add(task)
        task.add_done_callback(self._bridging.discard)
        return web.json_response(conversation_ncco(conversation))

    async def _bridge_later(self, call_id: str, uuid: str, conversation: str, rep_target: str,
                            to: str) -> None:
        try:
            await self.bridge(call_id, uuid, conversation, rep_target, to or None)
        except Exception:
            log.exception("vonage call %s: bridging the rep and media legs failed", call_id)

    async def event(self, request: web.Request) -> web.Response:
        params, refusal = await self._verified(request, "event")
        if refusal is not None:
            return refusal
        uuid = str(params.get("uuid") or "")
        status = VONAGE_STATUSES.get(str(params.get("status") or ""))
        if status is None:
            return web.Response(status=204)  # an event we do not track (started, transfer, …)
        duration = params.get("duration")
        duration_s = int(duration) if str(duration or "").isdigit() else None
        async with self._pool_of().acquire() as conn:
            call = await find_call(conn, "vonage", uuid)
            if call is None:
                log.info("vonage event %s for unknown call %s ignored", status, uuid)
                return web.Response(status=204)
            await update_call_status(conn, call["id"], status, duration_s=duration_s)
        return web.Response(status=204)
