import asyncio
import uuid

import pytest
import redis.asyncio as aioredis

from storage.rate_limit import RateLimit, RateLimiter, RateLimitUnavailable, retry_after_header


async def test_two_limiters_on_separate_connections_share_one_budget(redis_url):
    clients = [aioredis.from_url(redis_url) for _ in range(2)]
    a, b = (RateLimiter(c) for c in clients)
    key, rule = f"org:{uuid.uuid4()}", RateLimit(10, 60.0)
    try:
        results = [await (a if i % 2 else b).hit(key, rule) for i in range(10)]
        assert all(r.allowed for r in results)
        assert [r.remaining for r in results] == list(range(9, -1, -1))
        refused_a, refused_b = await a.hit(key, rule), await b.hit(key, rule)
        assert not refused_a.allowed and not refused_b.allowed
        # One request is freed every period/limit = 6 s.
        assert 0 < refused_a.retry_after_s <= 6.0
        assert retry_after_header(refused_a) in {"1", "2", "3", "4", "5", "6"}
        # Another key has its own budget.
        assert (await b.hit(f"org:{uuid.uuid4()}", rule)).allowed
    finally:
        for c in clients:
            await c.aclose()


async def test_concurrent_hits_from_two_nodes_never_overspend(redis_url):
    clients = [aioredis.from_url(redis_url) for _ in range(2)]
    limiters = [RateLimiter(c) for c in clients]
    key, rule = f"ip:{uuid.uuid4()}", RateLimit(25, 60.0)
    try:
        decisions = await asyncio.gather(*(limiters[i % 2].hit(key, rule) for i in range(60)))
        assert sum(d.allowed for d in decisions) == 25
    finally:
        for c in clients:
            await c.aclose()


async def test_budget_refills_after_retry_after(redis_url):
    client = aioredis.from_url(redis_url)
    limiter = RateLimiter(client)
    key, rule = f"k:{uuid.uuid4()}", RateLimit(2, 0.4)
    try:
        assert (await limiter.hit(key, rule)).allowed
        assert (await limiter.hit(key, rule)).allowed
        refused = await limiter.hit(key, rule)
        assert not refused.allowed
        await asyncio.sleep(refused.retry_after_s + 0.05)
        assert (await limiter.hit(key, rule)).allowed
        await limiter.reset(key)
        assert (await limiter.hit(key, rule)).remaining == 1
    finally:
        await client.aclose()


async def test_bad_rules_and_a_dead_redis_are_clear_errors():
    with pytest.raises(ValueError):
        RateLimit(0)
    client = aioredis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    try:
        with pytest.raises(RateLimitUnavailable):
            await RateLimiter(client).hit("x", RateLimit(5))
    finally:
        await client.aclose()


async def test_peek_tells_what_hit_would_do_and_spends_nothing(redis_url):
    client = aioredis.from_url(redis_url)
    limiter = RateLimiter(client)
    key, rule = f"signin:{uuid.uuid4()}", RateLimit(2, 60.0)
    try:
        for _ in range(5):
            looked = await limiter.peek(key, rule)
            assert looked.allowed and looked.remaining == 2
        assert (await limiter.hit(key, rule)).allowed
        assert (await limiter.peek(key, rule)).remaining == 1
        assert (await limiter.hit(key, rule)).allowed
        refused = await limiter.peek(key, rule)
        assert not refused.allowed and refused.remaining == 0 and 0 < refused.retry_after_s <= 30.0
    finally:
        await client.aclose()


async def test_hit_all_spends_every_budget_or_none_even_when_concurrent(redis_url):
    client = aioredis.from_url(redis_url)
    limiter = RateLimiter(client)
    shared, other = f"acct:{uuid.uuid4()}", f"ip:{uuid.uuid4()}"
    small, large = RateLimit(5, 60.0), RateLimit(1000, 60.0)
    try:
        decisions = await asyncio.gather(*(limiter.hit_all([(other, large), (shared, small)]) for _ in range(40)))
        allowed = [all(d.allowed for d in pair) for pair in decisions]
        assert sum(allowed) == 5
        # a refused step spent nothing: the large budget paid only for the 5 admitted
        assert (await limiter.peek(other, large)).remaining == 1000 - 5
        refused = next(pair for pair, ok in zip(decisions, allowed, strict=True) if not ok)
        assert refused[0].allowed and not refused[1].allowed and refused[1].retry_after_s > 0
        # a refund gives the units back, never more than the budget holds
        await limiter.refund([(other, large), (shared, small)])
        assert (await limiter.peek(shared, small)).allowed
        for _ in range(10):
            await limiter.refund([(shared, small)])
        assert [(await limiter.hit(shared, small)).allowed for _ in range(6)] == [True] * 5 + [False]
    finally:
        await client.aclose()
