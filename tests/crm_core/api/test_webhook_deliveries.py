"""GET /api/v1/webhooks/{id}/deliveries pages with the same cursors, filters and sort as every list."""

import json
import uuid

from crm_core.api.listing import _encode_cursor


async def _deliveries(world, org_id: str, endpoint_id: str, count: int, *, same_time: bool) -> list[int]:
    """``count`` deliveries with an attempt each; ``same_time`` gives them one created_at (ties on id)."""
    ids = []
    async with world.pool.acquire() as conn:
        for i in range(count):
            event_id = uuid.uuid4()
            outbox_id = await conn.fetchval(
                "INSERT INTO outbox (event_id, org_id, type, payload) VALUES ($1, $2, 'crm.lead.created', $3) "
                "RETURNING id", event_id, org_id, json.dumps({"n": i}))
            created = "'2026-11-01T00:00:00Z'" if same_time else f"now() - interval '{count - i} seconds'"
            delivery = await conn.fetchval(
                f"""INSERT INTO webhook_deliveries (org_id, endpoint_id, outbox_id, event_id, event_type, status,
                                                    attempts, created_at)
                    VALUES ($1, $2, $3, $4, 'crm.lead.created', $5, 1, {created}) RETURNING id""",
                org_id, endpoint_id, outbox_id, event_id, "dead" if i % 3 == 0 else "succeeded")
            await conn.execute("INSERT INTO webhook_delivery_attempts (delivery_id, attempt, response_status, "
                               "duration_ms) VALUES ($1, 1, $2, 5)", delivery, 500 if i % 3 == 0 else 204)
            ids.append(delivery)
    return ids


async def _walk(world, admin, path: str, **query) -> list[dict]:
    seen: list[dict] = []
    cursor = None
    for _ in range(50):
        params = {**query, **({"cursor": cursor} if cursor else {})}
        resp, page = await world.request("GET", path, as_=admin, params=params)
        assert resp.status == 200, page
        seen += page["data"]
        cursor = page["next_cursor"]
        if cursor is None:
            return seen
    raise AssertionError("the pages never ended")


async def test_deliveries_page_through_every_row_once_newest_first(world):
    org = await world.make_org()
    _, hook = await world.request("POST", "/api/v1/webhooks", as_=org.admin, json={"url": "https://hooks.example.com/p"})
    ids = await _deliveries(world, org.id, hook["id"], 7, same_time=False)
    path = f"/api/v1/webhooks/{hook['id']}/deliveries"

    resp, first = await world.request("GET", path, as_=org.admin, params={"limit": "3"})
    assert resp.status == 200 and len(first["data"]) == 3 and first["next_cursor"]
    everything = await _walk(world, org.admin, path, limit="3")
    assert [d["id"] for d in everything] == ids[::-1]  # newest first, none twice, none skipped
    assert all(len(d["log"]) == 1 for d in everything)
    assert {d["log"][0]["response_status"] for d in everything if d["status"] == "dead"} == {500}

    oldest_first = await _walk(world, org.admin, path, limit="2", sort="created_at")
    assert [d["id"] for d in oldest_first] == ids
    dead = await _walk(world, org.admin, path, limit="2", status="dead")
    assert [d["id"] for d in dead] == [i for n, i in enumerate(ids) if n % 3 == 0][::-1]


async def test_deliveries_queued_in_the_same_instant_page_on_their_id(world):
    org = await world.make_org()
    _, hook = await world.request("POST", "/api/v1/webhooks", as_=org.admin, json={"url": "https://hooks.example.com/t"})
    ids = await _deliveries(world, org.id, hook["id"], 5, same_time=True)
    everything = await _walk(world, org.admin, f"/api/v1/webhooks/{hook['id']}/deliveries", limit="2")
    assert [d["id"] for d in everything] == sorted(ids, reverse=True)


async def test_delivery_cursors_are_checked_and_scoped_to_the_endpoint(world):
    org = await world.make_org()
    _, hook = await world.request("POST", "/api/v1/webhooks", as_=org.admin, json={"url": "https://hooks.example.com/c"})
    _, other = await world.request("POST", "/api/v1/webhooks", as_=org.admin, json={"url": "https://hooks.example.com/o"})
    await _deliveries(world, org.id, hook["id"], 3, same_time=False)
    await _deliveries(world, org.id, other["id"], 2, same_time=False)
    path = f"/api/v1/webhooks/{hook['id']}/deliveries"
    assert len(await _walk(world, org.admin, path, limit="1")) == 3  # never the other endpoint's

    forged = [_encode_cursor("-created_at", "2026-11-01 00:00:00+00", "00000000-0000-0000-0000-000000000000"),
              _encode_cursor("-created_at", "2026-11-01 00:00:00+00", "1; DROP TABLE outbox"),
              _encode_cursor("-created_at", "not a time", "12"), "%%%", _encode_cursor("created_at", "x", "1")]
    for cursor in forged:
        resp, body = await world.request("GET", path, as_=org.admin, params={"cursor": cursor})
        assert (resp.status, body["error"]["code"]) == (400, "invalid_cursor"), cursor
    for query in ({"limit": "0"}, {"limit": "201"}, {"status": "lost"}, {"sort": "-attempts"}, {"nope": "1"}):
        resp, body = await world.request("GET", path, as_=org.admin, params=query)
        assert resp.status == 400, (query, body)
    resp, _ = await world.request("GET", path, as_=org.rep)
    assert resp.status == 403
