"""The carrier edge on the app: webhook and media routes, metrics, dialers.

``setup_carriers(app)`` is called by ``create_app``. Outbound calls are the CRM
API's ``POST /api/v1/calls/outbound`` (``crm_core.api.outbound``): the edge
registers its dialers in the API's registry (``ApiContext.dialers``), which is
also ``app[DIALERS]``. ``place_outbound_call`` dials a call whose row exists.
"""

from __future__ import annotations

import logging

from aiohttp import web

from crm_core.api_context import CRM_API
from crm_core.calls.dialing import DialerError, OutboundCallRequest, PlacedCall, place_call
from voice_server.app_keys import CALL_SESSIONS, METRICS, RUNTIME, SETTINGS
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
    # The CRM API's dialer registry when the API is mounted, so its outbound endpoint sees them.
    app[DIALERS] = app[CRM_API].dialers if CRM_API in app else {}

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

    Raises DialerError when the carrier is not configured or refuses.
    """
    return await place_call(app[RUNTIME].pool, app[DIALERS], request)
