"""The demo organisation: created once, found again on a rerun, wiped only when it is the demo's."""

from __future__ import annotations

import pytest

from crm_core.auth.passwords import verify_password
from crm_core.demo_org import (
    DEALS,
    DEMO_SLUG,
    LEADS,
    PEOPLE,
    DemoSlugTaken,
    delete_demo_org,
    ensure_demo_org,
)
from storage.database import connect


@pytest.fixture
async def conn(migrated_database):
    conn = await connect(migrated_database)
    yield conn
    await conn.close()


async def _counts(conn, org_id):
    return {table: await conn.fetchval(f"SELECT count(*) FROM {table} WHERE org_id = $1", org_id)
            for table in ("users", "teams", "leads", "deals")}


async def test_a_rerun_finds_the_demo_as_it_was_and_shows_no_password_again(conn):
    first = await ensure_demo_org(conn)
    assert first.created
    assert set(first.passwords) == {p.email() for p in PEOPLE}
    for email, password in first.passwords.items():  # generated per install, stored as hashes
        digest = await conn.fetchval("SELECT password_hash FROM users WHERE email = $1", email)
        assert password not in digest and verify_password(password, digest)
    counts = await _counts(conn, first.org_id)
    assert counts == {"users": len(PEOPLE), "teams": 1, "leads": len(LEADS), "deals": len(DEALS)}
    stages = {r["stage"] for r in await conn.fetch("SELECT stage FROM deals WHERE org_id = $1",
                                                   first.org_id)}
    assert len(stages) >= 4
    assert await conn.fetchval("SELECT count(*) FROM leads WHERE org_id = $1 AND phone IS NOT NULL",
                               first.org_id) == len(LEADS)

    again = await ensure_demo_org(conn)
    assert (again.org_id, again.user_ids, again.created) == (first.org_id, first.user_ids, False)
    assert again.passwords == {}
    assert await _counts(conn, first.org_id) == counts

    renewed = await ensure_demo_org(conn, new_passwords=True)
    assert set(renewed.passwords) == set(first.passwords)
    assert not set(renewed.passwords.values()) & set(first.passwords.values())

    assert await delete_demo_org(conn)
    assert await conn.fetchval("SELECT count(*) FROM users WHERE org_id = $1", first.org_id) == 0
    assert not await delete_demo_org(conn)


async def test_an_organisation_that_is_not_the_demo_is_never_taken_over_nor_wiped(conn):
    await conn.execute("INSERT INTO organizations (name, slug) VALUES ('Real Co', $1)", DEMO_SLUG)
    with pytest.raises(DemoSlugTaken):
        await ensure_demo_org(conn)
    assert not await delete_demo_org(conn)
    assert await conn.fetchval("SELECT name FROM organizations WHERE slug = $1", DEMO_SLUG) == "Real Co"
