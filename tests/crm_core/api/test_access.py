"""Who may see and change what: the access matrix, tenant isolation, transcript masking."""

import pytest

from crm_core.calls.records import NewCall, SegmentRow, add_final_segments, create_call

# Whose record (owner) x who asks -> may they see it / change it?
# Rule: reps their own; managers also their team's; admins the whole organization.
# Records out of reach answer 404, exactly like records that do not exist.
MATRIX = [
    # owner,        asker,          visible
    ("rep",          "rep",          True),
    ("rep",          "other_rep",    False),
    ("rep",          "outsider_rep", False),
    ("rep",          "manager",      True),
    ("rep",          "admin",        True),
    ("outsider_rep", "manager",      False),
    ("outsider_rep", "admin",        True),
    ("manager",      "rep",          False),
    ("manager",      "manager",      True),
    ("admin",        "manager",      False),
]


@pytest.mark.parametrize("resource", ["leads", "deals"])
async def test_access_matrix_for_owned_records(world, resource):
    org = await world.make_org()
    make = world.create_lead if resource == "leads" else world.create_deal
    records = {owner: await make(getattr(org, owner)) for owner in {row[0] for row in MATRIX}}
    for owner, asker, visible in MATRIX:
        record = records[owner]
        person = getattr(org, asker)
        path = f"/api/v1/{resource}/{record['id']}"
        want = 200 if visible else 404
        resp, _ = await world.request("GET", path, as_=person)
        assert resp.status == want, (owner, asker, "GET")
        field = {"leads": {"title": f"seen by {asker}"}, "deals": {"company": f"seen by {asker}"}}[resource]
        resp, _ = await world.request("PATCH", path, as_=person, json=field)
        assert resp.status == want, (owner, asker, "PATCH")
        _, page = await world.request("GET", f"/api/v1/{resource}", as_=person, params={"limit": "200"})
        assert (record["id"] in {r["id"] for r in page["data"]}) == visible, (owner, asker, "list")
        if not visible:
            resp, _ = await world.request("DELETE", path, as_=person)
            assert resp.status == 404, (owner, asker, "DELETE")


async def test_assigning_records_follows_the_same_reach(world):
    org = await world.make_org()
    for asker, owner, allowed in (("rep", "other_rep", False), ("manager", "rep", True),
                                  ("manager", "outsider_rep", False), ("admin", "outsider_rep", True)):
        resp, err = await world.request("POST", "/api/v1/leads", as_=getattr(org, asker),
                                        json={"first_name": "A", "owner_id": getattr(org, owner).user_id})
        assert resp.status == (201 if allowed else 403), (asker, owner, err)
    lead = await world.create_lead(org.rep)
    resp, err = await world.request("PATCH", f"/api/v1/leads/{lead['id']}", as_=org.rep,
                                    json={"owner_id": org.other_rep.user_id})
    assert (resp.status, err["error"]["code"]) == (403, "invalid_owner")
    resp, err = await world.request("PATCH", f"/api/v1/leads/{lead['id']}", as_=org.rep, json={"owner_id": None})
    assert (resp.status, err["error"]["code"]) == (403, "invalid_owner")
    resp, unassigned = await world.request("PATCH", f"/api/v1/leads/{lead['id']}", as_=org.manager,
                                           json={"owner_id": None})
    assert resp.status == 200 and unassigned["owner_id"] is None


async def test_organizations_never_see_each_other(world):
    acme, globex = await world.make_org(), await world.make_org()
    lead = await world.create_lead(acme.admin)
    deal = await world.create_deal(acme.admin, lead_id=lead["id"])
    await world.request("POST", "/api/v1/activities", as_=acme.admin,
                        json={"lead_id": lead["id"], "text": "secret note"})
    for path in (f"/api/v1/leads/{lead['id']}", f"/api/v1/deals/{deal['id']}",
                 f"/api/v1/users/{acme.rep.user_id}", f"/api/v1/teams/{acme.team_id}"):
        resp, _ = await world.request("GET", path, as_=globex.admin)
        assert resp.status == 404, path
    resp, _ = await world.request("PATCH", f"/api/v1/leads/{lead['id']}", as_=globex.admin, json={"title": "x"})
    assert resp.status == 404
    resp, _ = await world.request("POST", f"/api/v1/leads/{lead['id']}/convert", as_=globex.admin, json={})
    assert resp.status == 404
    resp, _ = await world.request("POST", "/api/v1/deals", as_=globex.admin,
                                  json={"name": "steal", "lead_id": lead["id"]})
    assert resp.status == 404
    resp, _ = await world.request("POST", "/api/v1/leads", as_=globex.admin,
                                  json={"first_name": "x", "owner_id": acme.rep.user_id})
    assert resp.status == 403
    for collection in ("leads", "deals", "activities", "users", "teams", "calls", "api-tokens"):
        _, page = await world.request("GET", f"/api/v1/{collection}", as_=globex.admin, params={"limit": "200"})
        ids = {r["id"] for r in page["data"]}
        assert not ids & {lead["id"], deal["id"], acme.rep.user_id, acme.team_id}, collection
    _, timeline = await world.request("GET", "/api/v1/activities", as_=globex.admin,
                                      params={"lead_id": lead["id"]})
    assert timeline["data"] == []


async def _call_with_transcript(world, org, rep):
    async with world.pool.acquire() as conn:
        call = await create_call(conn, NewCall(org.id, "twilio", "inbound", external_id=f"CA-{rep.user_id}",
                                               rep_id=rep.user_id))
        await add_final_segments(conn, org.id, str(call["id"]), [
            SegmentRow("c-1", "customer", 0, 1500, "my card is [card] and mail me at [email]",
                       [], speaker="Customer", text_raw="my card is 4111 1111 1111 1111 and mail me at a@b.co"),
            SegmentRow("r-1", "rep", 1600, 2500, "call 555 123 4567 anytime", [], speaker="Rep"),
        ])
    return str(call["id"])


async def test_calls_and_transcripts_follow_ownership_and_mask_pii(world):
    org = await world.make_org()
    call_id = await _call_with_transcript(world, org, org.rep)
    for asker, visible in (("rep", True), ("other_rep", False), ("manager", True), ("admin", True)):
        resp, _ = await world.request("GET", f"/api/v1/calls/{call_id}", as_=getattr(org, asker))
        assert resp.status == (200 if visible else 404), asker
    resp, masked = await world.request("GET", f"/api/v1/calls/{call_id}/transcript", as_=org.rep)
    assert masked["masked"] is True
    assert [s["text"] for s in masked["segments"]] == [
        "my card is [card] and mail me at [email]", "call ########## anytime"]
    assert masked["segments"][0]["speaker"] == "Customer" and masked["segments"][0]["party"] == "customer"
    resp, raw = await world.request("GET", f"/api/v1/calls/{call_id}/transcript", as_=org.admin)
    assert raw["masked"] is False and "4111 1111 1111 1111" in raw["segments"][0]["text"]
    _, page = await world.request("GET", "/api/v1/calls", as_=org.manager, params={"direction": "inbound"})
    assert [c["id"] for c in page["data"]] == [call_id]
    _, page = await world.request("GET", "/api/v1/calls", as_=org.other_rep)
    assert page["data"] == []


async def test_activities_timeline_is_newest_first_and_follows_reach(world):
    org = await world.make_org()
    lead = await world.create_lead(org.rep)
    for i, at in enumerate(("2026-01-01T10:00:00Z", "2026-03-01T10:00:00Z", "2026-02-01T10:00:00Z")):
        resp, _ = await world.request("POST", "/api/v1/activities", as_=org.rep,
                                      json={"lead_id": lead["id"], "text": f"note {i}", "occurred_at": at})
        assert resp.status == 201
    _, page = await world.request("GET", "/api/v1/activities", as_=org.manager, params={"lead_id": lead["id"]})
    assert [a["body"]["text"] for a in page["data"]] == ["note 1", "note 2", "note 0"]
    _, page = await world.request("GET", "/api/v1/activities", as_=org.other_rep, params={"lead_id": lead["id"]})
    assert page["data"] == []
    resp, _ = await world.request("POST", "/api/v1/activities", as_=org.other_rep,
                                  json={"lead_id": lead["id"], "text": "sneaky"})
    assert resp.status == 404
    resp, _ = await world.request("POST", "/api/v1/activities", as_=org.rep, json={"text": "no subject"})
    assert resp.status == 422


async def test_a_territory_narrows_what_non_admins_see(world):
    org = await world.make_org()
    emea = await world.create_lead(org.rep, territory="EMEA")
    apac = await world.create_lead(org.rep, territory="APAC")
    anywhere = await world.create_lead(org.rep)
    async with world.pool.acquire() as conn:
        await conn.execute("UPDATE users SET territory = 'EMEA' WHERE id = $1", org.manager.user_id)
    _, page = await world.request("GET", "/api/v1/leads", as_=org.manager)
    assert {x["id"] for x in page["data"]} == {emea["id"], anywhere["id"]}
    resp, _ = await world.request("GET", f"/api/v1/leads/{apac['id']}", as_=org.manager)
    assert resp.status == 404
    _, page = await world.request("GET", "/api/v1/leads", as_=org.admin)
    assert {x["id"] for x in page["data"]} >= {emea["id"], apac["id"], anywhere["id"]}


# /api/v1/scoring is administration (permission scoring:manage): everyone else 403.
SCORING_OPERATIONS = [
    ("GET", "/api/v1/scoring/lead-models", None),
    ("POST", "/api/v1/scoring/lead-models", None),
    ("GET", "/api/v1/scoring/deal-models", None),
    ("POST", "/api/v1/scoring/deal-models", None),
    ("GET", "/api/v1/scoring/icp", None),
    ("PUT", "/api/v1/scoring/icp", {"icp": {"base": 10}}),
]


async def test_scoring_administration_is_for_admins_only(world):
    org = await world.make_org()
    for method, path, body in SCORING_OPERATIONS:
        for person in (org.rep, org.manager, org.outsider_rep):
            resp, err = await world.request(method, path, as_=person, json=body)
            assert (resp.status, err["error"]["code"]) == (403, "forbidden"), (method, path, person.role)
        resp, _ = await world.request(method, path, json=body)
        assert resp.status == 401, (method, path)
        resp, _ = await world.request(method, path, as_=org.admin, json=body)
        assert resp.status in (200, 201, 422), (method, path)  # 422: no history to train on yet


async def test_calls_filter_by_keyword_heard_and_customer_sentiment(world):
    org = await world.make_org()
    calls = {}
    async with world.pool.acquire() as conn:
        for name, counts, sentiments in (("angry_pricing", {"pricing": 2, "competitor": 0}, [-0.6, -0.2]),
                                         ("happy_competitor", {"competitor": 1}, [0.5, 0.7]),
                                         ("quiet", None, [])):
            call = await create_call(conn, NewCall(org.id, "twilio", "inbound", external_id=f"CA-{name}-{org.id}",
                                                   rep_id=org.rep.user_id))
            calls[name] = str(call["id"])
            if counts is not None:
                # the pool's jsonb codec encodes the dict
                await conn.execute("UPDATE calls SET summary = $2 WHERE id = $1", call["id"],
                                   {"keyword_counts": counts})
            await add_final_segments(conn, org.id, str(call["id"]), [
                SegmentRow(f"c-{i}", "customer", i * 1000, i * 1000 + 900, "words", [], sentiment=value)
                for i, value in enumerate(sentiments)
            ] + [SegmentRow("r-0", "rep", 5000, 5900, "rep words", [], sentiment=0.9)])
        # one mixed channel (Vonage): the customer's lines are those labelled as theirs
        mixed = await create_call(conn, NewCall(org.id, "vonage", "inbound", external_id=f"mixed-{org.id}",
                                                rep_id=org.rep.user_id))
        calls["mixed_angry"] = str(mixed["id"])
        await add_final_segments(conn, org.id, calls["mixed_angry"], [
            SegmentRow("m-0", "mixed", 0, 900, "words", [], speaker="customer", sentiment=-0.8),
            SegmentRow("m-1", "mixed", 1000, 1900, "words", [], speaker="rep", sentiment=0.9)])

    async def listed(**params):
        resp, page = await world.request("GET", "/api/v1/calls", as_=org.manager, params=params)
        assert resp.status == 200, page
        return {c["id"] for c in page["data"]}

    assert await listed(keyword="pricing") == {calls["angry_pricing"]}
    # a category counted zero times was not heard
    assert await listed(keyword="competitor") == {calls["happy_competitor"]}
    assert await listed(keyword="pricing,competitor") == {calls["angry_pricing"], calls["happy_competitor"]}
    # the customer's mean, not the rep's: the rep sounded happy on every call
    assert await listed(customer_sentiment_below="0") == {calls["angry_pricing"], calls["mixed_angry"]}
    assert await listed(customer_sentiment_above="0.55") == {calls["happy_competitor"]}
    assert await listed(customer_sentiment_above="-1", keyword="pricing") == {calls["angry_pricing"]}
    resp, err = await world.request("GET", "/api/v1/calls", as_=org.manager,
                                    params={"customer_sentiment_below": "sad"})
    assert resp.status == 400 and err["error"]["code"] == "invalid_filter"
    # filters narrow what the caller may see, never widen it: another rep sees none of these calls
    resp, page = await world.request("GET", "/api/v1/calls", as_=org.other_rep, params={"keyword": "pricing"})
    assert page["data"] == []
