"""Reading a Twilio webhook only as far as its signature vouches for it.

Twilio signs the public URL it called plus, for a form body, the form's decoded
parameters; for a JSON body the URL carries ``bodySHA256``, the SHA-256 of the
body's bytes, and the signature covers the URL alone. So:

* JSON: the raw bytes are hashed and compared, and the URL's signature checked,
  before the body is decoded at all;
* forms: the body is decoded strictly as UTF-8 (raw and percent-encoded, as
  Twilio sends it) and the signature computed over exactly what was decoded. A
  lossy decoder would make a different parameter set than the sender signed.

A body that cannot be decoded raises ``UnreadableBody`` (the handler's 400); a
missing or wrong signature gives None (403).
"""

from __future__ import annotations

import hashlib
import hmac

from aiohttp import web
from twilio.request_validator import RequestValidator

from voice_server.transports.webhook_input import form_fields, json_object


async def signed_twilio_params(
    validator: RequestValidator, url: str, signature: str, request: web.Request
) -> dict[str, str] | None:
    """The request's parameters when ``signature`` is Twilio's over ``url`` and the body."""
    body = await request.read()
    if request.content_type == "application/json":
        pinned = request.query.getall("bodySHA256", [])
        if len(pinned) != 1:
            return None  # an unpinned JSON body could be anything
        digest = hashlib.sha256(body).hexdigest()
        if not hmac.compare_digest(pinned[0].lower().encode(), digest.encode()):
            return None
        if not validator.validate(url, {}, signature):
            return None
        data = json_object(body)
        # Only scalars: a nested value is nothing a Twilio webhook field holds.
        return {
            str(k): str(v)
            for k, v in data.items()
            if isinstance(v, (str, int, float)) and not isinstance(v, bool)
        }
    form = form_fields(body)
    if not validator.validate(url, form, signature):
        return None
    return {k: v for k, v in form.items()}
