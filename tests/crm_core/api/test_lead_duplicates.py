"""No duplicate leads: 409 with the existing id, merge on create, PATCH onto a taken key, the
merge endpoint (everything follows, audited, idempotent, tenant-bound) and duplicate candidates."""

import uuid


async def _set_org(world, org, settings: dict) -> None:
    async with world.pool.acquire() as conn:
        await conn.execute(
            "UPDATE organizations SET settings = settings || $2::jsonb WHERE id = $1",
            org.id,
            settings,
        )


async def test_a_second_lead_with_the_same_email_is_409_with_the_existing_id(world):
    org = await world.make_org()
    first = await world.create_lead(org.rep, email="Ada@Example.com")
    for spelling in (
        "ada@example.com",
        "ADA@Example.COM",
        "  Ada@example.com ",
        "ada@EXAMPLE.com\t",
    ):
        resp, err = await world.request(
            "POST", "/api/v1/leads", as_=org.rep, json={"first_name": "Other", "email": spelling}
        )
        assert resp.status == 409, (spelling, err)
        assert err["error"]["code"] == "duplicate_lead"
        assert err["error"]["details"] == {
            "existing_id": first["id"],
            "key": "email",
            "value": "ada@example.com",
        }


async def test_a_second_lead_with_the_same_phone_in_any_format_is_409(world):
    org = await world.make_org()
    await _set_org(world, org, {"phone_region": "US"})
    first = await world.create_lead(org.rep, phone="+14155550134")
    for spelling in ("+1 415-555-0134", "(415) 555-0134", "14155550134", "+1 (415) 555 0134"):
        resp, err = await world.request(
            "POST", "/api/v1/leads", as_=org.rep, json={"first_name": "B", "phone": spelling}
        )
        assert resp.status == 409, (spelling, err)
        details = err["error"]["details"]
        assert (details["existing_id"], details["key"], details["value"]) == (
            first["id"],
            "phone",
            "+14155550134",
        )
    # the same local number in another area is another phone
    await world.create_lead(org.rep, phone="(212) 555-0134")


async def test_keys_are_per_org_and_configurable(world):
    org, other = await world.make_org(), await world.make_org()
    await world.create_lead(org.rep, email="same@example.com", phone="+14155550100")
    await world.create_lead(other.rep, email="same@example.com")  # another tenant: no conflict
    await _set_org(world, org, {"lead_unique_keys": ["phone"]})
    await world.create_lead(org.rep, email="same@example.com")  # e-mail no longer a key
    resp, _ = await world.request(
        "POST", "/api/v1/leads", as_=org.rep, json={"phone": "+1 415 555 0100"}
    )
    assert resp.status == 409
    await _set_org(world, org, {"lead_unique_keys": []})
    await world.create_lead(org.rep, phone="+1 415 555 0100")


async def test_the_existing_id_is_shown_only_to_who_may_see_that_lead(world):
    org = await world.make_org()
    await world.create_lead(org.rep, email="kept@example.com")
    resp, err = await world.request(
        "POST", "/api/v1/leads", as_=org.outsider_rep, json={"email": "kept@example.com"}
    )
    assert resp.status == 409 and "existing_id" not in err["error"]["details"]
    resp, _ = await world.request(
        "POST",
        "/api/v1/leads",
        params={"on_duplicate": "merge"},
        as_=org.outsider_rep,
        json={"email": "kept@example.com", "title": "CTO"},
    )
    assert resp.status == 409


async def test_on_duplicate_merge_writes_the_fields_onto_the_existing_lead(world):
    org = await world.make_org()
    first = await world.create_lead(org.rep, email="ada@example.com")
    resp, got = await world.request(
        "POST",
        "/api/v1/leads",
        params={"on_duplicate": "merge"},
        as_=org.rep,
        json={"email": "ADA@example.com", "title": "CTO"},
    )
    assert resp.status == 200, got
    assert got["id"] == first["id"] and got["title"] == "CTO" and got["email"] == "ADA@example.com"
    resp, err = await world.request(
        "POST",
        "/api/v1/leads",
        params={"on_duplicate": "sometimes"},
        as_=org.rep,
        json={"email": "x@example.com"},
    )
    assert (resp.status, err["error"]["code"]) == (400, "invalid_query")


async def test_patch_onto_another_leads_email_is_409(world):
    org = await world.make_org()
    first = await world.create_lead(org.rep, email="one@example.com")
    second = await world.create_lead(org.rep, email="two@example.com")
    resp, err = await world.request(
        "PATCH", f"/api/v1/leads/{second['id']}", as_=org.rep, json={"email": "ONE@example.com"}
    )
    assert resp.status == 409 and err["error"]["details"]["existing_id"] == first["id"]
    resp, _ = await world.request(
        "PATCH", f"/api/v1/leads/{first['id']}", as_=org.rep, json={"email": "One@example.com"}
    )
    assert resp.status == 200  # its own key


async def test_merge_moves_activities_calls_and_deals_fills_blanks_audits_and_is_idempotent(world):
    org = await world.make_org()
    keep = await world.create_lead(org.rep, first_name="Ada", email="ada@example.com")
    gone = await world.create_lead(
        org.rep, first_name="Ada", phone="+14155550199", title="CTO", enrichment={"linkedin": "ada"}
    )
    deal = await world.create_deal(org.rep, lead_id=gone["id"])
    async with world.pool.acquire() as conn:
        call_id = await conn.fetchval(
            "INSERT INTO calls (org_id, carrier, direction, lead_id, rep_id) VALUES ($1, 'sip', 'outbound', $2, $3) "
            "RETURNING id::text",
            org.id,
            gone["id"],
            org.rep.user_id,
        )
    resp, _ = await world.request(
        "POST", "/api/v1/activities", as_=org.rep, json={"lead_id": gone["id"], "text": "note"}
    )
    assert resp.status == 201

    resp, out = await world.request(
        "POST", f"/api/v1/leads/{keep['id']}/merge", as_=org.rep, json={"other_id": gone["id"]}
    )
    assert resp.status == 200, out
    assert out["merged_id"] == gone["id"]
    assert (
        out["moved"]["deals"] == 1
        and out["moved"]["calls"] == 1
        and out["moved"]["activities"] >= 1
    )
    assert (out["lead"]["phone"], out["lead"]["title"], out["lead"]["email"]) == (
        "+14155550199",
        "CTO",
        "ada@example.com",
    )
    assert out["lead"]["enrichment"] == {"linkedin": "ada"}
    async with world.pool.acquire() as conn:
        assert (
            await conn.fetchval("SELECT lead_id::text FROM deals WHERE id = $1", deal["id"])
            == keep["id"]
        )
        assert (
            await conn.fetchval("SELECT lead_id::text FROM calls WHERE id = $1::uuid", call_id)
            == keep["id"]
        )
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM activities WHERE lead_id = $1 OR subject_id = $1",
                uuid.UUID(gone["id"]),
            )
            == 0
        )
        assert (
            await conn.fetchval("SELECT count(*) FROM leads WHERE id = $1", uuid.UUID(gone["id"]))
            == 0
        )
        audit = await conn.fetch(
            "SELECT action FROM audit_log WHERE resource_id = $1 AND action = 'lead.merge'",
            keep["id"],
        )
    assert len(audit) == 1
    resp, again = await world.request(
        "POST", f"/api/v1/leads/{keep['id']}/merge", as_=org.rep, json={"other_id": gone["id"]}
    )
    assert (
        resp.status == 200 and again["merged_id"] == gone["id"] and again["moved"] == out["moved"]
    )
    resp, _ = await world.request("GET", f"/api/v1/leads/{gone['id']}", as_=org.rep)
    assert resp.status == 404


async def test_merge_across_tenants_or_out_of_reach_is_404_and_changes_nothing(world):
    org, other = await world.make_org(), await world.make_org()
    mine = await world.create_lead(org.admin)
    theirs = await world.create_lead(other.rep)
    hidden = await world.create_lead(org.rep)
    resp, err = await world.request(
        "POST", f"/api/v1/leads/{mine['id']}/merge", as_=org.admin, json={"other_id": theirs["id"]}
    )
    assert (resp.status, err["error"]["code"]) == (404, "not_found")
    resp, _ = await world.request(
        "POST",
        f"/api/v1/leads/{hidden['id']}/merge",
        as_=org.outsider_rep,
        json={"other_id": hidden["id"]},
    )
    assert resp.status in (404, 422)
    resp, _ = await world.request(
        "POST", f"/api/v1/leads/{mine['id']}/merge", as_=org.admin, json={"other_id": mine["id"]}
    )
    assert resp.status == 422
    resp, got = await world.request("GET", f"/api/v1/leads/{theirs['id']}", as_=other.rep)
    assert resp.status == 200 and got == theirs


async def test_duplicates_finds_a_fuzzy_name_and_company_and_shared_keys(world):
    org = await world.make_org()
    await _set_org(world, org, {"lead_unique_keys": []})  # old duplicates, as before the check
    probe = await world.create_lead(
        org.admin, first_name="John", last_name="Smith", company="ACME", email="john@acme.test"
    )
    jon = await world.create_lead(
        org.admin, first_name="Jon", last_name="Smith", company="Acme Inc"
    )
    same_mail = await world.create_lead(
        org.admin, first_name="J.", last_name="Doe", company="Other", email="JOHN@acme.test"
    )
    await world.create_lead(org.admin, first_name="Sarah", last_name="Smithers", company="Zeta")
    await world.create_lead(org.admin, first_name="Mary", last_name="Major", company="Acme Bakery")
    resp, got = await world.request("GET", f"/api/v1/leads/{probe['id']}/duplicates", as_=org.admin)
    assert resp.status == 200, got
    ids = [d["lead"]["id"] for d in got["data"]]
    assert ids[:2] == [same_mail["id"], jon["id"]], got
    assert len(ids) == 2
    assert got["data"][0]["reasons"] == ["email"] and got["data"][0]["similarity"] == 1.0
    assert (
        set(got["data"][1]["reasons"]) == {"company", "name"}
        and 0.4 <= got["data"][1]["similarity"] < 1
    )
    # the rep who owns none of them sees no candidates; an unknown lead is 404
    resp, _ = await world.request("GET", f"/api/v1/leads/{probe['id']}/duplicates", as_=org.rep)
    assert resp.status == 404
    resp, _ = await world.request(
        "GET", f"/api/v1/leads/{probe['id']}/duplicates", as_=org.admin, params={"limit": "0"}
    )
    assert resp.status == 400
