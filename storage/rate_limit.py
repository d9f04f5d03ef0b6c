"""A global rate limiter in Redis: one budget per key, shared by every node.

The algorithm is GCRA (the generic cell rate algorithm, as in leaky-bucket
"as a meter"): per key Redis stores one number, the theoretical arrival time
(TAT) of the next request. A rule of ``limit`` requests per ``period_s``
spaces requests ``period_s / limit`` apart and tolerates a burst of
``limit``. The check-and-update runs as one Lua script, so two nodes hitting
the same key at once cannot both spend the last unit, and it reads the clock
from Redis (``TIME``), so nodes with skewed clocks still agree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from storage.errors import StorageError

# KEYS[1]: the key; ARGV: interval_us (period / limit), period_us, cost.
# Returns {allowed (0|1), remaining, retry_after_us, reset_after_us}.
_GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local new_tat = tat + interval * cost
local over = (new_tat - now) - period
if over > 0 then
    local remaining = math.floor((period - (tat - now)) / interval)
    if remaining < 0 then remaining = 0 end
    return {0, remaining, over, tat - now}
end
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1)
return {1, math.floor(-over / interval), 0, new_tat - now}
"""

# The same arithmetic without spending: would a request of ARGV[3] units be allowed now?
_GCRA_PEEK = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local over = (tat + interval * cost - now) - period
local remaining = math.floor((period - (tat - now)) / interval)
if remaining < 0 then remaining = 0 end
if over > 0 then return {0, remaining, over, tat - now} end
return {1, remaining, 0, tat - now}
"""


# Several budgets as one all-or-nothing step: each key is checked and, only when every one of them
# allows its cost, all are spent. KEYS: the keys; ARGV: interval_us, period_us, cost per key.
# Returns {allowed (0|1), then per key: allowed, remaining, retry_after_us, reset_after_us}.
_GCRA_ALL = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local out = {1}
local news = {}
for i = 1, #KEYS do
    local interval = tonumber(ARGV[3 * i - 2])
    local period = tonumber(ARGV[3 * i - 1])
    local cost = tonumber(ARGV[3 * i])
    local tat = tonumber(redis.call('GET', KEYS[i]) or '0')
    if tat < now then tat = now end
    local new_tat = tat + interval * cost
    local over = (new_tat - now) - period
    news[i] = new_tat
    if over > 0 then
        out[1] = 0
        local remaining = math.floor((period - (tat - now)) / interval)
        if remaining < 0 then remaining = 0 end
        table.insert(out, 0); table.insert(out, remaining)
        table.insert(out, over); table.insert(out, tat - now)
    else
        table.insert(out, 1); table.insert(out, math.floor(-over / interval))
        table.insert(out, 0); table.insert(out, new_tat - now)
    end
end
if out[1] == 1 then
    for i = 1, #KEYS do
        redis.call('SET', KEYS[i], string.format('%d', news[i]), 'PX',
                   math.ceil((news[i] - now) / 1000) + 1)
    end
end
return out
"""

# Give back what _GCRA_ALL spent (never more than the budget holds). ARGV as for _GCRA_ALL.
_GCRA_REFUND = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
for i = 1, #KEYS do
    local tat = tonumber(redis.call('GET', KEYS[i]) or '0')
    local new_tat = tat - tonumber(ARGV[3 * i - 2]) * tonumber(ARGV[3 * i])
    if new_tat <= now then
        redis.call('DEL', KEYS[i])
    else
        redis.call('SET', KEYS[i], string.format('%d', new_tat), 'PX',
                   math.ceil((new_tat - now) / 1000) + 1)
    end
end
return 1
"""


class RateLimitUnavailable(StorageError):
    """Redis did not answer; the caller decides whether to fail open or closed."""


@dataclass(frozen=True, slots=True)
class RateLimit:
    limit: int  # requests allowed per period (and the largest burst)
    period_s: float = 60.0

    def __post_init__(self) -> None:
        if self.limit < 1 or self.period_s <= 0:
            raise ValueError(f"a rate limit needs limit >= 1 and period_s > 0, got {self}")


@dataclass(frozen=True, slots=True)
class RateDecision:
    allowed: bool
    limit: int
    remaining: int  # requests still allowed right now
    retry_after_s: float  # 0 when allowed; else wait this long before the next try
    reset_after_s: float  # until the budget is full again


class RateLimiter:
    """Shared budgets keyed by any string (an organisation, a token, an IP)."""

    def __init__(self, client: aioredis.Redis, *, prefix: str = "coachline:rl:") -> None:
        self._client = client
        self._prefix = prefix
        self._script = client.register_script(_GCRA)
        self._peek = client.register_script(_GCRA_PEEK)
        self._all = client.register_script(_GCRA_ALL)
        self._refund = client.register_script(_GCRA_REFUND)

    async def hit(self, key: str, rule: RateLimit, cost: int = 1) -> RateDecision:
        """Spend ``cost`` units of ``key``'s budget if it has them."""
        return await self._run(self._script, key, rule, cost)

    async def peek(self, key: str, rule: RateLimit, cost: int = 1) -> RateDecision:
        """Whether ``hit`` would allow ``cost`` units now, spending nothing. Not a guard: between
        a peek and a later hit, concurrent requests all see the same budget (use ``hit_all``)."""
        return await self._run(self._peek, key, rule, cost)

    async def hit_all(
        self, budgets: list[tuple[str, RateLimit]], cost: int = 1
    ) -> list[RateDecision]:
        """Spend ``cost`` units of every budget, or of none: one atomic step that both decides
        and counts, so concurrent callers can never spend more than a budget holds. Each
        decision says whether its own budget had the units; nothing was spent unless all did."""
        if not budgets:
            return []
        args: list[int] = []
        for _, rule in budgets:
            args.extend(_script_args(rule, cost))
        try:
            out = await self._all(keys=[self._prefix + key for key, _ in budgets], args=args)
        except RedisError as exc:
            raise RateLimitUnavailable(f"rate limiter unavailable: {exc}") from exc
        return [_decision(rule, *out[1 + 4 * i : 5 + 4 * i]) for i, (_, rule) in enumerate(budgets)]

    async def refund(self, budgets: list[tuple[str, RateLimit]], cost: int = 1) -> None:
        """Give back ``cost`` units that ``hit_all`` spent (a budget never grows past full)."""
        if not budgets:
            return
        args: list[int] = []
        for _, rule in budgets:
            args.extend(_script_args(rule, cost))
        try:
            await self._refund(keys=[self._prefix + key for key, _ in budgets], args=args)
        except RedisError as exc:
            raise RateLimitUnavailable(f"rate limiter unavailable: {exc}") from exc

    async def _run(self, script, key: str, rule: RateLimit, cost: int) -> RateDecision:
        interval_us, period_us, cost = _script_args(rule, cost)
        try:
            allowed, remaining, retry_us, reset_us = await script(
                keys=[self._prefix + key], args=[interval_us, period_us, cost]
            )
        except RedisError as exc:
            raise RateLimitUnavailable(f"rate limiter unavailable: {exc}") from exc
        return _decision(rule, allowed, remaining, retry_us, reset_us)

    async def reset(self, key: str) -> None:
        try:
            await self._client.delete(self._prefix + key)
        except RedisError as exc:
            raise RateLimitUnavailable(f"rate limiter unavailable: {exc}") from exc


def _script_args(rule: RateLimit, cost: int) -> tuple[int, int, int]:
    if cost < 1 or cost > rule.limit:
        raise ValueError(f"cost must be between 1 and the limit {rule.limit}, got {cost}")
    period_us = int(rule.period_s * 1_000_000)
    return max(1, period_us // rule.limit), period_us, cost


def _decision(rule: RateLimit, allowed, remaining, retry_us, reset_us) -> RateDecision:
    return RateDecision(
        allowed=bool(allowed),
        limit=rule.limit,
        remaining=int(remaining),
        retry_after_s=int(retry_us) / 1_000_000,
        reset_after_s=int(reset_us) / 1_000_000,
    )


def retry_after_header(decision: RateDecision) -> str:
    """Whole seconds for ``Retry-After``, rounded up and never 0 for a refusal."""
    return str(max(1, math.ceil(decision.retry_after_s)))
