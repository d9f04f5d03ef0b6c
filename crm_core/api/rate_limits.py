"""Rate limits on the HTTP API: budgets per organisation (by plan), per signed-in user, per client IP.

Budgets live in Redis (``storage.rate_limit``), so every node spends from the
same one. A request with an API token spends its organisation's budget,
sized by the plan tier (Starter 60/min, Professional 300/min, Enterprise
custom); a request from a browser session (the session cookie or the
short-lived access token it mints) spends its user's own interactive budget
(``interactive_per_min``), so an integration that spends the organisation's
budget never locks the people of that organisation out of their screens; an
anonymous request spends its client IP's.
A refusal is ``429`` with ``Retry-After`` and the API's error shape; every
response that spent a budget, served or refused, carries ``RateLimit-Limit`` /
``-Remaining`` / ``-Reset`` (seconds until the budget is whole again), so clients can pace
themselves (``add_rate_limit_headers``, a response-prepare signal).
If Redis is down the request is let through (and logged): the limiter
protects the service, it must not take it down. Password sign-in is the
exception (``crm_core.api.sign_in_limits``): it fails closed with 503.

The node configures the limits with one ``ApiRateLimits`` value passed to
``add_api_routes``: the API then spends the organisation's budget after each
authentication (``org_rate_limit_hook``, reading the plan and any custom
limit from ``organizations.settings`` through ``crm_core.orgs``, cached for a
minute), limits sign-in attempts (``crm_core.api.sign_in_limits``) and unauthenticated
requests per client IP (``anonymous_limit_middleware``).
``rate_limit_middleware`` is the same limit as an aiohttp middleware, placed
after whatever sets ``request["principal"]``, for routes outside the API
(anonymous requests are limited per client IP).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from aiohttp import web

from crm_core.orgs import RatePlan, org_rate_plan
from storage.rate_limit import (
    RateDecision,
    RateLimit,
    RateLimiter,
    RateLimitUnavailable,
    retry_after_header,
)

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
LimiterSource = Callable[[], RateLimiter | None]
PRINCIPAL_KEY = "principal"  # where the auth layer leaves the authenticated principal
# The decision a request's budget gave, for its headers (aiohttp >= 3.13 has typed request keys).
DECISION_KEY: Any = (web.RequestKey("crm_core.rate_limit_decision", RateDecision)
                     if hasattr(web, "RequestKey") else "crm_core.rate_limit_decision")
# How a principal proved itself in a browser (crm_core.auth.principal.Principal.via): these spend
# their user's interactive budget; API tokens spend the organisation's.
INTERACTIVE_VIA = frozenset({"cookie", "session"})
PLAN_LIMITS_PER_MIN = {"starter": 60, "professional": 300, "enterprise": 3000}
PLAN_CACHE_S = 60.0


@dataclass(frozen=True, slots=True)
class RateLimitPolicy:
    plan_limits_per_min: dict[str, int] = field(default_factory=lambda: dict(PLAN_LIMITS_PER_MIN))
    default_plan: str = "starter"
    anonymous_per_min: int = 60
    # Each signed-in user's browser requests, apart from the organisation's (integration) budget.
    interactive_per_min: int = 300
    # Requests without a valid credential, per client IP, API-wide (anonymous_limit_middleware).
    unauthenticated_per_min: int = 300
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
        user_id = _field(principal, "user_id")
        if org_id is not None and user_id is not None and _field(principal, "via") in INTERACTIVE_VIA:
            return f"user:{org_id}:{user_id}", RateLimit(self.interactive_per_min, 60.0)
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


@dataclass(frozen=True, slots=True)
class ApiRateLimits:
    """The API's rate limits as the node configures them (``add_api_routes(rate_limits=...)``)."""

    # The node's Redis client, called per request: None until it is open (requests then pass).
    redis: Callable[[], Any]
    policy: RateLimitPolicy = field(default_factory=RateLimitPolicy)
    sign_in_failures_per_email_per_min: int = 10
    enabled: bool = True


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
        headers={"Retry-After": retry, **rate_limit_headers(decision)},
    )


def rate_limit_headers(decision: RateDecision) -> dict[str, str]:
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
    request[DECISION_KEY] = decision
    if not decision.allowed:
        raise too_many_requests(decision, limit.period_s)
    return decision


async def add_rate_limit_headers(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: a response whose request spent a budget says what is left of it,
    whatever its status (a refusal already says so)."""
    decision = request.get(DECISION_KEY)
    if decision is not None and "RateLimit-Limit" not in response.headers:
        response.headers.update(rate_limit_headers(decision))


def limiter_source(limiter: RateLimiter | LimiterSource) -> LimiterSource:
    """A limiter, or a callable giving one (None: Redis not open yet, requests pass), as a callable."""
    return limiter if callable(limiter) and not isinstance(limiter, RateLimiter) else (lambda: limiter)


def redis_limiter(redis: Callable[[], Any], *, enabled: bool = True) -> LimiterSource:
    """A limiter on the client ``redis()`` gives now, made again when that client changes;
    None while limits are off or Redis is not open."""
    limiters: dict[int, RateLimiter] = {}

    def limiter() -> RateLimiter | None:
        if not enabled:
            return None
        client = redis()
        if client is None:
            return None
        if id(client) not in limiters:
            limiters.clear()
            limiters[id(client)] = RateLimiter(client)
        return limiters[id(client)]

    return limiter


def rate_limit_middleware(
    limiter: RateLimiter | LimiterSource,
    policy: RateLimitPolicy | None = None,
):
    """``limiter`` may be a callable, for apps whose Redis client opens on startup
    (it returning None means "not open yet": requests pass)."""
    policy = policy or RateLimitPolicy()
    source = limiter_source(limiter)

    @web.middleware
    async def _rate_limit(request: web.Request, handler: Handler) -> web.StreamResponse:
        current = source()
        decision = None if current is None else await enforce_rate_limit(request, current, policy)
        response = await handler(request)
        if decision is not None and not response.prepared:
            response.headers.update(rate_limit_headers(decision))
        return response

    return _rate_limit


# Where anonymous requests are limited: the API and the browser's sockets. Sign-in has its own
# budgets (crm_core.api.sign_in_limits); carrier webhooks prove themselves by signature.
ANONYMOUS_LIMITED_PREFIXES = ("/api/", "/auth/", "/ws/", "/feeds/")
ANONYMOUS_EXEMPT_PATHS = frozenset({"/auth/token"})
_SESSION_COOKIE = "coachline_session"  # crm_core.auth.http.SESSION_COOKIE (no import: layering)


def _carries_credentials(request: web.Request) -> bool:
    return bool(request.headers.get("Authorization") or request.cookies.get(_SESSION_COOKIE)
                or (request.method in ("GET", "HEAD")
                    and (request.query.get("access_token") or request.query.get("token"))))


def anonymous_limit_middleware(limiter: RateLimiter | LimiterSource, policy: RateLimitPolicy | None = None):
    """Unauthenticated requests spend their client IP's budget (``policy.unauthenticated_per_min``,
    key ``anon:ip:<ip>``): one that carries no credential at all spends it before its handler
    runs (429 once spent); one whose credential is refused (401) spends it after, and is
    answered 429 instead once the budget is spent. A request whose credential is good never
    spends it, so a flood from an address shared behind a proxy cannot lock signed-in users out.
    """
    policy = policy or RateLimitPolicy()
    source = limiter_source(limiter)

    def limited(request: web.Request) -> bool:
        return (request.path.startswith(ANONYMOUS_LIMITED_PREFIXES)
                and request.path not in ANONYMOUS_EXEMPT_PATHS and request.path not in policy.exempt_paths)

    async def spend(current: RateLimiter, request: web.Request) -> web.HTTPTooManyRequests | None:
        rule = RateLimit(policy.unauthenticated_per_min, 60.0)
        try:
            decision = await current.hit(f"anon:ip:{policy.client_ip(request)}", rule)
        except RateLimitUnavailable as exc:
            log.warning("anonymous rate limit not enforced: %s", exc)
            return None
        request[DECISION_KEY] = decision
        return None if decision.allowed else too_many_requests(decision, rule.period_s)

    @web.middleware
    async def _anonymous_limit(request: web.Request, handler: Handler) -> web.StreamResponse:
        current = source()
        if current is None or not limited(request):
            return await handler(request)
        if not _carries_credentials(request):
            refusal = await spend(current, request)
            if refusal is not None:
                raise refusal
            return await handler(request)
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            if exc.status == 401 and (refusal := await spend(current, request)) is not None:
                raise refusal from None
            raise
        if response.status == 401 and not response.prepared:
            refusal = await spend(current, request)
            if refusal is not None:
                raise refusal
        return response

    return _anonymous_limit


@dataclass(frozen=True, slots=True)
class OrgRateLimitPrincipal:
    """What the policy needs to know about an authenticated caller."""

    org_id: str
    plan: str | None = None
    rate_limit_per_min: int | None = None
    user_id: str | None = None
    via: str | None = None  # how it signed in: a browser session spends the user's budget


def org_rate_limit_hook(
    limiter: LimiterSource, policy: RateLimitPolicy, pool: Callable[[], asyncpg.Pool | None]
) -> Callable[[web.Request, Any], Awaitable[None]]:
    """``after_authenticate(request, principal)`` for the CRM API: spend the organisation's budget
    (API tokens) or the user's interactive one (browser sessions)."""
    plans: dict[str, tuple[float, RatePlan]] = {}

    async def org_plan(org_id: str) -> RatePlan:
        cached = plans.get(org_id)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        plan = RatePlan()
        current_pool = pool()
        if current_pool is not None:
            try:
                plan = await org_rate_plan(current_pool, org_id)
            except Exception as exc:  # noqa: BLE001 - no plan known: the default plan applies
                log.warning("rate limit: cannot read the plan of %s: %s", org_id, exc)
        if len(plans) > 10_000:
            plans.clear()
        plans[org_id] = (time.monotonic() + PLAN_CACHE_S, plan)
        return plan

    async def hook(request: web.Request, principal: Any) -> None:
        current = limiter()
        org_id = _field(principal, "org_id")
        if current is None or org_id is None:
            return
        via, user_id = _field(principal, "via"), _field(principal, "user_id")
        if via in INTERACTIVE_VIA and user_id is not None:
            await enforce_rate_limit(request, current, policy, OrgRateLimitPrincipal(
                str(org_id), user_id=str(user_id), via=str(via)))
            return
        plan = await org_plan(str(org_id))
        await enforce_rate_limit(request, current, policy, OrgRateLimitPrincipal(
            str(org_id), plan.plan, plan.rate_limit_per_min))

    return hook
