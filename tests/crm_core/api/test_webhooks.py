"""/api/v1/webhooks against the real app: admin-only, URL policy, secrets shown once, and
an API write delivered, signed, to a real loopback receiver by the node's own dispatcher."""

import asyncio
import json

import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from crm_core.webhooks.signing import SIGNATURE_HEADER, SignatureError, verify_signature
from tests.crm_core.api_world import ApiWorld
from voice_server.app import create_app
from voice_server.runtime import Runtime
from voice_server.settings import load_settings

ZERO = "00000000-0000-0000-0000-000000000000"


@pytest_asyncio.fixture(loop_scope="session")
async def private_world(migrated_database, redis_url):
    """The app as an on-premises install runs it: webhooks may target private addresses."""
    settings = load_settings({"DATABASE_URL": migrated_database, "REDIS_URL": redis_url,
                              "COACHLINE_EVENT_BUS": "memory", "COACHLINE_DB_POOL_MAX": "5",
                              "COACHLINE_WEBHOOKS_ALLOW_PRIVATE_URLS": "true"})
    runtime = await Runtime(settings).start()
    client = TestClient(TestServer(create_app(settings, runtime)))
    await client.start_server()
    resp = await client.get("/api/v1/openapi.json")
    yield ApiWorld(client, runtime.pool, runtime.bus, await resp.json())
    await client.close()
    await runtime.close()


class Receiver:
    """A loopback HTTP endpoint that keeps what arrives and checks signatures with our verifier."""

    def __init__(self) -> None:
        self.secret: str | None = None
        self.events: list[dict] = []
        self.bad_signatures = 0
        self.arrived = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            verify_signature(self.secret or "", body, request.headers.get(SIGNATURE_HEADER))
        except SignatureError:
            self.bad_signatures += 1
            return web.Response(status=400)
        self.events.append(json.loads(body))
        self.arrived.set()
        return web.Response(status=204)


@pytest_asyncio.fixture(loop_scope="session")
async def receiver():
    rx = Receiver()
    app = web.Application()
    app.router.add_post("/hook", rx.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    rx.url = str(server.make_url("/hook"))
    yield rx
    await server.close()


async def test_only_admins_manage_webhooks(world):
    org = await world.make_org()
    resp, hook = await world.request("POST", "/api/v1/webhooks", as_=org.admin,
                                     json={"url": "https://hooks.example.com/a"})
    assert resp.status == 201
    for person in (org.rep, org.manager):
        for method, path, body in (
            ("GET", "/api/v1/webhooks", None),
            ("POST", "/api/v1/webhooks", {"url": "https://hooks.example.com/b"}),
            ("GET", f"/api/v1/webhooks/{hook['id']}", None),
            ("PATCH", f"/api/v1/webhooks/{hook['id']}", {"active": False}),
            ("DELETE", f"/api/v1/webhooks/{hook['id']}", None),
            ("POST", f"/api/v1/webhooks/{hook['id']}/rotate-secret", None),
            ("GET", f"/api/v1/webhooks/{hook['id']}/deliveries", None),
        ):
            resp, body = await world.request(method, path, as_=person, json=body)
            assert (resp.status, body["error"]["code"]) == (403, "forbidden"), (person.role, method, path)
    resp, _ = await world.request("GET", "/api/v1/webhooks")
    assert resp.status == 401
    resp, listed = await world.request("GET", "/api/v1/webhooks", as_=org.admin)
    assert [h["id"] for h in listed["data"]] == [hook["id"]]


async def test_other_organisations_endpoints_are_404(world):
    mine, theirs = await world.make_org(), await world.make_org()
    _, hook = await world.request("POST", "/api/v1/webhooks", as_=theirs.admin,
                                  json={"url": "https://hooks.example.com/t"})
    for method, suffix in (("GET", ""), ("PATCH", ""), ("DELETE", ""), ("POST", "/rotate-secret"),
                           ("GET", "/deliveries")):
        resp, _ = await world.request(method, f"/api/v1/webhooks/{hook['id']}{suffix}", as_=mine.admin,
                                         json={"active": False} if method == "PATCH" else None)
        assert resp.status == 404, (method, suffix)
    resp, listed = await world.request("GET", "/api/v1/webhooks", as_=mine.admin)
    assert listed["data"] == []
    resp, _ = await world.request("GET", "/api/v1/webhooks/not-a-uuid", as_=mine.admin)
    assert resp.status == 404


async def test_secret_is_shown_on_create_and_rotate_only(world):
    org = await world.make_org()
    resp, hook = await world.request("POST", "/api/v1/webhooks", as_=org.admin,
                                     json={"url": "https://hooks.example.com/s", "event_types": ["crm.lead.*"],
                                           "description": "leads to the warehouse"})
    assert resp.status == 201 and hook["secret"].startswith("whsec_")
    assert hook["event_types"] == ["crm.lead.*"] and hook["active"] is True
    _, got = await world.request("GET", f"/api/v1/webhooks/{hook['id']}", as_=org.admin)
    _, listed = await world.request("GET", "/api/v1/webhooks", as_=org.admin)
    assert "secret" not in got and all("secret" not in h for h in listed["data"])
    resp, rotated = await world.request("POST", f"/api/v1/webhooks/{hook['id']}/rotate-secret", as_=org.admin)
    assert resp.status == 200 and rotated["secret"].startswith("whsec_") and rotated["secret"] != hook["secret"]
    async with world.pool.acquire() as conn:
        audit = await conn.fetch("SELECT action, before::text, after::text FROM audit_log "
                                 "WHERE org_id = $1 AND resource_type = 'webhook' ORDER BY occurred_at, id", org.id)
    assert [a["action"] for a in audit] == ["webhook.create", "webhook.rotate_secret"]
    assert not any(hook["secret"] in str(a) or rotated["secret"] in str(a) for a in audit)


async def test_patch_and_delete(world):
    org = await world.make_org()
    _, hook = await world.request("POST", "/api/v1/webhooks", as_=org.admin,
                                  json={"url": "https://hooks.example.com/p"})
    resp, patched = await world.request("PATCH", f"/api/v1/webhooks/{hook['id']}", as_=org.admin,
                                        json={"active": False, "event_types": ["crm.deal.*", "crm.lead.created"],
                                              "url": "https://hooks.example.com/q"})
    assert resp.status == 200
    assert (patched["active"], patched["event_types"], patched["url"]) == \
        (False, ["crm.deal.*", "crm.lead.created"], "https://hooks.example.com/q")
    resp, _ = await world.request("PATCH", f"/api/v1/webhooks/{hook['id']}", as_=org.admin, json={"url": None})
    assert resp.status == 422
    resp, _ = await world.request("DELETE", f"/api/v1/webhooks/{hook['id']}", as_=org.admin)
    assert resp.status == 204
    resp, _ = await world.request("GET", f"/api/v1/webhooks/{hook['id']}", as_=org.admin)
    assert resp.status == 404
    resp, _ = await world.request("DELETE", f"/api/v1/webhooks/{hook['id']}", as_=org.admin)
    assert resp.status == 404
    resp, _ = await world.request("PATCH", f"/api/v1/webhooks/{ZERO}", as_=org.admin, json={"active": True})
    assert resp.status == 404


async def test_private_and_malformed_urls_are_refused(world):
    org = await world.make_org()
    for url in ("http://127.0.0.1:9/x", "http://10.0.0.5/x", "http://[::1]/x", "http://localhost/x",
                "http://169.254.169.254/latest", "ftp://hooks.example.com/x", "https://u:p@hooks.example.com/",
                "not a url"):
        resp, body = await world.request("POST", "/api/v1/webhooks", as_=org.admin, json={"url": url})
        assert resp.status == 422, url
        assert body["error"]["code"] in ("invalid_url", "validation_failed"), (url, body)
    resp, body = await world.request("POST", "/api/v1/webhooks", as_=org.admin,
                                     json={"url": "https://hooks.example.com/x", "event_types": ["Bad Pattern"]})
    assert resp.status == 422
    _, hook = await world.request("POST", "/api/v1/webhooks", as_=org.admin,
                                  json={"url": "https://hooks.example.com/ok"})
    resp, body = await world.request("PATCH", f"/api/v1/webhooks/{hook['id']}", as_=org.admin,
                                     json={"url": "http://192.168.1.1/x"})
    assert (resp.status, body["error"]["code"]) == (422, "invalid_url")
    _, listed = await world.request("GET", "/api/v1/webhooks", as_=org.admin)
    assert [h["url"] for h in listed["data"]] == ["https://hooks.example.com/ok"]


async def test_create_is_idempotent(world):
    org = await world.make_org()
    key = {"Idempotency-Key": "hook-1"}
    body = {"url": "https://hooks.example.com/i"}
    resp1, first = await world.request("POST", "/api/v1/webhooks", as_=org.admin, json=body, headers=key)
    resp2, again = await world.request("POST", "/api/v1/webhooks", as_=org.admin, json=body, headers=key)
    assert resp1.status == resp2.status == 201 and first["id"] == again["id"]
    _, listed = await world.request("GET", "/api/v1/webhooks", as_=org.admin)
    assert len(listed["data"]) == 1


async def test_an_api_write_is_delivered_signed_and_logged(private_world, receiver):
    world = private_world
    org = await world.make_org()
    resp, hook = await world.request("POST", "/api/v1/webhooks", as_=org.admin,
                                     json={"url": receiver.url, "event_types": ["crm.lead.*"]})
    assert resp.status == 201, hook
    receiver.secret = hook["secret"]
    lead = await world.create_lead(org.admin, first_name="Hooked", company="Acme")

    async def lead_created() -> dict:
        while True:
            await receiver.arrived.wait()
            receiver.arrived.clear()
            for event in receiver.events:
                if event.get("type") == "crm.lead.created" and json.dumps(event).find(lead["id"]) >= 0:
                    return event

    event = await asyncio.wait_for(lead_created(), timeout=30)
    assert receiver.bad_signatures == 0
    assert event["id"]  # the event id receivers de-duplicate on

    deliveries: list = []
    for _ in range(100):
        resp, page = await world.request("GET", f"/api/v1/webhooks/{hook['id']}/deliveries", as_=org.admin)
        assert resp.status == 200
        deliveries = [d for d in page["data"] if d["event_id"] == event["id"]]
        if deliveries and deliveries[0]["status"] == "succeeded":
            break
        await asyncio.sleep(0.1)
    assert deliveries and deliveries[0]["status"] == "succeeded"
    assert deliveries[0]["event_type"] == "crm.lead.created"
    assert [a["response_status"] for a in deliveries[0]["log"]] == [204]
    resp, _ = await world.request("GET", f"/api/v1/webhooks/{hook['id']}/deliveries?limit=0", as_=org.admin)
    assert resp.status == 400
