"""POST /api/v1/calls/outbound: the call is recorded, then the carrier edge's Dialer dials."""

# `carrier` (tests/crm_core/conftest.py) stands in for a carrier's network.


async def test_outbound_call_is_recorded_dialed_and_on_the_timeline(carrier, world):
    org = await world.make_org()
    lead = await world.create_lead(org.rep, phone="+14155550100")
    resp, call = await world.request("POST", "/api/v1/calls/outbound", as_=org.rep,
                                     json={"to_number": "+14155550100", "lead_id": lead["id"]},
                                     headers={"Idempotency-Key": "dial-1"})
    assert resp.status == 201, call
    assert (call["status"], call["external_id"], call["carrier"], call["rep_id"], call["lead_id"]) == (
        "ringing", "CA0001", "sip", org.rep.user_id, lead["id"])
    assert carrier.placed[0].call_id == call["id"]
    # a retry with the same key does not dial twice
    resp, again = await world.request("POST", "/api/v1/calls/outbound", as_=org.rep,
                                      json={"to_number": "+14155550100", "lead_id": lead["id"]},
                                      headers={"Idempotency-Key": "dial-1"})
    assert again == call and len(carrier.placed) == 1
    _, timeline = await world.request("GET", "/api/v1/activities", as_=org.rep, params={"lead_id": lead["id"]})
    assert [(a["kind"], a["call_id"]) for a in timeline["data"]] == [("call", call["id"])]


async def test_refusals(carrier, world):
    org = await world.make_org()
    theirs = await world.create_lead(org.other_rep)
    resp, _ = await world.request("POST", "/api/v1/calls/outbound", as_=org.rep,
                                  json={"to_number": "+14155550100", "lead_id": theirs["id"]})
    assert resp.status == 404
    resp, err = await world.request("POST", "/api/v1/calls/outbound", as_=org.rep,
                                    json={"to_number": "+14155550100", "carrier": "vonage"})
    assert (resp.status, err["error"]["code"]) == (422, "unknown_carrier")
    resp, err = await world.request("POST", "/api/v1/calls/outbound", as_=org.rep, json={"to_number": "call me"})
    assert resp.status == 422
    carrier.refuse = True
    resp, err = await world.request("POST", "/api/v1/calls/outbound", as_=org.rep,
                                    json={"to_number": "+14155550100", "carrier": "twilio"})
    assert (resp.status, err["error"]["code"]) == (502, "carrier_error")
    _, failed = await world.request("GET", f"/api/v1/calls/{err['error']['details']['call_id']}", as_=org.rep)
    assert failed["status"] == "failed"


async def test_without_a_dialer_the_endpoint_is_503(world):
    org = await world.make_org()
    resp, err = await world.request("POST", "/api/v1/calls/outbound", as_=org.rep,
                                    json={"to_number": "+14155550100"})
    assert (resp.status, err["error"]["code"]) == (503, "dialing_unavailable")
