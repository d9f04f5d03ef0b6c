import asyncpg

from crm_core.calls.routing import find_lead_by_phone, find_rep


async def test_reps_are_found_by_phone_digits_or_sip_user(migrated_database):
    conn = await asyncpg.connect(migrated_database)
    try:
        org = str(await conn.fetchval(
            "INSERT INTO organizations (name, slug) VALUES ('A', 'a') RETURNING id"))

        async def user(email, phone=None, sip=None, active=True):
            return str(await conn.fetchval(
                "INSERT INTO users (org_id, email, name, role, phone, sip_uri, is_active) "
                "VALUES ($1, $2, $2, 'rep', $3, $4, $5) RETURNING id",
                org, email, phone, sip, active))

        alice = await user("alice@a", "+1 (555) 123-0001", "sip:Alice@pbx.a")
        await user("gone@a", "+1 555 123 0002", active=False)
        await user("b1@a", "555-0100")
        await user("b2@a", "5550100")
        assert (await find_rep(conn, "15551230001")).rep_id == alice
        assert (await find_rep(conn, "+15551230001")).org_id == org
        assert (await find_rep(conn, "alice")).rep_id == alice
        assert await find_rep(conn, "15551230002") is None  # inactive
        assert await find_rep(conn, "5550100") is None  # two reps share it: route nobody
        assert await find_rep(conn, "") is None and await find_rep(conn, None) is None

        lead = str(await conn.fetchval(
            "INSERT INTO leads (org_id, phone) VALUES ($1, '+44 20 7946 0958') RETURNING id", org))
        assert await find_lead_by_phone(conn, org, "442079460958") == lead
        assert await find_lead_by_phone(conn, org, "123") is None
    finally:
        await conn.close()
