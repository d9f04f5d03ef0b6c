"""GET /calls/{id}/caller (the rep screen's caller card) and the organization's review gate."""

import uuid

from crm_core.calls.records import NewCall, create_call


async def _call(world, org, rep, *, lead_id=None, status="in-progress", deal_id=None):
    async with world.pool.acquire() as conn:
        call = await create_call(
            conn,
            NewCall(
                org.id,
                "simulator",
                "inbound",
                external_id=uuid.uuid4().hex,
                rep_id=rep.user_id,
                lead_id=lead_id,
                deal_id=deal_id,
                status=status,
            ),
        )
    return str(call["id"])


async def test_the_card_shows_the_lead_its_open_deal_and_last_call(world):
    org = await world.make_org()
    lead = await world.create_lead(org.other_rep)  # another rep's lead calls our rep
    await world.create_deal(org.other_rep, lead_id=lead["id"], stage="closed_won", name="Old")
    deal = await world.create_deal(
        org.other_rep, lead_id=lead["id"], stage="proposal", name="Pilot"
    )
    earlier = await _call(world, org, org.rep, lead_id=lead["id"], status="completed")
    theirs = await _call(world, org, org.other_rep, lead_id=lead["id"], status="completed")
    call_id = await _call(world, org, org.rep, lead_id=lead["id"])

    resp, card = await world.request("GET", f"/api/v1/calls/{call_id}/caller", as_=org.rep)
    assert resp.status == 200, card
    assert card["lead"]["name"] == "Ada Lovelace" and card["lead"]["company"] == "Analytical"
    assert card["lead"]["visible"] is False  # the rep may not open another's lead
    assert (card["open_deal"]["name"], card["open_deal"]["stage"]) == ("Pilot", "proposal")
    assert card["open_deal"]["id"] == deal["id"]
    # the lead's call before this one was the other rep's: shown, but not as a link
    assert card["last_call"]["id"] is None and card["last_call"]["with_you"] is False
    assert card["may_review"] is True
    resp, card = await world.request("GET", f"/api/v1/calls/{call_id}/caller", as_=org.manager)
    assert card["lead"]["visible"] is True and card["last_call"]["id"] == theirs
    assert earlier != theirs

    # a call without a lead: an empty card, not an error
    bare = await _call(world, org, org.rep)
    resp, card = await world.request("GET", f"/api/v1/calls/{bare}/caller", as_=org.rep)
    assert resp.status == 200 and card["lead"] is None and card["open_deal"] is None
    # another rep of the team cannot see the call at all
    resp, _ = await world.request("GET", f"/api/v1/calls/{call_id}/caller", as_=org.other_rep)
    assert resp.status == 404


async def test_reps_review_their_own_calls_unless_the_organization_says_no(world):
    org = await world.make_org()
    call_id = await _call(world, org, org.rep, status="completed")
    for path in ("transcript", "prompts"):
        resp, _ = await world.request("GET", f"/api/v1/calls/{call_id}/{path}", as_=org.rep)
        assert resp.status == 200
    await world.pool.execute(
        "UPDATE organizations SET settings = settings || "
        "'{\"reps_review_own_calls\": false}' WHERE id = $1",
        uuid.UUID(org.id),
    )
    for path in ("transcript", "prompts"):
        resp, body = await world.request("GET", f"/api/v1/calls/{call_id}/{path}", as_=org.rep)
        assert resp.status == 403 and body["error"]["code"] == "review_not_allowed", body
        resp, _ = await world.request("GET", f"/api/v1/calls/{call_id}/{path}", as_=org.manager)
        assert resp.status == 200
    _, card = await world.request("GET", f"/api/v1/calls/{call_id}/caller", as_=org.rep)
    assert card["may_review"] is False
    _, card = await world.request("GET", f"/api/v1/calls/{call_id}/caller", as_=org.manager)
    assert card["may_review"] is True
