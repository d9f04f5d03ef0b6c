"""CSV lead imports: per-row errors, all-or-nothing, partial, progress, limits."""

import asyncio

GOOD = "first_name,last_name,email,company,company_size,title\n" \
       "Ada,Lovelace,ada@example.com,Analytical,300,CTO\n" \
       "Grace,Hopper,grace@example.com,Navy,5000,Rear Admiral\n"
BAD = GOOD + "Alan,Turing,not-an-email,Bletchley,-5,\n" + ",,,,,\n"


async def _import(world, person, text, mode=None, headers=None):
    params = {"mode": mode} if mode else None
    resp, job = await world.request("POST", "/api/v1/leads/import", as_=person, data=text.encode(),
                                    params=params, headers={"Content-Type": "text/csv", **(headers or {})})
    if resp.status != 202:
        return resp, job
    for _ in range(200):
        if job["status"] != "running":
            break
        await asyncio.sleep(0.05)
        _, job = await world.request("GET", f"/api/v1/imports/{job['id']}", as_=person)
    return resp, job


async def _lead_count(world, org):
    async with world.pool.acquire() as conn:
        return await conn.fetchval("SELECT count(*) FROM leads WHERE org_id = $1", org.id)


async def test_good_file_imports_every_row_with_scores(world):
    org = await world.make_org()
    resp, job = await _import(world, org.manager, GOOD)
    assert resp.status == 202 and resp.headers["Location"] == f"/api/v1/imports/{job['id']}"
    assert (job["status"], job["total_rows"], job["imported_rows"], job["progress"]) == ("completed", 2, 2, 1.0)
    _, page = await world.request("GET", "/api/v1/leads", as_=org.manager, params={"sort": "last_name"})
    assert [(x["last_name"], x["owner_id"]) for x in page["data"]] == [
        ("Hopper", org.manager.user_id), ("Lovelace", org.manager.user_id)]
    assert all(x["grade"] in "ABCDEF" for x in page["data"])


async def test_all_or_nothing_reports_every_bad_row_and_imports_nothing(world):
    org = await world.make_org()
    resp, job = await _import(world, org.admin, BAD)
    assert resp.status == 202 and job["status"] == "failed" and job["imported_rows"] == 0
    assert job["total_rows"] == 4
    by_row = {(e["row"], e["field"]) for e in job["errors"]}
    assert {(3, "email"), (3, "company_size"), (4, None)} <= by_row
    assert await _lead_count(world, org) == 0


async def test_partial_mode_imports_the_good_rows(world):
    org = await world.make_org()
    _, job = await _import(world, org.admin, BAD, mode="partial")
    assert (job["status"], job["imported_rows"], job["processed_rows"]) == ("completed", 2, 4)
    assert {e["row"] for e in job["errors"]} == {3, 4}
    assert await _lead_count(world, org) == 2


async def test_malformed_files_and_modes_are_refused(world):
    org = await world.make_org()
    resp, err = await _import(world, org.admin, "first_name,shoe_size\nA,42\n")
    assert (resp.status, err["error"]["code"]) == (422, "invalid_csv")
    assert err["error"]["details"]["unknown"] == ["shoe_size"]
    resp, err = await _import(world, org.admin, "")
    assert (resp.status, err["error"]["code"]) == (422, "invalid_csv")
    resp, err = await _import(world, org.admin, GOOD, mode="most")
    assert (resp.status, err["error"]["code"]) == (400, "invalid_mode")
    resp, err = await _import(world, org.rep, GOOD)
    assert resp.status == 403
    resp, err = await world.request("POST", "/api/v1/leads/import", as_=org.admin,
                                    data=b"\xff\xfe bad bytes", headers={"Content-Type": "text/csv"})
    assert (resp.status, err["error"]["code"]) == (400, "invalid_csv")


async def test_oversized_files_are_413(world):
    org = await world.make_org()
    limit = 10 * 1024 * 1024
    line = "A,B,a@b.co,C,10,T\n"
    text = "first_name,last_name,email,company,company_size,title\n" + line * (limit // len(line) + 10)
    resp, err = await _import(world, org.admin, text)
    assert (resp.status, err["error"]["code"]) == (413, "payload_too_large")


async def test_import_jobs_follow_reach_and_replay_with_idempotency_key(world):
    org = await world.make_org()
    key = {"Idempotency-Key": "import-1"}
    _, job1 = await _import(world, org.manager, GOOD, headers=key)
    resp2, job2 = await world.request("POST", "/api/v1/leads/import", as_=org.manager, data=GOOD.encode(),
                                      headers={"Content-Type": "text/csv", **key})
    assert resp2.status == 202 and job2["id"] == job1["id"]
    assert await _lead_count(world, org) == 2
    resp, _ = await world.request("GET", f"/api/v1/imports/{job1['id']}", as_=org.other_rep)
    assert resp.status == 404
