"""Signing webhooks the way Twilio and Vonage sign them."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from urllib.parse import urlencode

import jwt
from twilio.request_validator import RequestValidator


def twilio_form(auth_token: str, url: str, params: dict[str, str]) -> tuple[bytes, dict[str, str]]:
    """A form-encoded Twilio webhook body and its headers (X-Twilio-Signature)."""
    signature = RequestValidator(auth_token).compute_signature(url, params)
    return urlencode(params).encode(), {
        "X-Twilio-Signature": signature,
        "Content-Type": "application/x-www-form-urlencoded",
    }


def twilio_socket_headers(auth_token: str, stream_url: str) -> dict[str, str]:
    """The headers of Twilio's Media Streams WebSocket upgrade: the ``wss://`` URL of the
    TwiML's ``<Stream>``, signed with no parameters."""
    return {"X-Twilio-Signature": RequestValidator(auth_token).compute_signature(stream_url, {})}


def twilio_json(auth_token: str, url: str, payload: dict) -> tuple[str, bytes, dict[str, str]]:
    """A JSON Twilio webhook: the URL gains ``bodySHA256``, the signature covers the URL."""
    body = json.dumps(payload).encode()
    validator = RequestValidator(auth_token)
    separator = "&" if "?" in url else "?"
    signed_url = f"{url}{separator}bodySHA256={validator.compute_hash(body.decode())}"
    signature = validator.compute_signature(signed_url, {})
    return signed_url, body, {"X-Twilio-Signature": signature, "Content-Type": "application/json"}


def vonage_token(signature_secret: str, body: bytes = b"", *, api_key: str = "abcd1234",
                 issued_at: float | None = None) -> str:
    """The HS256 JWT Vonage puts in ``Authorization: Bearer`` on a signed webhook."""
    claims = {
        "iat": int(time.time() if issued_at is None else issued_at),
        "jti": str(uuid.uuid4()),
        "iss": "Vonage",
        "api_key": api_key,
        "payload_hash": hashlib.sha256(body).hexdigest(),  # an empty body is hashed too
    }
    return jwt.encode(claims, signature_secret, algorithm="HS256")


def vonage_headers(signature_secret: str, body: bytes = b"", **kwargs) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {vonage_token(signature_secret, body, **kwargs)}"}
    if body:
        headers["Content-Type"] = "application/json"
    return headers


def vonage_socket_headers(endpoint: dict) -> dict[str, str]:
    """The headers of Vonage's WebSocket upgrade for an NCCO / call websocket ``endpoint``:
    an ``authorization`` of type ``custom`` is sent as the ``Authorization`` header, as is."""
    authorization = endpoint.get("authorization")
    if isinstance(authorization, dict) and authorization.get("type") == "custom":
        return {"Authorization": str(authorization.get("value", ""))}
    return {}
