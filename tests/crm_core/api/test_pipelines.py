"""Pipelines and stages: a deal's stage is one of its pipeline's, its type closes and reopens it,
its history is kept, admins shape the pipelines, and prediction reads the type, never the name."""

DEFAULT_STAGES = ["qualification", "discovery", "demo", "proposal", "negotiation", "closed_won", "closed_lost"]


async def _default(world, who):
    resp, page = await world.request("GET", "/api/v1/pipelines", as_=who)
    assert resp.status == 200, page
    [pipeline] = [p for p in page["data"] if p["is_default"]]
    return pipeline


async def test_a_new_organisation_has_the_default_pipeline(world):
    org = await world.make_org()
    pipeline = await _default(world, org.rep)
    assert pipeline["name"] == "default"
    assert [s["name"] for s in pipeline["stages"]] == DEFAULT_STAGES
    assert [s["type"] for s in pipeline["stages"]] == ["open"] * 5 + ["won", "lost"]
    assert [s["position"] for s in pipeline["stages"]] == list(range(7))
    deal = await world.create_deal(org.rep)
    assert (deal["pipeline"], deal["stage"], deal["pipeline_id"]) == ("default", "qualification", pipeline["id"])
    resp, one = await world.request("GET", f"/api/v1/pipelines/{pipeline['id']}", as_=org.rep)
    assert resp.status == 200 and one["stages"][0]["deal_count"] == 1


async def test_a_stage_outside_the_pipeline_is_refused_with_the_allowed_values(world):
    org = await world.make_org()
    resp, err = await world.request("POST", "/api/v1/deals", as_=org.rep, json={"name": "x", "stage": "negotiaton"})
    assert (resp.status, err["error"]["code"]) == (422, "unknown_stage")
    assert err["error"]["details"][0]["allowed"] == DEFAULT_STAGES
    assert err["error"]["details"][0]["loc"] == ["body", "stage"]
    resp, err = await world.request("POST", "/api/v1/deals", as_=org.rep, json={"name": "x", "pipeline": "nope"})
    assert (resp.status, err["error"]["code"], err["error"]["details"][0]["allowed"]) == (
        422, "unknown_pipeline", ["default"])
    deal = await world.create_deal(org.rep)
    resp, err = await world.request("PATCH", f"/api/v1/deals/{deal['id']}", as_=org.rep, json={"stage": "Won"})
    assert (resp.status, err["error"]["code"]) == (422, "unknown_stage")
    resp, err = await world.request("POST", f"/api/v1/leads/{(await world.create_lead(org.rep))['id']}/convert",
                                    as_=org.rep, json={"stage": "negotiaton"})
    assert (resp.status, err["error"]["code"]) == (422, "unknown_stage")


async def test_won_and_lost_stages_close_the_deal_and_an_open_one_reopens_it(world):
    org = await world.make_org()
    deal = await world.create_deal(org.rep, stage="proposal")
    url = f"/api/v1/deals/{deal['id']}"
    resp, err = await world.request("PATCH", url, as_=org.rep, json={"lost_reason": "price"})
    assert (resp.status, err["error"]["details"][0]["type"]) == (422, "lost_reason_without_lost_stage")
    resp, lost = await world.request("PATCH", url, as_=org.rep, json={"stage": "closed_lost", "lost_reason": "price"})
    assert resp.status == 200, lost
    assert lost["closed_at"] is not None and lost["lost_reason"] == "price"
    resp, reopened = await world.request("PATCH", url, as_=org.rep, json={"stage": "negotiation"})
    assert (reopened["closed_at"], reopened["lost_reason"]) == (None, None)
    resp, won = await world.request("PATCH", url, as_=org.rep, json={"stage": "closed_won"})
    assert won["closed_at"] is not None and won["lost_reason"] is None
    # created straight into a closed stage: closed at once
    closed = await world.create_deal(org.rep, stage="closed_lost", lost_reason="timing")
    assert closed["closed_at"] is not None and closed["lost_reason"] == "timing"

    resp, history = await world.request("GET", f"{url}/stage-history", as_=org.rep)
    assert resp.status == 200, history
    entries = history["data"]
    assert [(e["stage"], e["type"]) for e in entries] == [
        ("proposal", "open"), ("closed_lost", "lost"), ("negotiation", "open"), ("closed_won", "won")]
    assert all(e["left_at"] is not None for e in entries[:-1]) and entries[-1]["left_at"] is None
    assert all(e["seconds_in_stage"] >= 0 for e in entries)
    assert [e["entered_at"] for e in entries[1:]] == [e["left_at"] for e in entries[:-1]]
    resp, _ = await world.request("GET", f"{url}/stage-history", as_=org.other_rep)
    assert resp.status == 404


async def test_admins_shape_pipelines_and_a_stage_with_deals_stays(world):
    org = await world.make_org()
    resp, err = await world.request("POST", "/api/v1/pipelines", as_=org.manager,
                                    json={"name": "Partners", "stages": [{"name": "intro", "probability": 0.2}]})
    assert resp.status == 403, err
    resp, err = await world.request("POST", "/api/v1/pipelines", as_=org.admin,
                                    json={"name": "Partners", "stages": [{"name": "signed", "probability": 1,
                                                                           "type": "won"}]})
    assert (resp.status, err["error"]["details"][0]["type"]) == (422, "no_open_stage")
    resp, partners = await world.request("POST", "/api/v1/pipelines", as_=org.admin, json={
        "name": "Partners", "stages": [{"name": "intro", "probability": 0.2},
                                       {"name": "pilot", "probability": 0.5},
                                       {"name": "signed", "probability": 1, "type": "won"},
                                       {"name": "dropped", "probability": 0, "type": "lost"}]})
    assert resp.status == 201, partners
    resp, _ = await world.request("POST", "/api/v1/pipelines", as_=org.admin,
                                  json={"name": "Partners", "stages": [{"name": "a", "probability": 0.1}]})
    assert resp.status == 409
    ids = {s["name"]: s["id"] for s in partners["stages"]}
    base = f"/api/v1/pipelines/{partners['id']}"

    # a deal in another pipeline: its stages, not the default's; with no stage, the first open one
    deal = await world.create_deal(org.rep, pipeline="Partners")
    assert (deal["pipeline"], deal["stage"]) == ("Partners", "intro")
    resp, err = await world.request("PATCH", f"/api/v1/deals/{deal['id']}", as_=org.rep,
                                    json={"stage": "proposal"})
    assert (resp.status, err["error"]["details"][0]["allowed"]) == (422, ["intro", "pilot", "signed", "dropped"])
    resp, signed = await world.request("PATCH", f"/api/v1/deals/{deal['id']}", as_=org.rep, json={"stage": "signed"})
    assert signed["closed_at"] is not None  # a won stage closes whatever it is called

    resp, _ = await world.request("GET", f"/api/v1/deals/{deal['id']}", as_=org.rep)
    etag_before = resp.headers["ETag"]

    # add, reorder, rename, re-weight
    resp, grown = await world.request("POST", f"{base}/stages", as_=org.admin,
                                      json={"name": "legal", "probability": 0.7, "position": 2})
    assert resp.status == 201, grown
    assert [s["name"] for s in grown["stages"]] == ["intro", "pilot", "legal", "signed", "dropped"]
    legal = grown["stages"][2]["id"]
    resp, moved = await world.request("PATCH", f"{base}/stages/{legal}", as_=org.admin, json={"position": 0})
    assert [s["name"] for s in moved["stages"]] == ["legal", "intro", "pilot", "signed", "dropped"]
    assert [s["position"] for s in moved["stages"]] == list(range(5))
    resp, renamed = await world.request("PATCH", f"{base}/stages/{ids['signed']}", as_=org.admin,
                                        json={"name": "contract signed", "probability": 0.99})
    assert resp.status == 200, renamed
    resp, again = await world.request("GET", f"/api/v1/deals/{deal['id']}", as_=org.rep)
    assert again["stage"] == "contract signed"  # the deal shows the new name
    assert resp.headers["ETag"] != etag_before  # a cached copy is stale
    resp, _ = await world.request("PATCH", f"{base}/stages/{ids['intro']}", as_=org.admin, json={"name": "pilot"})
    assert resp.status == 409
    for path in (base, f"{base}/stages/{ids['intro']}"):
        resp, err = await world.request("PATCH", path, as_=org.admin, json={})
        assert (resp.status, err["error"]["code"]) == (400, "empty_update")

    # a stage with deals in it is neither deleted nor retyped; an empty one is deleted
    resp, err = await world.request("DELETE", f"{base}/stages/{ids['signed']}", as_=org.admin)
    assert (resp.status, err["error"]["code"], err["error"]["details"]["deals"]) == (409, "stage_in_use", 1)
    resp, err = await world.request("PATCH", f"{base}/stages/{ids['signed']}", as_=org.admin, json={"type": "open"})
    assert (resp.status, err["error"]["code"]) == (409, "stage_in_use")
    resp, _ = await world.request("DELETE", f"{base}/stages/{ids['signed']}", as_=org.rep)
    assert resp.status == 403
    resp, shrunk = await world.request("DELETE", f"{base}/stages/{ids['pilot']}", as_=org.admin)
    assert resp.status == 200 and "pilot" not in [s["name"] for s in shrunk["stages"]]
    assert [s["position"] for s in shrunk["stages"]] == list(range(4))

    # the default moves; deals that name no pipeline follow it; renaming shows on the deals
    resp, now_default = await world.request("PATCH", base, as_=org.admin, json={"is_default": True, "name": "Channel"})
    assert resp.status == 200 and now_default["is_default"] and now_default["name"] == "Channel"
    fresh = await world.create_deal(org.rep)
    assert (fresh["pipeline"], fresh["stage"]) == ("Channel", "legal")
    _, again = await world.request("GET", f"/api/v1/deals/{deal['id']}", as_=org.rep)
    assert again["pipeline"] == "Channel"
    _, page = await world.request("GET", "/api/v1/pipelines", as_=org.rep)
    assert [p["name"] for p in page["data"] if p["is_default"]] == ["Channel"]
    _, listed = await world.request("GET", "/api/v1/deals", as_=org.rep, params={"pipeline_id": partners["id"]})
    assert {d["id"] for d in listed["data"]} == {deal["id"], fresh["id"]}
    async with world.pool.acquire() as conn:
        actions = [r["action"] for r in await conn.fetch(
            "SELECT action FROM audit_log WHERE resource_id = $1 ORDER BY id", partners["id"])]
    assert actions == ["pipeline.create", "pipeline.stage_create", "pipeline.stage_update", "pipeline.stage_update",
                       "pipeline.stage_delete", "pipeline.update"]


async def test_prediction_reads_the_stage_type_not_its_name(world):
    """A stage called "won" that is open is an open deal; a won stage called anything is won."""
    org = await world.make_org()
    resp, pipeline = await world.request("POST", "/api/v1/pipelines", as_=org.admin, json={
        "name": "Odd names", "stages": [{"name": "won", "probability": 0.4},
                                        {"name": "handshake", "probability": 1, "type": "won"},
                                        {"name": "closed_won", "probability": 0, "type": "lost"}]})
    assert resp.status == 201, pipeline
    outcomes = {}
    for stage in ("won", "handshake", "closed_won"):
        deal = await world.create_deal(org.rep, pipeline="Odd names", stage=stage, value=20_000)
        assert (deal["closed_at"] is not None) == (stage != "won")
        resp, prediction = await world.request("POST", f"/api/v1/deals/{deal['id']}/predict", as_=org.rep)
        assert resp.status == 200, prediction
        outcomes[stage] = prediction
    assert 0 < outcomes["won"]["win_probability"] < 1
    assert "Deal is closed" not in " ".join(outcomes["won"]["reasons"])
    assert outcomes["handshake"]["win_probability"] == 1.0
    assert outcomes["closed_won"]["win_probability"] == 0.0


async def test_a_stage_deleted_while_a_deal_moves_into_it_is_a_409(world):
    """The deal's PATCH checked the stage, then waits on the delete's lock; when the delete
    commits the move is refused as a conflict, not a 500."""
    import asyncio
    import time

    org = await world.make_org()
    pipeline = await _default(world, org.rep)
    discovery = next(s for s in pipeline["stages"] if s["name"] == "discovery")
    deal = await world.create_deal(org.rep)
    async with world.pool.acquire() as deleter, world.pool.acquire() as watcher:
        tx = deleter.transaction()
        await tx.start()
        await deleter.execute("DELETE FROM pipeline_stages WHERE org_id = $1 AND id = $2", org.id,
                              discovery["id"])
        move = asyncio.create_task(world.request("PATCH", f"/api/v1/deals/{deal['id']}", as_=org.rep,
                                                 json={"stage": "discovery"}))
        deadline = time.monotonic() + 10
        while not await watcher.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'UPDATE deals%'"):
            assert time.monotonic() < deadline, "the move never waited on the delete"
            assert not move.done(), await move
            await asyncio.sleep(0.02)
        await tx.commit()
    resp, err = await move
    assert (resp.status, err["error"]["code"]) == (409, "reference_gone")
