"""Vonage's signed webhooks: what a valid token vouches for, and that it vouches once.

Vonage signs every Voice webhook with an HS256 JWT (the account's signature
secret) in ``Authorization: Bearer …``. Its claims say when it was minted
(``iat``), name it uniquely (``jti``) and pin the request body (``payload_hash``,
the SHA-256 of the body's bytes). Nothing in the token covers the URL's query
string, so:

* the ``payload_hash`` is required and compared on every request, an empty body
  included (the hash of no bytes): a token without one vouches for nothing;
* the handlers read the signed body only, never the query string (Vonage must be
  configured to POST its answer and event webhooks, see docs/carriers.md);
* a token is accepted once: its ``jti`` (or, lacking one, ``iat`` + body hash) is
  claimed in Redis for as long as the token could still pass the age check.
  A claim is released when the request then fails on our side (5xx), so that
  Vonage's retry of a request we could not serve is not taken for a replay.

Without Redis a replay cannot be ruled out on a multi-node deployment, so the
webhook answers 503 (Vonage retries, then uses its fallback URL) rather than
serving a request that might be a replay.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from typing import Any

import jwt
from redis.exceptions import RedisError
from vonage_jwt.errors import VonageVerifyJwtError
from vonage_jwt.verify_jwt import verify_signature

from crm_core.api_errors import ApiError

REPLAY_KEY_PREFIX = "coachline:vonage:webhook-token:"


class SignatureRejected(Exception):
    """A Vonage webhook whose signature, body hash, age or uniqueness does not check out."""


class InvalidSignature(ApiError):
    """The answer to a webhook whose token does not check out (whatever the reason)."""

    status, code = 401, "unauthorized"


class ReplayStoreUnavailable(Exception):
    """Redis could not say whether the token was seen before."""


def verify_signed_webhook(
    secret: str, authorization: str | None, body: bytes, max_age_s: float, now: float | None = None
) -> dict:
    """The token's claims when ``body`` is genuinely what Vonage signed; else SignatureRejected."""
    if not secret:
        raise SignatureRejected("no signature secret configured")
    if not authorization or not authorization.startswith("Bearer "):
        raise SignatureRejected("no bearer token")
    token = authorization.removeprefix("Bearer ").strip()
    try:
        if not verify_signature(token, secret):
            raise SignatureRejected("bad signature")
        claims = jwt.decode(token, secret, algorithms=["HS256"])
    except (VonageVerifyJwtError, jwt.PyJWTError) as exc:  # malformed, expired, …
        raise SignatureRejected(f"unusable token ({type(exc).__name__})") from None
    iat = claims.get("iat")
    now = time.time() if now is None else now
    if (
        isinstance(iat, bool)
        or not isinstance(iat, (int, float))
        or not abs(now - iat) <= max_age_s
    ):
        raise SignatureRejected("token too old, from the future or without iat")
    payload_hash = claims.get("payload_hash")
    if not isinstance(payload_hash, str):
        raise SignatureRejected("token without payload_hash")
    if not hmac.compare_digest(
        payload_hash.lower().encode(), hashlib.sha256(body).hexdigest().encode()
    ):
        raise SignatureRejected("payload_hash does not match the body")
    return claims


def replay_key(claims: dict) -> str:
    """What makes a token unique: its ``jti``, else its ``iat`` with the body hash."""
    jti = claims.get("jti")
    identity = (
        f"jti:{jti}"
        if isinstance(jti, str) and jti
        else f"iat:{claims['iat']}:{claims['payload_hash']}"
    )
    return REPLAY_KEY_PREFIX + hashlib.sha256(identity.encode()).hexdigest()


class ReplayGuard:
    """Claims each token once in Redis, for as long as the age check would still pass it."""

    def __init__(self, redis_of: Callable[[], Any], max_age_s: float) -> None:
        self._redis_of = redis_of
        # A token passes while |now - iat| <= max_age: it can arrive up to 2 * max_age after
        # a first use that came max_age early.
        self._ttl_ms = max(1000, int(2 * max_age_s * 1000) + 1000)

    async def claim(self, claims: dict) -> str:
        """Record the token as used; SignatureRejected when it was already."""
        key = replay_key(claims)
        redis = self._redis_of()
        if redis is None:
            raise ReplayStoreUnavailable("Redis is not open")
        try:
            fresh = await redis.set(key, b"1", nx=True, px=self._ttl_ms)
        except (RedisError, OSError, TimeoutError) as exc:
            raise ReplayStoreUnavailable(type(exc).__name__) from None
        if not fresh:
            raise SignatureRejected("token already used (replay)")
        return key

    async def release(self, key: str) -> None:
        """Forget a claim whose request we failed to serve, so Vonage's retry is accepted."""
        redis = self._redis_of()
        if redis is None:
            return
        try:
            await redis.delete(key)
        except (RedisError, OSError, TimeoutError):
            pass  # the retry is then refused as a replay: no worse than the failure itself
