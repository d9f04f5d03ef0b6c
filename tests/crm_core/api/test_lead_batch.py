"""POST /api/v1/leads/batch: per-item results, partial or all-or-nothing, the single requests' rules."""

import uuid


async def _count(world, org):
    async with world.pool.acquire() as conn:
        return await conn.fetchval("SELECT count(*) FROM leads WHERE org_id = $1", org.id)


async def test_a_batch_writes_what_succeeds_and_reports_each_item(world):
    org = await world.make_org()
    taken = await world.create_lead(org.rep, email="taken@example.com")
    edit = await world.create_lead(org.rep, first_name="Edit")
    gone = await world.create_lead(org.rep, first_name="Gone")
    hidden = await world.create_lead(org.other_rep, first_name="Hidden")  # not the rep's
    body = {
        "create": [
            {"first_name": "New", "email": "new@example.com"},
            {"email": "TAKEN@example.com"},
        ],
        "update": [{"id": edit["id"], "title": "CTO"}, {"id": hidden["id"], "title": "x"}],
        "delete": [gone["id"], str(uuid.uuid4())],
    }
    resp, out = await world.request("POST", "/api/v1/leads/batch", as_=org.rep, json=body)
    assert resp.status == 200, out
    got = [(r["op"], r["index"], r["status"]) for r in out["results"]]
    assert got == [
        ("create", 0, 201),
        ("create", 1, 409),
        ("update", 0, 200),
        ("update", 1, 404),
        ("delete", 0, 204),
        ("delete", 1, 404),
    ]
    assert (out["applied"], out["succeeded"], out["failed"]) == (True, 3, 3)
    assert out["results"][1]["error"]["details"]["existing_id"] == taken["id"]
    assert out["results"][2]["lead"]["title"] == "CTO"
    resp, _ = await world.request("GET", f"/api/v1/leads/{gone['id']}", as_=org.rep)
    assert resp.status == 404
    resp, got_hidden = await world.request(
        "GET", f"/api/v1/leads/{hidden['id']}", as_=org.other_rep
    )
    assert got_hidden["title"] is None
    async with world.pool.acquire() as conn:
        actions = sorted(
            r["action"]
            for r in await conn.fetch(
                "SELECT action FROM audit_log WHERE org_id = $1 AND resource_id = ANY($2::text[])",
                org.id,
                [edit["id"], gone["id"], out["results"][0]["id"]],
            )
        )
    assert actions == ["lead.create", "lead.create", "lead.create", "lead.delete", "lead.update"]


async def test_all_or_nothing_rolls_every_item_back_on_one_failure(world):
    org = await world.make_org()
    await world.create_lead(org.rep, email="taken@example.com")
    before = await _count(world, org)
    body = {
        "create": [{"first_name": "A"}, {"first_name": "B"}, {"email": "taken@example.com"}],
        "all_or_nothing": True,
    }
    resp, out = await world.request("POST", "/api/v1/leads/batch", as_=org.rep, json=body)
    assert resp.status == 200 and out["applied"] is False
    assert [r["applied"] for r in out["results"]] == [False, False, False]
    assert [r["status"] for r in out["results"]] == [201, 201, 409]
    assert await _count(world, org) == before
    body["create"].pop()
    resp, out = await world.request("POST", "/api/v1/leads/batch", as_=org.rep, json=body)
    assert out["applied"] is True and await _count(world, org) == before + 2


async def test_batch_bounds_and_bad_items_are_422(world):
    org = await world.make_org()
    for body in (
        {},
        {"create": []},
        {"create": [{"first_name": "x"}] * 101},
        {"create": [{"first_name": "x"}] * 60, "delete": [str(uuid.uuid4())] * 41},
        {"create": [{}]},
        {"update": [{"first_name": "no id"}]},
        {"delete": ["nope"]},
    ):
        resp, err = await world.request("POST", "/api/v1/leads/batch", as_=org.rep, json=body)
        assert (resp.status, err["error"]["code"]) == (422, "validation_failed"), body
    resp, out = await world.request(
        "POST", "/api/v1/leads/batch", as_=org.rep, json={"update": [{"id": str(uuid.uuid4())}]}
    )
    assert (
        out["results"][0]["status"] == 400 and out["results"][0]["error"]["code"] == "empty_update"
    )
