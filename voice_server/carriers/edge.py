"""The carrier edge on the app: webhook and media routes, metrics, dialers, outbound calls.

``setup_carriers(app)`` is called by ``create_app``; ``place_outbound_call``
is what an API route calls once the CRM has created the call row.
"""

from __future__ import annotations

import logging

from aiohttp import web

from crm_core.calls import update_call_status
from crm_core.dialing import Dialer, DialerError, OutboundCallRequest, PlacedCall
from voice_server.app_keys import CALL_SESSIONS, METRICS, RUNTIME, SETTINGS
from voice_server.carriers.call_records import attach_external_id
from voice_server.carriers.config import CarrierConfig
from voice_server.carriers.dialers import TwilioDialer, VonageDialer
from voice_server.carriers.metrics import CarrierMetrics
from voice_server.carriers.twilio_webhooks import TwilioWebhooks
from voice_server.carriers.vonage_webhooks import VonageWebhooks
from voice_server.transports.twilio import twilio_media_handler
from voice_server.transports.vonage import vonage_media_handler

log = logging.getLogger(__name__)

CARRIER_CONFIG = web.AppKey("carrier_config", CarrierConfig)
CARRIER_METRICS = web.AppKey("carrier_metrics", CarrierMetrics)
DIALERS = web.AppKey("dialers", dict)  # carrier name -> Dialer


def setup_carriers(app: web.Application) -> None:
    config = CarrierConfig.from_settings(app[SETTINGS])
    metrics = CarrierMetrics(app[METRICS].registry)
    app[CARRIER_CONFIG] = config
    app[CARRIER_METRICS] = metrics
    app[DIALERS] = {}

    def pool_of():
        pool = app[RUNTIME].pool
        if pool is None:
            raise RuntimeError("the database pool is not open yet")
        return pool

    twilio = TwilioWebhooks(config, pool_of, metrics)
    vonage = VonageWebhooks(config, pool_of, metrics)
    sessions = app[CALL_SESSIONS]
    limits = {"max_message_bytes": config.media_max_message_bytes,
              "idle_timeout_s": config.media_idle_timeout_s}
    app.router.add_post("/carriers/twilio/voice", twilio.voice)
    app.router.add_post("/carriers/twilio/status", twilio.status)
    app.router.add_get("/media/twilio", twilio_media_handler(
        pool_of, sessions, metrics, signature_ok=twilio.signature.socket_signature_ok, **limits))
    app.router.add_route("GET", "/carriers/vonage/answer", vonage.answer)
    app.router.add_route("POST", "/carriers/vonage/answer", vonage.answer)
    app.router.add_post("/carriers/vonage/event", vonage.event)
    app.router.add_get("/media/vonage", vonage_media_handler(pool_of, sessions, metrics, **limits))

    # Resolved before the CRM's /api/v1 sub-application: aiohttp tries the longest prefix first.
    from voice_server.carriers.outbound_route import PATH as OUTBOUND_PATH
    from voice_server.carriers.outbound_route import outbound_call

    app.router.add_post(OUTBOUND_PATH, outbound_call)

    # Dialers for the carriers that are configured; a carrier without credentials has none.
    if config.twilio_auth_token:
        app[DIALERS]["twilio"] = TwilioDialer(config, pool_of)
    if config.vonage_application_id and config.vonage_private_key_path:
        try:
            app[DIALERS]["vonage"] = VonageDialer(config)
            vonage.bridge = app[DIALERS]["vonage"].bridge_inbound
        except (DialerError, OSError, ValueError) as exc:
            log.error("vonage outbound calls disabled: %s", exc)


async def place_outbound_call(app: web.Application, request: OutboundCallRequest) -> PlacedCall:
    """Dial ``request`` through its carrier and record the carrier's id and status on the row.

    Raises DialerError when the carrier is not configured or refuses (the API answers 502).
    """
    dialer: Dialer | None = app[DIALERS].get(request.carrier)
    if dialer is None:
        raise DialerError(f"carrier {request.carrier!r} is not configured for outbound calls")
    placed = await dialer.place_call(request)
    async with app[RUNTIME].pool.acquire() as conn:
        row = await attach_external_id(conn, request.call_id, placed.external_id)
        if row is None:
            log.error("outbound call %s: row already has another carrier id", request.call_id)
        else:
            await update_call_status(conn, request.call_id, placed.status)
    log.info("outbound %s call %s placed (%s)", request.carrier, request.call_id, placed.external_id)
    return placed
