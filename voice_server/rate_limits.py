"""Rate limits on the HTTP API: one shared budget per organisation (by plan) or per client IP.

Budgets live in Redis (``storage.rate_limit``), so every node spends from the
same one. A request from an authenticated principal spends its
organisation's budget, sized by the plan tier (Starter 60/min, Professional
300/min, Enterprise custom); an anonymous request spends its client IP's.
A refusal is ``429`` with ``Retry-After`` and the API's error shape; every
limited response carries ``RateLimit-Limit`` / ``-Remaining`` / ``-Reset``.
If Redis is down the request is let through (and logged): the limiter
protects the service, it must not take it down.

Wiring: the CRM API authenticates inside its handlers and calls
``api_rate_limit_hook(app)`` after each authentication (its
``after_authenticate``); the organisation's plan and any custom limit are read
from ``organizations.settings`` (``plan``, ``rate_limit_per_min``) and cached
for a minute. ``rate_limit_middleware`` is the same limit as an aiohttp
middleware, placed after whatever sets ``request["principal"]``, for routes
outside the API (anonymous requests are limited per client IP).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from crm_core.api.endpoint import read_limited
from storage.rate_limit import (
    RateDecision,
    RateLimit,
    RateLimiter,
    RateLimitUnavailable,
    retry_after_header,
)
from voice_server.app_keys import RUNTIME, SETTINGS

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PRINCIPAL_KEY = "principal"  # where the auth layer leaves the authenticated principal
PLAN_LIMITS_PER_MIN = {"starter": 60, "professional": 300, "enterprise": 3000}


@dataclass(frozen=True, slots=True)
class RateLimitPolicy:
    plan_limits_per_min: dict[str, int] = field(default_factory=lambda: dict(PLAN_LIMITS_PER_MIN))
    default_plan: str = "starter"
    anonymous_per_min: int = 60
    # Only behind a proxy you run: otherwise clients could pick their own bucket.
    trust_forwarded_for: bool = False
    exempt_paths: frozenset[str] = frozenset({"/live", "/ready", "/metrics"})

    def rule_for(self, request: web.Request, principal: Any = None) -> tuple[str, RateLimit] | None:
        """The bucket and its rule for ``request``; None means "not limited"."""
        if request.path in self.exempt_paths:
            return None
        if principal is None:
            principal = request.get(PRINCIPAL_KEY)
        org_id = _field(principal, "org_id")
        if org_id is not None:
            custom = _field(principal, "rate_limit_per_min")
            if isinstance(custom, int) and custom > 0:
                per_min = custom
            else:
                plan = str(_field(principal, "plan") or self.default_plan).lower()
                per_min = self.plan_limits_per_min.get(plan, self.plan_limits_per_min[self.default_plan])
            return f"org:{org_id}", RateLimit(per_min, 60.0)
        return f"ip:{self.client_ip(request)}", RateLimit(self.anonymous_per_min, 60.0)

    def client_ip(self, request: web.Request) -> str:
        if self.trust_forwarded_for:
            forwarded = request.headers.get("X-Forwarded-For", "")
            first = forwarded.split(",")[0].strip()
            if first:
                return first
        return request.remote or "unknown"


def _field(principal: Any, name: str) -> Any:
    if principal is None:
        return None
    if isinstance(principal, dict):
        return principal.get(name)
    return getattr(principal, name, None)


def too_many_requests(decision: RateDecision, period_s: float) -> web.HTTPTooManyRequests:
    retry = retry_after_header(decision)
    return web.HTTPTooManyRequests(
        text=json.dumps({"error": {
            "code": "rate_limited",
            "message": f"rate limit of {decision.limit} requests per {period_s:g} s exceeded; "
                       f"retry after {retry} s",
            "details": {"limit": decision.limit, "period_s": period_s,
                        "retry_after_s": round(decision.retry_after_s, 3)},
        }}),
        content_type="application/json",
        headers={"Retry-After": retry, **_headers(decision)},
    )


def _headers(decision: RateDecision) -> dict[str, str]:
    return {
        "RateLimit-Limit": str(decision.limit),
        "RateLimit-Remaining": str(decision.remaining),
        "RateLimit-Reset": str(max(0, round(decision.reset_after_s))),
    }


async def enforce_rate_limit(
    request: web.Request, limiter: RateLimiter, policy: RateLimitPolicy, principal: Any = None
) -> RateDecision | None:
    """Spend one unit of the request's budget; raise 429 when it is spent. None: not limited."""
    rule = policy.rule_for(request, principal)
    if rule is None:
        return None
    key, limit = rule
    try:
        decision = await limiter.hit(key, limit)
    except RateLimitUnavailable as exc:
        log.warning("rate limit not enforced for %s: %s", key, exc)
        return None
    if not decision.allowed:
        raise too_many_requests(decision, limit.period_s)
    return decision


def policy_from_settings(settings: Any) -> RateLimitPolicy:
    return RateLimitPolicy(
        plan_limits_per_min={
            "starter": settings.rate_limit_starter_per_min,
            "professional": settings.rate_limit_professional_per_min,
            "enterprise": settings.rate_limit_enterprise_per_min,
        },
        anonymous_per_min=settings.rate_limit_anonymous_per_min,
        trust_forwarded_for=settings.rate_limit_trust_forwarded_for,
    )


def _limiter_source(limiter: RateLimiter | Callable[[], RateLimiter | None]) -> Callable[[], RateLimiter | None]:
    """A limiter, or a callable giving one (None: Redis not open yet, requests pass), as a callable."""
    return limiter if callable(limiter) and not isinstance(limiter, RateLimiter) else (lambda: limiter)


def rate_limit_middleware(
    limiter: RateLimiter | Callable[[], RateLimiter | None],
    policy: RateLimitPolicy | None = None,
):
    """``limiter`` may be a callable, for apps whose Redis client opens on startup
    (it returning None means "not open yet": requests pass)."""
    policy = policy or RateLimitPolicy()
    source = _limiter_source(limiter)

    @web.middleware
    async def _rate_limit(request: web.Request, handler: Handler) -> web.StreamResponse:
        current = source()
        decision = None if current is None else await enforce_rate_limit(request, current, policy)
        response = await handler(request)
        if decision is not None and not response.prepared:
            response.headers.update(_headers(decision))
        return response

    return _rate_limit


SIGN_IN_PATH = "/auth/token"


def sign_in_limit_middleware(
    limiter: RateLimiter | Callable[[], RateLimiter | None],
    policy: RateLimitPolicy | None = None,
    *,
    failures_per_email_per_min: int = 10,
):
    """Failed sign-ins (``POST /auth/token`` answered 401) spend two budgets: the client IP's
    (``policy.anonymous_per_min``: guessing across many accounts) and the e-mail address's
    (``failures_per_email_per_min``: guessing one account from many addresses). While either is
    spent, sign-in attempts get 429 before any password is checked, so a guess cannot succeed.

    Only sign-ins are refused, never other requests from the IP: behind a proxy every client may
    share one address, and a flood of bad guesses must not lock signed-in users out. Bearer
    tokens need no such budget: they are random 256-bit secrets, not guessable.
    """
    policy = policy or RateLimitPolicy()
    source = _limiter_source(limiter)
    per_ip = RateLimit(policy.anonymous_per_min, 60.0)
    per_email = RateLimit(failures_per_email_per_min, 60.0)

    @web.middleware
    async def _sign_in_limit(request: web.Request, handler: Handler) -> web.StreamResponse:
        current = source()
        if current is None or request.method != "POST" or request.path != SIGN_IN_PATH:
            return await handler(request)
        budgets = [(f"signin:ip:{policy.client_ip(request)}", per_ip)]
        email = await _sign_in_email(request)
        if email:
            budgets.append((f"signin:email:{email}", per_email))
        try:
            for key, rule in budgets:
                decision = await current.peek(key, rule)
                if not decision.allowed:
                    log.warning("sign-in refused: %s spent its failed sign-ins", key)
                    raise too_many_requests(decision, rule.period_s)
        except RateLimitUnavailable as exc:
            log.warning("sign-in limit not enforced: %s", exc)
            return await handler(request)
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            if exc.status == 401:
                await _charge(current, budgets)
            raise
        if response.status == 401:
            await _charge(current, budgets)
        return response

    return _sign_in_limit


_SIGN_IN_BODY_LIMIT = 64 * 1024


async def _sign_in_email(request: web.Request) -> str | None:
    """The e-mail a sign-in names, lower-cased; None for a cookie refresh or a body we cannot
    read (the handler answers those: ``read_limited`` keeps the body for it)."""
    length = request.content_length
    if not length or length > _SIGN_IN_BODY_LIMIT:
        return None  # no body, or one the handler will refuse; an unsized body is not read here
    try:
        body = json.loads(await read_limited(request, _SIGN_IN_BODY_LIMIT))
    except (ValueError, UnicodeDecodeError):
        return None
    email = body.get("email") if isinstance(body, dict) else None
    return email.strip().lower()[:320] if isinstance(email, str) and email.strip() else None


async def _charge(limiter: RateLimiter, budgets: list[tuple[str, RateLimit]]) -> None:
    for key, rule in budgets:
        try:
            await limiter.hit(key, rule)
        except RateLimitUnavailable as exc:
            log.warning("failed sign-in not counted for %s: %s", key, exc)


def api_sign_in_limit_middleware(app: web.Application):
    """``sign_in_limit_middleware`` reading ``app``'s settings and its runtime's Redis."""
    settings = app[SETTINGS]
    return sign_in_limit_middleware(
        _runtime_limiter(app), policy_from_settings(settings),
        failures_per_email_per_min=settings.rate_limit_sign_in_failures_per_email_per_min,
    )


PLAN_CACHE_S = 60.0


@dataclass(frozen=True, slots=True)
class OrgRateLimitPrincipal:
    """What the policy needs to know about an authenticated caller."""

    org_id: str
    plan: str | None = None
    rate_limit_per_min: int | None = None


def _runtime_limiter(app: web.Application) -> Callable[[], RateLimiter | None]:
    settings = app[SETTINGS]
    limiters: dict[int, RateLimiter] = {}

    def limiter() -> RateLimiter | None:
        if not settings.rate_limit_enabled:
            return None
        redis = app[RUNTIME].redis
        if redis is None:
            return None
        if id(redis) not in limiters:
            limiters.clear()
            limiters[id(redis)] = RateLimiter(redis)
        return limiters[id(redis)]

    return limiter


def api_rate_limit_middleware(app: web.Application):
    """``rate_limit_middleware`` reading ``app``'s settings and its runtime's Redis."""
    return rate_limit_middleware(_runtime_limiter(app), policy_from_settings(app[SETTINGS]))


def api_rate_limit_hook(app: web.Application) -> Callable[[web.Request, Any], Awaitable[None]]:
    """``after_authenticate(request, principal)`` for the CRM API: spend the organisation's budget."""
    policy = policy_from_settings(app[SETTINGS])
    limiter = _runtime_limiter(app)
    plans: dict[str, tuple[float, str | None, int | None]] = {}

    async def org_plan(org_id: str) -> tuple[str | None, int | None]:
        cached = plans.get(org_id)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1], cached[2]
        plan, custom = None, None
        pool = app[RUNTIME].pool
        if pool is not None:
            try:
                settings = await pool.fetchval("SELECT settings FROM organizations WHERE id = $1", org_id)
            except Exception as exc:  # noqa: BLE001 - no plan known: the default plan applies
                log.warning("rate limit: cannot read the plan of %s: %s", org_id, exc)
                settings = None
            if isinstance(settings, dict):
                plan = settings.get("plan") if isinstance(settings.get("plan"), str) else None
                raw = settings.get("rate_limit_per_min")
                custom = raw if isinstance(raw, int) and not isinstance(raw, bool) and raw > 0 else None
        if len(plans) > 10_000:
            plans.clear()
        plans[org_id] = (time.monotonic() + PLAN_CACHE_S, plan, custom)
        return plan, custom

    async def hook(request: web.Request, principal: Any) -> None:
        current = limiter()
        org_id = _field(principal, "org_id")
        if current is None or org_id is None:
            return
        plan, custom = await org_plan(str(org_id))
        await enforce_rate_limit(request, current, policy, OrgRateLimitPrincipal(str(org_id), plan, custom))

    return hook
