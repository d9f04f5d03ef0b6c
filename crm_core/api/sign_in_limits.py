"""Limits on sign-in attempts (``POST /auth/token``), so password guessing stays slow.

Every password attempt spends, before its password is checked, one unit of its client
address's budget (``policy.anonymous_per_min``: guessing across many accounts) and one of
each account it names (``per_account_per_min``: one account guessed at from many addresses).
Both are spent in one atomic Redis step that also decides (``RateLimiter.hit_all``), so
concurrent attempts cannot all pass a check made before any of them is counted. While either
budget is spent the attempt gets 429 in the API's error shape and no password is checked, so a
guess cannot succeed then, not even the right one.

The account is the one the sign-in lookup itself found (``crm_core.auth.accounts``): the
users row's id, so every spelling of an address that reaches an account (case, blanks, any
form the database's ``lower()`` folds) spends that account's one budget; an address naming no
account is keyed by the lookup's own ``lower()`` of it. The handler parses the body once and
the limit is charged from that parse, so no framing (chunked, compressed, duplicate keys,
another charset) can show the limiter one account and the password check another.

A right password gives its units back: a user signing in from many tabs or devices is never
locked out by their own successes, and an attacker gains nothing since a refund needs the
password. Redis down: password sign-in fails closed, unlike the API's other limits: the attempt
gets 503 with ``Retry-After`` (logged) and no password is checked, since a limit that lapses
whenever Redis does would let an outage (or whoever can cause one) guess passwords unbounded.
Signed-in traffic keeps flowing meanwhile, and so does refreshing a browser session from its
cookie (no password to guess). No limiter at all (limits disabled, or no Redis configured)
means no limit, as before.

Only sign-ins are refused, never other requests from the address: behind a proxy every
client may share one address, and a flood of bad guesses must not lock signed-in users out.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from aiohttp import web

from crm_core.api.rate_limits import LimiterSource, RateLimitPolicy, too_many_requests
from crm_core.api_errors import ServiceUnavailable
from storage.rate_limit import RateLimit, RateLimiter, RateLimitUnavailable

log = logging.getLogger(__name__)

SIGN_IN_PATH = "/auth/token"


@dataclass(slots=True)
class SignInCharge:
    """The units one attempt spent; ``refund`` gives them back after a right password."""

    limiter: RateLimiter | None = None
    budgets: list[tuple[str, RateLimit]] = field(default_factory=list)

    async def refund(self) -> None:
        if self.limiter is None or not self.budgets:
            return
        try:
            await self.limiter.refund(self.budgets)
        except RateLimitUnavailable as exc:
            log.warning("sign-in budget not refunded: %s", exc)
        self.budgets = []


@dataclass(frozen=True, slots=True)
class SignInLimits:
    limiter: LimiterSource
    policy: RateLimitPolicy = field(default_factory=RateLimitPolicy)
    per_account_per_min: int = 10

    async def charge(self, request: web.Request, account_keys: list[str]) -> SignInCharge:
        """Spend one attempt of the client address and of every account in ``account_keys``
        (all or none), or raise 429 when any of them is spent, 503 when Redis cannot count it."""
        current = self.limiter()
        if current is None:
            return SignInCharge()
        per_ip = RateLimit(self.policy.anonymous_per_min, 60.0)
        per_account = RateLimit(self.per_account_per_min, 60.0)
        budgets = [(f"signin:ip:{self.policy.client_ip(request)}", per_ip)]
        budgets += [(f"signin:account:{key}", per_account) for key in dict.fromkeys(account_keys)]
        try:
            decisions = await current.hit_all(budgets)
        except RateLimitUnavailable as exc:
            log.warning("sign-in refused: the attempt limit cannot be counted (%s)", exc)
            raise ServiceUnavailable("sign-in is unavailable for now; try again") from None
        refused = [
            (d, key, rule)
            for d, (key, rule) in zip(decisions, budgets, strict=True)
            if not d.allowed
        ]
        if refused:
            decision, key, rule = max(refused, key=lambda r: r[0].retry_after_s)
            log.warning("sign-in refused: %s spent its sign-in attempts", key.split(":")[1])
            raise too_many_requests(decision, rule.period_s)
        return SignInCharge(current, budgets)


SIGN_IN_LIMITS = web.AppKey("crm_sign_in_limits", SignInLimits)
