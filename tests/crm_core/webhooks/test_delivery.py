import asyncio
import hashlib
import hmac
import json
import socket
import uuid
from collections import Counter

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from crm_core.webhooks.endpoints import (
    WebhookEndpointNotFound,
    WebhookUrlError,
    create_endpoint,
    delete_endpoint,
    list_deliveries,
    list_endpoints,
    rotate_secret,
    update_endpoint,
    validate_url,
)
from crm_core.webhooks.signing import SignatureError, signature_header, verify_signature
from crm_core.webhooks.delivery import WebhookDispatcher, WebhookOptions, backoff_s
from storage.database import create_pool

FAST = WebhookOptions(allow_private_urls=True, base_backoff_s=0.05, max_backoff_s=0.2, timeout_s=5,
                      poll_every_s=0.02)


class Receiver:
    """A real HTTP endpoint on loopback that checks signatures by hand."""

    def __init__(self, fail_first: int = 0, status: int = 500) -> None:
        self.secret: str | None = None
        self.fail_first = fail_first
        self.status = status
        self.calls = 0
        self.accepted: list[dict] = []
        self.headers: list[dict] = []
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        self.server = TestServer(app, host="127.0.0.1")

    async def _hook(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.calls += 1
        self.headers.append(dict(request.headers))
        parts = dict(p.split("=", 1) for p in request.headers["Coachline-Signature"].split(","))
        expected = hmac.new(self.secret.encode(), parts["t"].encode() + b"." + body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, parts["v1"]):
            return web.Response(status=401, text="bad signature")
        if self.calls <= self.fail_first:
            return web.Response(status=self.status, text="not now")
        self.accepted.append(json.loads(body))
        return web.Response(status=204)

    @property
    def url(self) -> str:
        return str(self.server.make_url("/hook"))


@pytest.fixture
async def db(migrated_database):
    pool = await create_pool(migrated_database)
    async with pool.acquire() as conn:
        org = await conn.fetchval("INSERT INTO organizations (name, slug) VALUES ('o', $1) RETURNING id",
                                  uuid.uuid4().hex)
    yield pool, str(org)
    await pool.close()


async def _emit(pool, org, event_type, payload=None) -> str:
    event_id = str(uuid.uuid4())
    async with pool.acquire() as conn:
        await conn.execute("INSERT INTO outbox (event_id, org_id, type, payload) VALUES ($1, $2, $3, $4)",
                           event_id, org, event_type, payload or {"n": 1})
    return event_id


async def _until(predicate, dispatcher, rounds=200):
    for _ in range(rounds):
        await dispatcher.run_once()
        if await predicate():
            return
        await asyncio.sleep(0.03)
    raise AssertionError("condition not reached")


async def test_signed_delivery_only_of_subscribed_events(db):
    pool, org = db
    receiver = Receiver()
    await receiver.server.start_server()
    dispatcher = WebhookDispatcher(pool, FAST)
    try:
        async with pool.acquire() as conn:
            endpoint = await create_endpoint(conn, org, receiver.url, ["crm.lead.*"], allow_private=True)
        receiver.secret = endpoint.secret
        wanted = await _emit(pool, org, "crm.lead.created", {"lead_id": "L1", "name": "Ada"})
        await _emit(pool, org, "crm.deal.updated")
        assert await dispatcher.run_once() == (1, 1)
        assert [e["id"] for e in receiver.accepted] == [wanted]
        event = receiver.accepted[0]
        assert event["type"] == "crm.lead.created" and event["data"] == {"lead_id": "L1", "name": "Ada"}
        assert event["org_id"] == org
        h = receiver.headers[0]
        assert h["Coachline-Event-Id"] == wanted and h["Coachline-Delivery-Attempt"] == "1"
        async with pool.acquire() as conn:
            log = await list_deliveries(conn, org, endpoint.id)
        assert [(d["status"], d["attempts"], d["response_status"]) for d in log] == [("succeeded", 1, 204)]
        assert [a["response_status"] for a in log[0]["log"]] == [204]
        # Nothing further to do, and nothing is sent twice.
        assert await dispatcher.run_once() == (0, 0)
        assert receiver.calls == 1
    finally:
        await dispatcher.close()
        await receiver.server.close()


async def test_a_failing_receiver_is_retried_with_backoff_until_it_succeeds(db):
    pool, org = db
    receiver = Receiver(fail_first=2, status=503)
    await receiver.server.start_server()
    dispatcher = WebhookDispatcher(pool, FAST)
    try:
        async with pool.acquire() as conn:
            endpoint = await create_endpoint(conn, org, receiver.url, allow_private=True)
        receiver.secret = endpoint.secret
        event_id = await _emit(pool, org, "crm.call.completed")

        async def delivered():
            async with pool.acquire() as conn:
                return await conn.fetchval("SELECT status = 'succeeded' FROM webhook_deliveries") or False

        await _until(delivered, dispatcher)
        assert receiver.calls == 3 and [e["id"] for e in receiver.accepted] == [event_id]
        assert [h["Coachline-Delivery-Attempt"] for h in receiver.headers] == ["1", "2", "3"]
        assert len({h["Coachline-Event-Id"] for h in receiver.headers}) == 1
        async with pool.acquire() as conn:
            (row,) = await list_deliveries(conn, org, endpoint.id)
        assert row["attempts"] == 3
        assert [a["response_status"] for a in row["log"]] == [503, 503, 204]
    finally:
        await dispatcher.close()
        await receiver.server.close()


async def test_a_receiver_that_never_succeeds_is_dead_lettered_after_max_attempts(db):
    pool, org = db
    receiver = Receiver(fail_first=10**6)
    await receiver.server.start_server()
    options = WebhookOptions(allow_private_urls=True, base_backoff_s=0.02, max_backoff_s=0.05, max_attempts=3)
    dispatcher = WebhookDispatcher(pool, options)
    try:
        async with pool.acquire() as conn:
            endpoint = await create_endpoint(conn, org, receiver.url, allow_private=True)
        receiver.secret = endpoint.secret
        await _emit(pool, org, "crm.lead.created")

        async def dead():
            async with pool.acquire() as conn:
                return await conn.fetchval("SELECT status = 'dead' FROM webhook_deliveries") or False

        await _until(dead, dispatcher)
        for _ in range(5):
            await dispatcher.run_once()
            await asyncio.sleep(0.03)
        assert receiver.calls == 3
        async with pool.acquire() as conn:
            (row,) = await list_deliveries(conn, org, endpoint.id)
        assert row["attempts"] == 3 and "HTTP 500" in row["last_error"]
    finally:
        await dispatcher.close()
        await receiver.server.close()


async def test_two_dispatchers_deliver_each_event_exactly_once(db, migrated_database):
    pool, org = db
    other_pool = await create_pool(migrated_database)
    receiver = Receiver()
    await receiver.server.start_server()
    options = WebhookOptions(allow_private_urls=True, batch_size=7, poll_every_s=0.01)
    dispatchers = [WebhookDispatcher(pool, options), WebhookDispatcher(other_pool, options)]
    stop = asyncio.Event()
    try:
        async with pool.acquire() as conn:
            endpoint = await create_endpoint(conn, org, receiver.url, allow_private=True)
        receiver.secret = endpoint.secret
        runs = [asyncio.create_task(d.run(stop)) for d in dispatchers]
        ids = [await _emit(pool, org, "crm.lead.created", {"i": i}) for i in range(60)]
        for _ in range(500):
            if len(receiver.accepted) >= len(ids):
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)  # time for any duplicate to show up
        stop.set()
        await asyncio.gather(*runs)
        counts = Counter(e["id"] for e in receiver.accepted)
        assert set(counts) == set(ids)
        assert max(counts.values()) == 1
        # Every delivery took exactly one attempt: no attempt was made twice.
        async with pool.acquire() as conn:
            statuses = await conn.fetch("SELECT status, attempts FROM webhook_deliveries")
        assert {(r["status"], r["attempts"]) for r in statuses} == {("succeeded", 1)}
    finally:
        for d in dispatchers:
            await d.close()
        await receiver.server.close()
        await other_pool.close()


async def test_private_network_urls_are_refused_unless_allowed(db):
    pool, org = db
    for url in ("ftp://example.com/x", "javascript:alert(1)", "http://10.0.0.5/h", "http://[::1]/h",
                "http://169.254.169.254/latest", "http://user:pw@example.com/", "http://localhost:8080/",
                "https:///nohost", "http://0.0.0.0/"):
        with pytest.raises(WebhookUrlError):
            validate_url(url)
    assert validate_url("https://hooks.example.com/in") == "https://hooks.example.com/in"
    assert validate_url("http://10.0.0.5/h", allow_private=True)

    # A name that resolves inward is refused at connect time (DNS rebinding), and a
    # stored literal address that is not public is refused before any request.
    host = socket.gethostname()
    if not any(a[4][0].startswith("127.") for a in socket.getaddrinfo(host, 80)):
        pytest.skip("this machine's name does not resolve to loopback")
    receiver = Receiver()
    await receiver.server.start_server()
    dispatcher = WebhookDispatcher(pool, WebhookOptions(allow_private_urls=False, max_attempts=1))
    try:
        port = receiver.server.port
        async with pool.acquire() as conn:
            by_name = await create_endpoint(conn, org, f"http://{host}:{port}/hook")
            literal = await create_endpoint(conn, org, f"http://{host}:{port}/hook")
            await conn.execute("UPDATE webhook_endpoints SET url = $1 WHERE id = $2",
                               f"http://127.0.0.1:{port}/hook", literal.id)
        await _emit(pool, org, "crm.lead.created")
        await dispatcher.run_once()
        assert receiver.calls == 0
        async with pool.acquire() as conn:
            (named,) = await list_deliveries(conn, org, by_name.id)
            (lit,) = await list_deliveries(conn, org, literal.id)
        assert named["status"] == "dead" and "non-public address 127.0.0.1" in named["last_error"]
        assert lit["status"] == "dead" and lit["last_error"].startswith("url refused")
    finally:
        await dispatcher.close()
        await receiver.server.close()


async def test_endpoint_crud_and_secret_rotation(db):
    pool, org = db
    async with pool.acquire() as conn:
        created = await create_endpoint(conn, org, "https://hooks.example.com/a", ["crm.deal.*"],
                                        description="deals")
        assert created.secret.startswith("whsec_") and created.wants("crm.deal.updated")
        assert not created.wants("crm.lead.created")
        listed = await list_endpoints(conn, org)
        assert [e.id for e in listed] == [created.id] and listed[0].secret is None
        updated = await update_endpoint(conn, org, created.id, active=False, event_types=["*"])
        assert not updated.active and updated.event_types == ["*"]
        rotated = await rotate_secret(conn, org, created.id)
        assert rotated.secret != created.secret
        with pytest.raises(ValueError):
            await create_endpoint(conn, org, "https://hooks.example.com/a", ["CRM Lead!"])
        with pytest.raises(WebhookEndpointNotFound):
            await update_endpoint(conn, str(uuid.uuid4()), created.id, active=True)
        await delete_endpoint(conn, org, created.id)
        with pytest.raises(WebhookEndpointNotFound):
            await delete_endpoint(conn, org, created.id)


def test_signature_verification_rejects_tampering_and_replays():
    body = b'{"id":"e1"}'
    header = signature_header("whsec_test_secret_123", body, timestamp=1_700_000_000)
    assert verify_signature("whsec_test_secret_123", body, header, now=1_700_000_010) == 1_700_000_000
    with pytest.raises(SignatureError):
        verify_signature("whsec_test_secret_123", body + b" ", header, now=1_700_000_010)
    with pytest.raises(SignatureError):
        verify_signature("whsec_other_secret_456", body, header, now=1_700_000_010)
    with pytest.raises(SignatureError):
        verify_signature("whsec_test_secret_123", body, header, now=1_700_009_999)
    with pytest.raises(SignatureError):
        verify_signature("whsec_test_secret_123", body, "garbage", now=1_700_000_010)


def test_backoff_grows_and_is_capped():
    options = WebhookOptions(base_backoff_s=10, max_backoff_s=100)
    delays = [backoff_s(a, options) for a in range(1, 8)]
    assert 5 <= delays[0] <= 10 and 10 <= delays[1] <= 20
    assert all(50 <= d <= 100 for d in delays[4:])
