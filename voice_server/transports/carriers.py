"""The carrier edge on the app: each carrier's webhooks, media sockets and dialer.

``CARRIERS`` is the registry: one ``setup_<carrier>(app, edge)`` per carrier module
(``voice_server.transports.twilio``, ``.vonage``). ``setup_carriers(app)``, called by
``create_app``, builds the shared ``CarrierEdge`` and runs each. Adding a carrier is
one module with its setup function and one line in ``CARRIERS``.

Outbound calls are the CRM API's ``POST /api/v1/calls/outbound``
(``crm_core.api.outbound``): the carriers register their dialers in the API's
registry (``ApiContext.dialers``), which is also ``app[DIALERS]``.
``place_outbound_call`` dials a call whose row exists.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from crm_core.api_context import CRM_API
from crm_core.calls.dialing import OutboundCallRequest, PlacedCall, place_call
from voice_server.app_keys import CALL_SESSIONS, METRICS, RUNTIME, SETTINGS
from voice_server.transports.carrier_config import CarrierConfig, CarrierEdge
from voice_server.transports.carrier_metrics import CarrierMetrics
from voice_server.transports.twilio import setup_twilio
from voice_server.transports.vonage import setup_vonage

CARRIERS: tuple[Callable[[web.Application, CarrierEdge], None], ...] = (
    setup_twilio,
    setup_vonage,
)

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

    edge = CarrierEdge(config, metrics, pool_of, app[CALL_SESSIONS], app[DIALERS],
                       redis_of=lambda: app[RUNTIME].redis)
    # A carrier without credentials gets its routes but no dialer.
    for setup in CARRIERS:
        setup(app, edge)


async def place_outbound_call(app: web.Application, request: OutboundCallRequest) -> PlacedCall:
    """Dial ``request`` through its carrier and record the carrier's id and status on the row.

    Raises DialerError when the carrier is not configured or refuses.
    """
    return await place_call(app[RUNTIME].pool, app[DIALERS], request)
