"""q= on the leads and deals lists and GET /api/v1/search: matching, ranking, reach, bad text."""


async def _names(world, path, person, **params):
    resp, page = await world.request("GET", path, as_=person, params=params)
    assert resp.status == 200, page
    return page


async def test_leads_q_matches_names_company_email_and_phone_ranked(world):
    org = await world.make_org()
    exact = await world.create_lead(
        org.rep, first_name="Grace", last_name="Hopper", email="grace@navy.test"
    )
    also = await world.create_lead(
        org.rep, first_name="Graceful", last_name="Exit", company="Grace Hopper Fans"
    )
    await world.create_lead(
        org.rep, first_name="Alan", last_name="Turing", phone="+44 20 7946 0958"
    )
    page = await _names(world, "/api/v1/leads", org.rep, q="grace hopper")
    assert [x["id"] for x in page["data"]] == [exact["id"], also["id"]]
    page = await _names(world, "/api/v1/leads", org.rep, q="grace@navy.test")
    assert [x["id"] for x in page["data"]] == [exact["id"]]
    page = await _names(world, "/api/v1/leads", org.rep, q="grace@na")
    assert [x["id"] for x in page["data"]] == [exact["id"]]
    page = await _names(world, "/api/v1/leads", org.rep, q="020 7946 0958")
    assert [x["last_name"] for x in page["data"]] == ["Turing"]
    page = await _names(world, "/api/v1/leads", org.rep, q="GRAC")  # a word's beginning, any case
    assert {x["id"] for x in page["data"]} == {exact["id"], also["id"]}
    # q with filters, another sort, and the cursor across pages
    page = await _names(world, "/api/v1/leads", org.rep, q="grace", sort="last_name")
    assert [x["last_name"] for x in page["data"]] == ["Exit", "Hopper"]
    first = await _names(world, "/api/v1/leads", org.rep, q="grace", limit="1")
    second = await _names(
        world, "/api/v1/leads", org.rep, q="grace", limit="1", cursor=first["next_cursor"]
    )
    assert [first["data"][0]["id"], second["data"][0]["id"]] == [exact["id"], also["id"]]
    assert second["next_cursor"] is None


async def test_q_sees_only_what_the_list_sees(world):
    org, other = await world.make_org(), await world.make_org()
    mine = await world.create_lead(org.rep, last_name="Zanzibar")
    await world.create_lead(org.other_rep, last_name="Zanzibar")  # same team, not the rep's
    await world.create_lead(other.admin, last_name="Zanzibar")  # another tenant
    await world.create_deal(org.other_rep, name="Zanzibar deal")
    deal = await world.create_deal(org.rep, name="Zanzibar expansion", company="Zanzi Ltd")
    page = await _names(world, "/api/v1/leads", org.rep, q="zanzibar")
    assert [x["id"] for x in page["data"]] == [mine["id"]]
    page = await _names(world, "/api/v1/deals", org.rep, q="zanzibar")
    assert [x["id"] for x in page["data"]] == [deal["id"]]
    page = await _names(world, "/api/v1/leads", org.manager, q="zanzibar")
    assert len(page["data"]) == 2
    resp, got = await world.request("GET", "/api/v1/search", as_=org.rep, params={"q": "zanzibar"})
    assert resp.status == 200, got
    assert [h["lead"]["id"] for h in got["leads"]] == [mine["id"]]
    assert [h["deal"]["id"] for h in got["deals"]] == [deal["id"]]
    assert got["leads"][0]["rank"] > 0
    resp, got = await world.request(
        "GET", "/api/v1/search", as_=other.admin, params={"q": "zanzibar", "types": "deals"}
    )
    assert resp.status == 200 and got["deals"] == [] and got.get("leads") is None


async def test_search_groups_follow_the_tokens_scopes(world):
    org = await world.make_org()
    await world.create_lead(org.admin, last_name="Quixote")
    await world.create_deal(org.admin, name="Quixote windmills")
    resp, minted = await world.request(
        "POST",
        "/api/v1/api-tokens",
        as_=org.admin,
        json={"name": "leads only", "scopes": ["leads:read"]},
    )
    assert resp.status == 201, minted
    headers = {"Authorization": f"Bearer {minted['token']}"}
    resp, got = await world.request(
        "GET", "/api/v1/search", params={"q": "quixote"}, headers=headers
    )
    assert resp.status == 200, got
    assert len(got["leads"]) == 1 and got.get("deals") is None
    resp, err = await world.request(
        "GET", "/api/v1/search", params={"q": "quixote", "types": "deals"}, headers=headers
    )
    assert (resp.status, err["error"]["code"]) == (403, "insufficient_scope")


async def test_bad_q_is_400_in_the_one_error_shape(world):
    org = await world.make_org()
    cases = [
        {"q": ""},
        {"q": "   "},
        {"q": "!!! ???"},
        {"q": "x" * 201},
        {"q": "a\x00b"},
        {"q": "a b c d e f g h i"},
    ]
    for params in cases:
        for path in ("/api/v1/leads", "/api/v1/deals", "/api/v1/search"):
            resp, err = await world.request("GET", path, as_=org.rep, params=params)
            assert resp.status == 400, (path, params, err)
            assert err["error"]["code"] == "invalid_query" and set(err["error"]) == {
                "code",
                "message",
                "details",
            }
    resp, err = await world.request(
        "GET", "/api/v1/leads", as_=org.rep, params={"q": "ada", "sort": "bogus"}
    )
    assert (resp.status, err["error"]["code"]) == (400, "invalid_sort")


async def test_tsquery_syntax_in_q_is_text_not_syntax(world):
    org = await world.make_org()
    await world.create_lead(org.rep, last_name="Or")
    for q in ("a & | !b", "':* (", "100%", "o'r", "\\"):
        resp, _ = await world.request("GET", "/api/v1/leads", as_=org.rep, params={"q": q})
        assert resp.status in (200, 400), q
    resp, _ = await world.request(
        "GET", "/api/v1/search", as_=org.rep, params={"q": "relevance", "bogus": "1"}
    )
    assert resp.status == 400
    resp, _ = await world.request(
        "GET", "/api/v1/leads", as_=org.rep, params={"sort": "-relevance"}
    )
    assert resp.status == 400  # relevance needs q
