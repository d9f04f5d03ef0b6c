"""CSV import and existing leads: on_duplicate=skip|update|create, counts per outcome, per-row results."""

import asyncio

HEADER = "first_name,last_name,email,phone,title\n"


async def _import(world, person, text, **params):
    resp, job = await world.request(
        "POST",
        "/api/v1/leads/import",
        as_=person,
        data=text.encode(),
        params=params or None,
        headers={"Content-Type": "text/csv"},
    )
    assert resp.status == 202, job
    deadline = asyncio.get_running_loop().time() + 20
    while job["status"] == "running" and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.05)
        _, job = await world.request("GET", f"/api/v1/imports/{job['id']}", as_=person)
    return job


async def _leads(world, org):
    async with world.pool.acquire() as conn:
        return await conn.fetch(
            "SELECT * FROM leads WHERE org_id = $1 ORDER BY created_at, id", org.id
        )


FILE = (
    HEADER
    + "Ada,Lovelace,ADA@example.com,,CTO\n"  # the existing lead's e-mail
    + "Bob,Phone,,+1 415 555 0101,Buyer\n"  # the existing lead's phone
    + "New,Person,new@example.com,,\n"
    + "New,Again,NEW@example.com ,,\n"  # an earlier row's e-mail
    + "Bad,Row,not-an-email,,\n"
)


async def _world(world):
    org = await world.make_org()
    ada = await world.create_lead(org.manager, email="ada@example.com")
    bob = await world.create_lead(org.manager, phone="(415) 555-0101")
    await world.request("GET", "/api/v1/leads", as_=org.manager)
    async with world.pool.acquire() as conn:
        await conn.execute(
            """UPDATE organizations SET settings = settings || '{"phone_region": "US"}' WHERE id = $1""",
            org.id,
        )
    return org, ada, bob


async def test_skip_is_the_default_and_reports_each_row(world):
    org, ada, bob = await _world(world)
    job = await _import(world, org.manager, FILE, mode="partial")
    assert job["status"] == "completed" and job["on_duplicate"] == "skip"
    assert job["outcomes"] == {"created": 1, "updated": 0, "skipped": 3, "failed": 1}
    by_row = {r["row"]: r for r in job["results"]}
    assert (by_row[1]["outcome"], by_row[1]["lead_id"], by_row[1]["key"]) == (
        "skipped",
        ada["id"],
        "email",
    )
    assert (by_row[2]["outcome"], by_row[2]["lead_id"], by_row[2]["key"]) == (
        "skipped",
        bob["id"],
        "phone",
    )
    assert by_row[3]["outcome"] == "created" and by_row[4] == {
        **by_row[4],
        "outcome": "skipped",
        "lead_id": by_row[3]["lead_id"],
    }
    assert 5 not in by_row and job["errors"][0]["row"] == 5
    assert len(await _leads(world, org)) == 3
    # the same file again changes nothing: no more doubled leads
    again = await _import(world, org.manager, FILE, mode="partial")
    assert again["outcomes"] == {"created": 0, "updated": 0, "skipped": 4, "failed": 1}
    assert len(await _leads(world, org)) == 3


async def test_update_writes_the_rows_cells_onto_the_matched_lead(world):
    org, ada, bob = await _world(world)
    job = await _import(world, org.manager, FILE, mode="partial", on_duplicate="update")
    assert job["outcomes"] == {"created": 1, "updated": 3, "skipped": 0, "failed": 1}
    rows = {str(r["id"]): r for r in await _leads(world, org)}
    assert len(rows) == 3
    assert (rows[ada["id"]]["title"], rows[ada["id"]]["last_name"]) == ("CTO", "Lovelace")
    assert rows[bob["id"]]["title"] == "Buyer" and rows[bob["id"]]["phone"] == "+1 415 555 0101"
    assert rows[ada["id"]]["owner_id"] is not None


async def test_create_imports_duplicates_anyway_and_bad_policies_are_400(world):
    org, _, _ = await _world(world)
    job = await _import(world, org.manager, FILE, mode="partial", on_duplicate="create")
    assert job["outcomes"] == {"created": 4, "updated": 0, "skipped": 0, "failed": 1}
    assert len(await _leads(world, org)) == 6
    resp, err = await world.request(
        "POST",
        "/api/v1/leads/import",
        as_=org.manager,
        data=FILE.encode(),
        params={"on_duplicate": "merge"},
        headers={"Content-Type": "text/csv"},
    )
    assert (resp.status, err["error"]["code"]) == (400, "invalid_query")


async def test_a_key_held_by_a_lead_out_of_reach_is_skipped_without_its_id(world):
    org = await world.make_org()
    await world.create_lead(org.outsider_rep, email="ada@example.com")  # outside the manager's team
    job = await _import(
        world, org.manager, HEADER + "Ada,L,ada@example.com,,\n", on_duplicate="update"
    )
    assert job["outcomes"]["skipped"] == 1
    assert job["results"] == [{"row": 1, "outcome": "skipped", "lead_id": None, "key": "email"}]
