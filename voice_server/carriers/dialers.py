"""Outbound calls through the carriers' official SDKs (``crm_core.calls.dialing.Dialer``).

Both SDKs are synchronous (``requests``), so each call runs in a worker
thread. Their API base is configurable so tests and the demo point them at
the loopback carrier fake (``voice_server/simulator/carrier``).

Twilio calls are agent-first: Twilio rings the rep, and the TwiML forks both
tracks to us and then ``<Dial>``s the customer. The stream's leg is therefore
the rep (inbound track = rep), see ``voice_server.transports.twilio``.
Vonage calls ring the customer with an NCCO connecting our media WebSocket.
Inbound Vonage calls are bridged through a named conversation: the caller
waits in it, and ``VonageDialer.bridge_inbound`` dials two more legs into it,
our media WebSocket (which then hears the conversation's mix) and the rep.
"""

from __future__ import annotations

import asyncio
import logging

import requests
from twilio.base.exceptions import TwilioException
from twilio.rest import Client as TwilioClient
from vonage import Auth, HttpClientOptions, Vonage
from vonage_utils import VonageError
from vonage_voice.models.common import Phone, Sip, Websocket
from vonage_voice.models.ncco import Conversation
from vonage_voice.models.requests import CreateCallRequest, ToPhone

from crm_core.calls.dialing import DialerError, OutboundCallRequest, PlacedCall
from voice_server.carriers.call_records import rep_route
from voice_server.carriers.config import CarrierConfig
from voice_server.carriers.twilio_webhooks import MEDIA_PATH as TWILIO_MEDIA_PATH
from voice_server.carriers.twilio_webhooks import TWILIO_STATUSES, stream_twiml
from voice_server.carriers.vonage_webhooks import (
    CONTENT_TYPE,
    EVENT_PATH,
    stream_connect,
)
from voice_server.carriers.vonage_webhooks import (
    MEDIA_PATH as VONAGE_MEDIA_PATH,
)

log = logging.getLogger(__name__)

TWILIO_STATUS_PATH = "/carriers/twilio/status"
VONAGE_STATUSES = {"started": "queued", "ringing": "ringing", "answered": "in-progress"}


class TwilioDialer:
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
            rep = await rep_route(conn, request.rep_id)
        if rep is None or rep.target is None:
            raise DialerError("the rep has no phone number or SIP address to ring")
        caller_id = request.from_number or self._config.twilio_caller_id
        if not caller_id:
            raise DialerError("no caller id: set COACHLINE_TWILIO_CALLER_ID or give from_number")
        twiml = stream_twiml(
            self._config.ws_url(TWILIO_MEDIA_PATH),
            {"call_id": request.call_id, "org_id": request.org_id, "direction": "outbound"},
            request.to_number,
            caller_id=caller_id,
        )
        try:
            call = await asyncio.to_thread(
                self._client.calls.create,
                to=rep.target,
                from_=caller_id,
                twiml=twiml,
                status_callback=self._config.url(TWILIO_STATUS_PATH),
                status_callback_method="POST",
                status_callback_event=["initiated", "ringing", "answered", "completed"],
            )
        except (TwilioException, requests.RequestException) as exc:
            log.warning("twilio refused outbound call %s: %s", request.call_id, exc)
            raise DialerError(f"Twilio refused the call: {exc}") from exc
        return PlacedCall(external_id=call.sid, status=TWILIO_STATUSES.get(call.status, "queued"))


class VonageDialer:
    carriers = frozenset({"vonage"})

    def __init__(self, config: CarrierConfig) -> None:
        self._config = config
        if config.vonage_private_key_path is None:
            raise DialerError("COACHLINE_VONAGE_PRIVATE_KEY_PATH is not set")
        auth = Auth(application_id=config.vonage_application_id,
                    private_key=str(config.vonage_private_key_path))
        self._client = Vonage(auth, HttpClientOptions(api_host=config.vonage_api_host, timeout=10))

    async def place_call(self, request: OutboundCallRequest) -> PlacedCall:
        from_number = (request.from_number or self._config.vonage_number or "").lstrip("+")
        if not from_number:
            raise DialerError("no caller id: set COACHLINE_VONAGE_NUMBER or give from_number")
        params = CreateCallRequest(
            to=[ToPhone(number=request.to_number.lstrip("+"))],
            from_=Phone(number=from_number),
            ncco=[stream_connect(self._config, request.call_id, None, from_number)],
            event_url=[self._config.url(EVENT_PATH)],
            event_method="POST",
        )
        try:
            response = await asyncio.to_thread(self._client.voice.create_call, params)
        except (VonageError, requests.RequestException) as exc:
            log.warning("vonage refused outbound call %s: %s", request.call_id, exc)
            raise DialerError(f"Vonage refused the call: {exc}") from exc
        return PlacedCall(external_id=response.uuid,
                          status=VONAGE_STATUSES.get(response.status, "queued"))

    async def bridge_inbound(self, call_id: str, caller_uuid: str, conversation: str,
                             rep_target: str, from_number: str | None) -> None:
        """Join our media WebSocket and the rep to the caller's conversation (two REST legs)."""
        number = (from_number or self._config.vonage_number or "").lstrip("+")
        joined = [Conversation(name=conversation)]
        media_leg = CreateCallRequest(
            to=[Websocket(uri=self._config.ws_url(VONAGE_MEDIA_PATH), content_type=CONTENT_TYPE,
                          headers={"call_id": call_id, "vonage_uuid": caller_uuid})],
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
