"""The node's settings for the CRM API's rate limits (``crm_core.api.rate_limits``).

``api_rate_limits(settings, redis)`` turns the ``COACHLINE_RATE_LIMIT_*``
settings and the runtime's Redis client into the ``ApiRateLimits`` value
``create_app`` passes to ``add_api_routes``. ``api_rate_limit_middleware(app)``
puts the same limits on an app's other routes, as an aiohttp middleware.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from crm_core.api.rate_limits import (
    ApiRateLimits,
    RateLimitPolicy,
    rate_limit_middleware,
    redis_limiter,
)
from voice_server.app_keys import RUNTIME, SETTINGS
from voice_server.settings import Settings

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def api_rate_limits(settings: Settings, redis: Callable[[], Any]) -> ApiRateLimits:
    """The API's limits from the node's settings; ``redis`` gives the runtime's client (or None)."""
    return ApiRateLimits(
        redis=redis,
        policy=RateLimitPolicy(
            plan_limits_per_min={
                "starter": settings.rate_limit_starter_per_min,
                "professional": settings.rate_limit_professional_per_min,
                "enterprise": settings.rate_limit_enterprise_per_min,
            },
            anonymous_per_min=settings.rate_limit_anonymous_per_min,
            interactive_per_min=settings.rate_limit_interactive_per_min,
            unauthenticated_per_min=settings.rate_limit_unauthenticated_per_min,
            trust_forwarded_for=settings.rate_limit_trust_forwarded_for,
        ),
        sign_in_failures_per_email_per_min=settings.rate_limit_sign_in_failures_per_email_per_min,
        enabled=settings.rate_limit_enabled,
    )


def api_rate_limit_middleware(app: web.Application):
    """``rate_limit_middleware`` with ``app``'s settings and its runtime's Redis."""
    limits = api_rate_limits(app[SETTINGS], lambda: app[RUNTIME].redis)
    return rate_limit_middleware(redis_limiter(limits.redis, enabled=limits.enabled), limits.policy)
