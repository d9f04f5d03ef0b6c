"""One behaviour suite, run against both event bus implementations."""

import asyncio
import uuid

import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from storage.event_bus_memory import InProcessEventBus
from storage.event_bus_redis import RedisEventBus
from storage.events import Event


class _Buses:
    """Makes buses that share one backend, like nodes sharing one Redis."""

    def __init__(self, kind: str, redis_url: str) -> None:
        self.kind = kind
        self.redis_url = redis_url
        self.stream = f"test:{uuid.uuid4().hex}"
        self._memory = InProcessEventBus()
        self._clients: list[aioredis.Redis] = []

    def new(self):
        if self.kind == "memory":
            return self._memory
        client = aioredis.from_url(self.redis_url)
        self._clients.append(client)
        return RedisEventBus(client, stream=self.stream)

    async def close(self) -> None:
        for client in self._clients:
            await client.aclose()


@pytest_asyncio.fixture(params=["memory", "redis"], loop_scope="session")
async def buses(request, redis_url):
    made = _Buses(request.param, redis_url)
    yield made
    await made.close()


async def _take(sub, n: int, timeout: float = 5.0):
    out = []

    async def collect():
        async for delivery in sub:
            out.append(delivery)
            if len(out) == n:
                return

    await asyncio.wait_for(collect(), timeout)
    return out


async def _nothing_more(sub, wait: float = 0.3) -> bool:
    try:
        await asyncio.wait_for(sub.__anext__(), wait)
    except asyncio.TimeoutError:
        return True
    return False


async def test_fanout_subscriber_sees_matching_events_published_after_it_subscribed(buses):
    bus = buses.new()
    await bus.publish(Event("transcript.final", {"n": 0}))
    async with await bus.subscribe("transcript.*") as sub:
        await bus.publish(Event("transcript.partial", {"n": 1}, org_id="o1"))
        await bus.publish(Event("call.ended", {"n": 2}))
        await bus.publish(Event("transcript.final", {"n": 3}))
        got = await _take(sub, 2)
        assert [d.event.payload["n"] for d in got] == [1, 3]
        assert got[0].event.org_id == "o1"
        assert await _nothing_more(sub)


async def test_every_fanout_subscriber_on_every_node_gets_each_event_with_its_id(buses):
    node_a, node_b = buses.new(), buses.new()
    sub_a = await node_a.subscribe("*")
    sub_b = await node_b.subscribe("coaching.prompt")
    event = Event("coaching.prompt", {"title": "Ask a question"})
    await node_b.publish(event)
    (got_a,) = await _take(sub_a, 1)
    (got_b,) = await _take(sub_b, 1)
    assert got_a.event.id == got_b.event.id == event.id
    assert got_a.event.payload == {"title": "Ask a question"}
    await sub_a.close()
    await sub_b.close()


async def test_a_group_shares_events_so_each_is_handled_once(buses):
    node_a, node_b = buses.new(), buses.new()
    group = f"crm-{uuid.uuid4().hex[:6]}"
    sub_a = await node_a.subscribe("call.*", group=group)
    sub_b = await node_b.subscribe("call.*", group=group)
    sent = [Event("call.ended", {"n": i}) for i in range(20)]
    for e in sent:
        await node_a.publish(e)

    seen: list[str] = []

    async def drain(sub):
        while True:
            try:
                delivery = await asyncio.wait_for(sub.__anext__(), 1.5)
            except asyncio.TimeoutError:
                return
            seen.append(delivery.event.id)
            await delivery.ack()

    await asyncio.gather(drain(sub_a), drain(sub_b))
    assert sorted(seen) == sorted(e.id for e in sent)
    await sub_a.close()
    await sub_b.close()


async def test_an_unacknowledged_group_event_is_delivered_again(buses):
    bus = buses.new()
    group = f"hooks-{uuid.uuid4().hex[:6]}"
    sub = await bus.subscribe("webhook.*", group=group, redeliver_after_s=0.3)
    event = Event("webhook.due", {"url": "https://example.invalid"})
    await bus.publish(event)
    (first,) = await _take(sub, 1)
    assert first.attempt == 1
    # no ack: the handler "crashed"
    (second,) = await _take(sub, 1, timeout=5)
    assert second.event.id == event.id
    assert second.attempt >= 2
    await second.ack()
    assert await _nothing_more(sub, wait=0.8)
    await sub.close()


async def test_group_members_must_agree_on_the_pattern(buses):
    bus = buses.new()
    group = f"g-{uuid.uuid4().hex[:6]}"
    sub = await bus.subscribe("a.*", group=group)
    with pytest.raises(ValueError, match="must use that pattern"):
        await bus.subscribe("b.*", group=group)
    await sub.close()


async def test_event_round_trips_through_its_dict_form():
    event = Event("deal.stage_changed", {"from": "a", "to": "b"}, org_id="o")
    assert Event.from_dict(event.to_dict()) == event


async def test_redis_fanout_resumes_after_a_redis_outage(tmp_path):
    from storage.local_servers import LocalRedis

    server = LocalRedis(tmp_path / "redis").start()
    client = aioredis.from_url(server.url)
    bus = RedisEventBus(client, stream="outage")
    sub = await bus.subscribe("*")
    await bus.publish(Event("x", {"n": 1}))
    (got,) = await _take(sub, 1)
    assert got.event.payload == {"n": 1}
    server.stop()
    reader = asyncio.ensure_future(_take(sub, 1, timeout=15))
    await asyncio.sleep(0.5)  # the reader is now failing and backing off
    server = LocalRedis(tmp_path / "redis").start()
    await bus.publish(Event("x", {"n": 2}))
    (got,) = await reader
    assert got.event.payload == {"n": 2}
    await sub.close()
    await client.aclose()
    server.stop()


# a stopping node waits until the persisting groups have caught up.
async def test_redis_bus_waits_until_a_group_has_acknowledged_what_was_published(redis_url):
    client = aioredis.from_url(redis_url)
    bus = RedisEventBus(client, stream=f"test:{uuid.uuid4().hex}")
    try:
        sub = await bus.subscribe("call.*", group="writers")
        await bus.publish(Event("call.old", {"call_id": "x"}))
        (poison,) = await _take(sub, 1)  # delivered, never acknowledged (its handler keeps failing)
        since = await bus.position()
        await bus.publish(Event("call.ended", {"call_id": "y"}))
        assert not await bus.wait_consumed(("writers",), 0.3, after=since)  # not read yet
        (last,) = await _take(sub, 1)
        assert last.event.type == "call.ended"
        assert not await bus.wait_consumed(("writers",), 0.3, after=since)  # read, not acked
        await last.ack()
        assert await bus.wait_consumed(("writers",), 5.0, after=since)
        # Counting from the start, the old unacknowledged event still holds it up.
        assert not await bus.wait_consumed(("writers",), 0.3)
        assert poison.event.type == "call.old"
        await sub.close()
    finally:
        await client.aclose()
