"""The REST API's rate limits on a node: ``voice_server.rate_limits`` wired to the app's Redis.

Budgets live in the shared Redis, so a client spends one budget however its
requests are spread over nodes. Only the REST API (``/api/``, ``/auth/``) is
limited: carrier webhooks and media, live feeds and probes are never refused
by it (a carrier's retries or a rep's browser must not lose a call).
Requests are bucketed by what the middleware sees: the principal when an
earlier middleware set one, else the client address.
"""

from __future__ import annotations

from aiohttp import web

from storage.rate_limit import RateLimiter
from voice_server.app_keys import RUNTIME
from voice_server.rate_limits import (
    Handler,
    RateLimitPolicy,
    enforce_rate_limit,
)
from voice_server.rate_limits import _headers as rate_limit_headers
from voice_server.settings import Settings

LIMITED_PREFIXES = ("/api/", "/auth/")


def policy_for(settings: Settings) -> RateLimitPolicy:
    return RateLimitPolicy(
        plan_limits_per_min={
            "starter": settings.rate_limit_starter_per_min,
            "professional": settings.rate_limit_professional_per_min,
            "enterprise": settings.rate_limit_enterprise_per_min,
        },
        anonymous_per_min=settings.rate_limit_anonymous_per_min,
        trust_forwarded_for=settings.rate_limit_trust_forwarded_for,
    )


def api_rate_limit_middleware(policy: RateLimitPolicy):
    """Middleware spending the request's budget in the app runtime's Redis (opened on startup)."""
    limiters: dict[int, RateLimiter] = {}

    @web.middleware
    async def _api_rate_limit(request: web.Request, handler: Handler) -> web.StreamResponse:
        redis = request.app[RUNTIME].redis
        if redis is None or not request.path.startswith(LIMITED_PREFIXES):
            return await handler(request)
        limiter = limiters.get(id(redis))
        if limiter is None:  # a new runtime (tests reopen one): forget the old client
            limiters.clear()
            limiter = limiters[id(redis)] = RateLimiter(redis)
        decision = await enforce_rate_limit(request, limiter, policy)
        response = await handler(request)
        if decision is not None and not response.prepared:
            response.headers.update(rate_limit_headers(decision))
        return response

    return _api_rate_limit
