"""Conditional GETs over HTTP: If-None-Match answers 304 with the ETag, weak comparison, * and lists."""


async def test_a_record_read_again_with_its_etag_is_304_until_it_changes(world):
    org = await world.make_org()
    lead = await world.create_lead(org.rep, email="ada@example.com")
    path = f"/api/v1/leads/{lead['id']}"
    resp, _ = await world.request("GET", path, as_=org.rep)
    etag = resp.headers["ETag"]
    assert etag.startswith('W/"')

    opaque = etag.removeprefix("W/")
    for held in (etag, opaque, f'"stale", {etag}', f'W/"a",{etag} , "b"', "*"):
        resp, body = await world.request("GET", path, as_=org.rep, headers={"If-None-Match": held})
        assert resp.status == 304, held
        assert resp.headers["ETag"] == etag and body is None and await resp.read() == b""
    for held in ('"stale"', 'W/"stale", "other"', "not a list, ,", ""):
        resp, body = await world.request("GET", path, as_=org.rep, headers={"If-None-Match": held})
        assert resp.status == 200 and body["id"] == lead["id"], held

    resp, _ = await world.request("PATCH", path, as_=org.rep, json={"status": "contacted"},
                                  headers={"If-Match": etag})
    assert resp.status == 200
    resp, body = await world.request("GET", path, as_=org.rep, headers={"If-None-Match": etag})
    assert resp.status == 200 and body["status"] == "contacted" and resp.headers["ETag"] != etag
    # If-Match still takes what a GET gave, now also as one of a list
    fresh = resp.headers["ETag"]
    resp, _ = await world.request("PATCH", path, as_=org.rep, json={"status": "qualified"},
                                  headers={"If-Match": f'"other", {fresh}'})
    assert resp.status == 200


async def test_not_modified_never_tells_who_may_not_see_the_record_that_it_exists(world):
    org = await world.make_org()
    lead = await world.create_lead(org.rep)
    resp, err = await world.request("GET", f"/api/v1/leads/{lead['id']}", as_=org.outsider_rep,
                                    headers={"If-None-Match": "*"})
    assert resp.status == 404 and err["error"]["code"] == "not_found"


async def test_every_get_is_tagged_and_answers_304_deals_users_and_lists_too(world):
    org = await world.make_org()
    lead = await world.create_lead(org.rep)
    deal = await world.create_deal(org.rep, lead_id=lead["id"])
    for path in (f"/api/v1/deals/{deal['id']}", f"/api/v1/users/{org.rep.user_id}", "/api/v1/me",
                 "/api/v1/leads", "/api/v1/leads?status=new&sort=-updated_at", "/api/v1/deals"):
        resp, _ = await world.request("GET", path, as_=org.rep)
        assert resp.status == 200, path
        etag = resp.headers["ETag"]
        resp, body = await world.request("GET", path, as_=org.rep, headers={"If-None-Match": etag})
        assert resp.status == 304 and resp.headers["ETag"] == etag and body is None, path

    # a list's tag follows its content: a new row, a new tag, a full answer
    resp, _ = await world.request("GET", "/api/v1/leads", as_=org.rep)
    listed = resp.headers["ETag"]
    assert resp.headers["Vary"] == "Accept"
    await world.create_lead(org.rep, first_name="Grace")
    resp, page = await world.request("GET", "/api/v1/leads", as_=org.rep, headers={"If-None-Match": listed})
    assert resp.status == 200 and len(page["data"]) == 2 and resp.headers["ETag"] != listed
    # and another person's view of the same list is their own representation
    resp, _ = await world.request("GET", "/api/v1/leads", as_=org.outsider_rep, headers={"If-None-Match": listed})
    assert resp.status == 200


async def test_the_document_offers_if_none_match_and_304_on_gets(world):
    for path in ("/api/v1/leads", "/api/v1/leads/{id}", "/api/v1/me"):
        op = world.openapi["paths"][path]["get"]
        assert "If-None-Match" in {p["name"] for p in op["parameters"]}
        assert "304" in op["responses"]
