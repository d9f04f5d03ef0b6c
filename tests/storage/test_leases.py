import asyncio
import uuid

import redis.asyncio as aioredis

from storage.leases import Lease, run_singleton


async def test_only_one_holder_and_only_the_holder_may_release(redis_url):
    client = aioredis.from_url(redis_url)
    name = f"t-{uuid.uuid4().hex}"
    a, b = Lease(client, name, ttl_s=5), Lease(client, name, ttl_s=5)
    assert await a.acquire()
    assert not await b.acquire()
    await b.release()  # b never held it: nothing happens
    assert not await b.acquire()
    assert await a.renew()
    await a.release()
    assert await b.acquire()
    await b.release()
    await client.aclose()


async def test_an_abandoned_lease_expires_and_is_taken_over(redis_url):
    client = aioredis.from_url(redis_url)
    name = f"t-{uuid.uuid4().hex}"
    dead = Lease(client, name, ttl_s=0.3)
    assert await dead.acquire()  # holder "crashes" without releasing
    other = Lease(client, name, ttl_s=5)
    assert not await other.acquire()
    await asyncio.sleep(0.5)
    assert await other.acquire()
    assert not await dead.renew()
    await other.release()
    await client.aclose()


async def test_singleton_job_runs_on_one_node_at_a_time(redis_url):
    clients = [aioredis.from_url(redis_url) for _ in range(3)]
    name = f"job-{uuid.uuid4().hex}"
    running = 0
    max_running = 0
    runs = 0

    async def job():
        nonlocal running, max_running, runs
        running += 1
        max_running = max(max_running, running)
        runs += 1
        await asyncio.sleep(0.02)
        running -= 1

    stop = asyncio.Event()
    loops = [asyncio.create_task(run_singleton(c, name, job, every_s=0.05, ttl_s=2, stop=stop))
             for c in clients]
    await asyncio.sleep(1.0)
    stop.set()
    await asyncio.gather(*loops)
    assert runs >= 5
    assert max_running == 1
    for c in clients:
        await c.aclose()
