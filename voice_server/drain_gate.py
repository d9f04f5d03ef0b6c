"""While a node drains, new calls go elsewhere: their entry points answer 503.

Carrier webhooks that start a call (Twilio's voice webhook, Vonage's answer
webhook) and new media streams are refused, so the carrier retries another
replica (Twilio's fallback URL, the load balancer's next endpoint). Status
callbacks, live feeds and the streams already open keep being served: those
calls finish here.
"""

from __future__ import annotations

import json

from aiohttp import web

from voice_server.app_keys import DRAINING
from voice_server.rate_limits import Handler

NEW_CALL_PATHS = frozenset({
    "/carriers/twilio/voice",
    "/carriers/vonage/answer",
    "/media/twilio",
    "/media/vonage",
})


@web.middleware
async def refuse_new_calls_while_draining(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path in NEW_CALL_PATHS and request.app[DRAINING].is_set():
        raise web.HTTPServiceUnavailable(
            text=json.dumps({"error": {"code": "draining",
                                       "message": "this node is shutting down; try another"}}),
            content_type="application/json",
            headers={"Retry-After": "1"},
        )
    return await handler(request)
