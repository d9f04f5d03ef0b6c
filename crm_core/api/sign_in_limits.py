"""Limits on failed sign-ins (``POST /auth/token``), so password guessing stays slow.

Failed sign-ins spend per-IP and per-e-mail budgets in Redis (the API's
``RateLimitPolicy`` gives the per-IP size); while either is spent, sign-in
attempts get 429 in the API's error shape before any password is checked.
"""

from __future__ import annotations

import logging

from aiohttp import web

from crm_core.api.endpoint import read_limited
from crm_core.api.rate_limits import (
    Handler,
    LimiterSource,
    RateLimitPolicy,
    limiter_source,
    too_many_requests,
)
from crm_core.json_input import JsonInputError, parse_json
from storage.rate_limit import RateLimit, RateLimiter, RateLimitUnavailable

log = logging.getLogger(__name__)

SIGN_IN_PATH = "/auth/token"
_SIGN_IN_BODY_LIMIT = 64 * 1024


def sign_in_limit_middleware(
    limiter: RateLimiter | LimiterSource,
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
    source = limiter_source(limiter)
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


async def _sign_in_email(request: web.Request) -> str | None:
    """The e-mail a sign-in names, lower-cased; None for a cookie refresh or a body we cannot
    read (the handler answers those: ``read_limited`` keeps the body for it)."""
    length = request.content_length
    if not length or length > _SIGN_IN_BODY_LIMIT:
        return None  # no body, or one the handler will refuse; an unsized body is not read here
    try:
        body = parse_json(await read_limited(request, _SIGN_IN_BODY_LIMIT))
    except JsonInputError:
        return None
    email = body.get("email") if isinstance(body, dict) else None
    return email.strip().lower()[:320] if isinstance(email, str) and email.strip() else None


async def _charge(limiter: RateLimiter, budgets: list[tuple[str, RateLimit]]) -> None:
    for key, rule in budgets:
        try:
            await limiter.hit(key, rule)
        except RateLimitUnavailable as exc:
            log.warning("failed sign-in not counted for %s: %s", key, exc)
