"""fields= over HTTP: a record or a list cut to the named top-level fields, id always; unknown -> 422."""

import re


async def test_a_record_keeps_only_the_fields_asked_for_and_its_etag(world):
    org = await world.make_org()
    lead = await world.create_lead(org.rep, email="ada@example.com", title="CTO")
    path = f"/api/v1/leads/{lead['id']}"
    resp, _ = await world.request("GET", path, as_=org.rep)
    etag = resp.headers["ETag"]
    resp, got = await world.request("GET", path, as_=org.rep, params={"fields": " email , title,email"})
    assert resp.status == 200 and got == {"id": lead["id"], "email": "ada@example.com", "title": "CTO"}
    # the tag is the record's version: a PATCH may name it, and it revalidates the cut-down copy
    assert resp.headers["ETag"] == etag
    resp, _ = await world.request("GET", path, as_=org.rep, params={"fields": "id"},
                                  headers={"If-None-Match": etag})
    assert resp.status == 304

    deal = await world.create_deal(org.rep, lead_id=lead["id"], value=1200)
    resp, got = await world.request("GET", f"/api/v1/deals/{deal['id']}", as_=org.rep,
                                    params={"fields": "value,stage"})
    assert got == {"id": deal["id"], "value": 1200, "stage": deal["stage"]}
    resp, got = await world.request("GET", f"/api/v1/users/{org.rep.user_id}", as_=org.rep,
                                    params={"fields": "email"})
    assert got == {"id": org.rep.user_id, "email": org.rep.email}


async def test_a_list_keeps_the_fields_on_every_row_with_its_filters_and_cursor(world):
    org = await world.make_org()
    for i in range(3):
        await world.create_lead(org.rep, email=f"l{i}@example.com")
    resp, page = await world.request("GET", "/api/v1/leads", as_=org.rep,
                                     params={"fields": "email", "limit": "2", "sort": "created_at"})
    assert resp.status == 200 and [set(row) for row in page["data"]] == [{"id", "email"}] * 2
    assert [row["email"] for row in page["data"]] == ["l0@example.com", "l1@example.com"]
    resp, page = await world.request("GET", "/api/v1/leads", as_=org.rep,
                                     params={"fields": "email", "limit": "2", "sort": "created_at",
                                             "cursor": page["next_cursor"]})
    assert page["data"] == [{"id": page["data"][0]["id"], "email": "l2@example.com"}]


async def test_an_unknown_field_is_a_422_naming_it_and_the_allowed_ones(world):
    org = await world.make_org()
    lead = await world.create_lead(org.rep)
    for path in ("/api/v1/leads", f"/api/v1/leads/{lead['id']}"):
        resp, err = await world.request("GET", path, as_=org.rep, params={"fields": "email,password_hash"})
        assert resp.status == 422, path
        assert err["error"]["code"] == "invalid_fields" and "password_hash" in err["error"]["message"]
        assert err["error"]["details"]["field"] == "password_hash"
        assert {"id", "email", "ai_score"} <= set(err["error"]["details"]["allowed"])
    for bad in ("", ",", "email,,title"):
        resp, err = await world.request("GET", "/api/v1/leads", as_=org.rep, params={"fields": bad})
        assert resp.status == 422 and err["error"]["code"] == "invalid_fields", bad
    resp, err = await world.request("GET", "/api/v1/leads?fields=email&fields=title", as_=org.rep)
    assert resp.status == 422


async def test_the_document_declares_fields_where_it_is_taken(world):
    paths = world.openapi["paths"]
    for path in ("/api/v1/leads", "/api/v1/leads/{id}", "/api/v1/deals", "/api/v1/calls/{id}", "/api/v1/users"):
        params = {p["name"]: p for p in paths[path]["get"]["parameters"]}
        assert params["fields"]["in"] == "query", path
        assert re.fullmatch(params["fields"]["schema"]["pattern"], "id, created_at"), path
        assert "422" in paths[path]["get"]["responses"]
    assert "fields" not in {p["name"] for p in paths["/api/v1/me"]["get"].get("parameters", [])}
