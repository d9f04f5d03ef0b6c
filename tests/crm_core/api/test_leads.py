"""Leads over the REST API: CRUD, scoring, ownership, validation, pagination, idempotency, events."""

import asyncio
import uuid

from crm_core.changes import flush_published_marks
from storage.events import Event


async def test_create_get_update_delete_a_lead(world):
    org = await world.make_org()
    lead = await world.create_lead(org.rep, email="ada@example.com", title="VP Engineering",
                                   company_size=300, industry="Software")
    assert lead["owner_id"] == org.rep.user_id
    assert lead["status"] == "new"
    assert 0 <= lead["ai_score"] <= 100 and lead["grade"] in "ABCDEF" and lead["score_reasons"]

    resp, got = await world.request("GET", f"/api/v1/leads/{lead['id']}", as_=org.rep)
    assert resp.status == 200 and got == lead
    etag = resp.headers["ETag"]

    resp, updated = await world.request("PATCH", f"/api/v1/leads/{lead['id']}", as_=org.rep,
                                        json={"status": "contacted"}, headers={"If-Match": etag})
    assert resp.status == 200 and updated["status"] == "contacted"
    resp, err = await world.request("PATCH", f"/api/v1/leads/{lead['id']}", as_=org.rep,
                                    json={"status": "qualified"}, headers={"If-Match": etag})
    assert resp.status == 412 and err["error"]["code"] == "precondition_failed"

    resp, _ = await world.request("DELETE", f"/api/v1/leads/{lead['id']}", as_=org.rep)
    assert resp.status == 204
    resp, err = await world.request("GET", f"/api/v1/leads/{lead['id']}", as_=org.rep)
    assert resp.status == 404 and err["error"]["code"] == "not_found"

    async with world.pool.acquire() as conn:
        actions = [r["action"] for r in await conn.fetch(
            "SELECT action FROM audit_log WHERE resource_id = $1 ORDER BY id", lead["id"])]
        outbox = [r["type"] for r in await conn.fetch(
            "SELECT type FROM outbox WHERE payload->>'id' = $1 OR payload->'lead'->>'id' = $1 ORDER BY id",
            lead["id"])]
    assert actions == ["lead.create", "lead.update", "lead.delete"]
    assert outbox == ["crm.lead.created", "crm.lead.updated", "crm.lead.deleted"]


async def test_lead_created_event_goes_on_the_bus_and_its_outbox_row_is_marked_published(world):
    org = await world.make_org()
    sub = await world.bus.subscribe("crm.lead.*")
    async with sub:
        lead = await world.create_lead(org.rep)
        delivery = await asyncio.wait_for(sub.__anext__(), 5)
    event: Event = delivery.event
    assert (event.type, event.org_id, event.payload["id"]) == ("crm.lead.created", org.id, lead["id"])
    await flush_published_marks()
    async with world.pool.acquire() as conn:
        row = await conn.fetchrow("SELECT published_at FROM outbox WHERE event_id = $1", event.id)
    assert row["published_at"] is not None


async def test_bad_bodies_get_the_one_error_shape(world):
    org = await world.make_org()
    cases = [
        ({"email": "not-an-email"}, 422, "validation_failed"),
        ({"first_name": "A", "company_size": -3}, 422, "validation_failed"),
        ({"first_name": "A", "unexpected": 1}, 422, "validation_failed"),
        ({}, 422, "validation_failed"),
        ({"first_name": "A", "status": "won"}, 422, "validation_failed"),
    ]
    for body, status, code in cases:
        resp, err = await world.request("POST", "/api/v1/leads", as_=org.rep, json=body)
        assert (resp.status, err["error"]["code"]) == (status, code), body
        assert set(err["error"]) == {"code", "message", "details"}
    resp, err = await world.request("POST", "/api/v1/leads", as_=org.rep, data=b"{not json",
                                    headers={"Content-Type": "application/json"})
    assert (resp.status, err["error"]["code"]) == (400, "invalid_json")
    resp, err = await world.request("POST", "/api/v1/leads", as_=org.rep,
                                    json={"first_name": "x" * 300_000})
    assert (resp.status, err["error"]["code"]) == (413, "payload_too_large")
    resp, err = await world.request("PATCH", f"/api/v1/leads/{uuid.uuid4()}", as_=org.rep,
                                    json={"status": None})
    assert resp.status == 422


async def test_unknown_filters_sorts_and_cursors_are_400(world):
    org = await world.make_org()
    for params, code in (({"colour": "red"}, "invalid_filter"), ({"status": "won"}, "invalid_filter"),
                         ({"created_after": "yesterday"}, "invalid_filter"), ({"sort": "-password"}, "invalid_sort"),
                         ({"cursor": "garbage!"}, "invalid_cursor"), ({"limit": "1000"}, "invalid_limit")):
        resp, err = await world.request("GET", "/api/v1/leads", as_=org.admin, params=params)
        assert (resp.status, err["error"]["code"]) == (400, code), params


async def test_filters_select_the_right_leads(world):
    org = await world.make_org()
    a = await world.create_lead(org.rep, status="qualified", source="referral")
    b = await world.create_lead(org.rep, status="new", source="web")
    c = await world.create_lead(org.other_rep, status="contacted", source="web")
    _, page = await world.request("GET", "/api/v1/leads", as_=org.admin,
                                  params={"status": "qualified,contacted"})
    assert {x["id"] for x in page["data"]} == {a["id"], c["id"]}
    _, page = await world.request("GET", "/api/v1/leads", as_=org.admin,
                                  params={"owner_id": org.rep.user_id, "source": "web"})
    assert [x["id"] for x in page["data"]] == [b["id"]]
    _, page = await world.request("GET", "/api/v1/leads", as_=org.admin,
                                  params={"created_after": b["created_at"], "sort": "created_at"})
    assert [x["id"] for x in page["data"]] == [b["id"], c["id"]]
    # every grade a score can get is a filter value, the lowest (F) included
    resp, page = await world.request("GET", "/api/v1/leads", as_=org.admin, params={"grade": "E,F"})
    assert resp.status == 200
    assert {x["id"] for x in page["data"]} == {x["id"] for x in (a, b, c) if x["grade"] in ("E", "F")}
    resp, _ = await world.request("GET", "/api/v1/leads", as_=org.admin, params={"grade": "G"})
    assert resp.status == 400


async def test_pagination_is_stable_while_rows_are_inserted(world):
    org = await world.make_org()
    made = [await world.create_lead(org.rep, first_name=f"L{i}") for i in range(7)]
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": "3"} | ({"cursor": cursor} if cursor else {})
        _, page = await world.request("GET", "/api/v1/leads", as_=org.rep, params=params)
        seen += [x["id"] for x in page["data"]]
        # New leads arriving between pages sort before the cursor and never shift the pages.
        await world.create_lead(org.rep, first_name="late")
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [m["id"] for m in reversed(made)]


async def test_pagination_by_score_covers_every_lead_once(world):
    org = await world.make_org()
    for i in range(6):
        await world.create_lead(org.rep, company_size=[5, 100, 7000, None, 100, 20][i],
                                title=["VP", "", "Manager", "CEO", "VP", ""][i])
    seen, cursor = [], None
    while True:
        params = {"limit": "4", "sort": "-ai_score"} | ({"cursor": cursor} if cursor else {})
        _, page = await world.request("GET", "/api/v1/leads", as_=org.rep, params=params)
        seen += page["data"]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len({x["id"] for x in seen}) == 6
    scores = [x["ai_score"] for x in seen]
    assert scores == sorted(scores, reverse=True)


async def test_idempotency_key_replays_the_first_response(world):
    org = await world.make_org()
    headers = {"Idempotency-Key": "lead-create-1"}
    body = {"first_name": "Grace", "company": "Navy"}
    first, a = await world.request("POST", "/api/v1/leads", as_=org.rep, json=body, headers=headers)
    again, b = await world.request("POST", "/api/v1/leads", as_=org.rep, json=body, headers=headers)
    assert (first.status, again.status) == (201, 201)
    assert a == b and again.headers.get("Idempotent-Replayed") == "true"
    async with world.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM leads WHERE org_id = $1", org.id) == 1
    resp, err = await world.request("POST", "/api/v1/leads", as_=org.rep, json={"first_name": "Other"},
                                    headers=headers)
    assert (resp.status, err["error"]["code"]) == (422, "idempotency_key_reused")
    # keys belong to their user: someone else's same key is a new request
    resp, c = await world.request("POST", "/api/v1/leads", as_=org.other_rep, json=body, headers=headers)
    assert resp.status == 201 and c["id"] != a["id"]
    # errors are replayed too
    bad = {"Idempotency-Key": "bad-1"}
    r1, e1 = await world.request("POST", "/api/v1/leads", as_=org.rep, json={}, headers=bad)
    r2, e2 = await world.request("POST", "/api/v1/leads", as_=org.rep, json={}, headers=bad)
    assert (r1.status, r2.status) == (422, 422) and e1 == e2


async def test_rescore_and_convert(world):
    org = await world.make_org()
    lead = await world.create_lead(org.rep, company_size=2)
    resp, updated = await world.request("PATCH", f"/api/v1/leads/{lead['id']}", as_=org.rep,
                                        json={"company_size": 400, "title": "CTO"})
    assert updated["ai_score"] > lead["ai_score"]
    resp, score = await world.request("POST", f"/api/v1/leads/{lead['id']}/score", as_=org.rep)
    assert resp.status == 200 and score["score"] == updated["ai_score"] and score["reasons"]

    resp, deal = await world.request("POST", f"/api/v1/leads/{lead['id']}/convert", as_=org.rep,
                                     json={"value": 1200})
    assert resp.status == 201
    assert (deal["lead_id"], deal["owner_id"], deal["value"], deal["name"]) == (
        lead["id"], org.rep.user_id, 1200.0, "Analytical")
    _, got = await world.request("GET", f"/api/v1/leads/{lead['id']}", as_=org.rep)
    assert got["status"] == "converted"
    resp, err = await world.request("POST", f"/api/v1/leads/{lead['id']}/convert", as_=org.rep, json={})
    assert (resp.status, err["error"]["code"]) == (409, "already_converted")
    _, timeline = await world.request("GET", "/api/v1/activities", as_=org.rep, params={"lead_id": lead["id"]})
    assert [a["kind"] for a in timeline["data"]] == ["converted"]


async def test_events_the_bus_missed_are_relayed_from_the_outbox(world):
    from crm_core.changes import ChangeSet, relay_outbox

    org = await world.make_org()
    changes = ChangeSet(org.id, org.admin.user_id)
    async with world.pool.acquire() as conn, conn.transaction():
        await changes.record(conn, action="lead.note", resource_type="lead", resource_id=None,
                             event_type="crm.test.relayed", payload={"n": 1})
    await changes.publish(world.pool, None)  # no bus: the event stays pending
    event_id = changes.events[0].id
    assert await relay_outbox(world.pool, world.bus) == 0  # the writer's grace period
    async with world.pool.acquire() as conn:
        await conn.execute("UPDATE outbox SET next_attempt_at = now() WHERE event_id = $1", event_id)
    sub = await world.bus.subscribe("crm.test.*")
    async with sub:
        assert await relay_outbox(world.pool, world.bus) >= 1
        delivery = await asyncio.wait_for(sub.__anext__(), 5)
    assert (delivery.event.id, delivery.event.payload) == (event_id, {"n": 1})
    assert await relay_outbox(world.pool, world.bus) == 0


async def test_old_idempotency_keys_are_pruned(world):
    from crm_core.api.idempotency import prune_idempotency_keys

    org = await world.make_org()
    await world.request("POST", "/api/v1/leads", as_=org.rep, json={"first_name": "P"},
                        headers={"Idempotency-Key": "old"})
    async with world.pool.acquire() as conn:
        await conn.execute("UPDATE idempotency_keys SET created_at = now() - interval '2 days' "
                           "WHERE org_id = $1", org.id)
    assert await prune_idempotency_keys(world.pool) == 1


async def test_concurrent_retries_with_one_key_create_one_lead(world):
    org = await world.make_org()
    headers = {"Idempotency-Key": "race"}
    results = await asyncio.gather(*[
        world.request("POST", "/api/v1/leads", as_=org.rep, json={"first_name": "Race"}, headers=headers)
        for _ in range(5)])
    statuses = sorted(resp.status for resp, _ in results)
    assert set(statuses) <= {201, 409} and 201 in statuses
    assert all(body["error"]["code"] == "idempotency_in_progress" for resp, body in results if resp.status == 409)
    async with world.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM leads WHERE org_id = $1", org.id) == 1


async def test_rescoring_reads_the_leads_calls(world):
    from crm_core.calls.records import NewCall, SegmentRow, add_final_segments, create_call, update_call_status

    org = await world.make_org()
    lead = await world.create_lead(org.rep, title="Director of Sales", company_size=250)
    _, before = await world.request("POST", f"/api/v1/leads/{lead['id']}/score", as_=org.rep)
    async with world.pool.acquire() as conn:
        call = await create_call(conn, NewCall(org.id, "twilio", "outbound", external_id="CA-eng",
                                               rep_id=org.rep.user_id, lead_id=lead["id"]))
        await update_call_status(conn, call["id"], "in-progress")
        await update_call_status(conn, call["id"], "completed", duration_s=1800)
        await add_final_segments(conn, org.id, str(call["id"]), [
            SegmentRow("c1", "customer", 0, 900, "this sounds great", [], sentiment=0.9)])
    _, after = await world.request("POST", f"/api/v1/leads/{lead['id']}/score", as_=org.rep)
    assert after["score"] != before["score"]
    assert any("30 min talk time" in r or "sentiment" in r.lower() for r in after["reasons"]), after


async def test_a_one_value_filter_matches_like_a_list_of_one(world):
    # One value binds as plain equality (so PostgreSQL can read the status index in order);
    # the answer, its order and its pages must not change.
    org = await world.make_org()
    made = [await world.create_lead(org.rep, status=("qualified", "new")[i % 2], first_name=f"F{i}")
            for i in range(7)]
    wanted = [m["id"] for m in reversed(made) if m["status"] == "qualified"]
    seen, cursor = [], None
    while True:
        params = {"status": "qualified", "limit": "2", **({"cursor": cursor} if cursor else {})}
        resp, page = await world.request("GET", "/api/v1/leads", as_=org.admin, params=params)
        assert resp.status == 200
        seen += [x["id"] for x in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == wanted
    _, both = await world.request("GET", "/api/v1/leads", as_=org.admin,
                                  params={"status": "qualified,new", "limit": "50"})
    assert [x["id"] for x in both["data"]] == [m["id"] for m in reversed(made)]


async def test_a_status_filtered_page_reads_the_status_index_in_order(world):
    org = await world.make_org()
    async with world.pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO leads (org_id, first_name, status) SELECT $1, 'x' || i, "
            "(ARRAY['new','qualified'])[1 + (i % 2)] FROM generate_series(1, 2000) AS i", org.id)
        await conn.execute("ANALYZE leads")
        plan = "\n".join(r[0] for r in await conn.fetch(
            "EXPLAIN SELECT l.* FROM leads l WHERE l.org_id = $1 AND l.status = $2 "
            "ORDER BY l.created_at DESC, l.id DESC LIMIT 51", org.id, "qualified"))
    assert "leads_org_status_created_idx" in plan and "Sort" not in plan
