import asyncpg

from crm_core.calls.phone_numbers import region_of, to_e164
from crm_core.calls.routing import find_rep, match_lead


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
        assert (await match_lead(conn, org, "442079460958")).lead_id == lead
        assert (await match_lead(conn, org, "+442079460958", line_number="+15550100000")).lead_id == lead
        assert await match_lead(conn, org, "123") is None
        national = str(await conn.fetchval(
            "INSERT INTO leads (org_id, phone) VALUES ($1, '020 7946 0777') RETURNING id", org))
        # a national spelling is read in the country of the organisation's line on the call
        assert (await match_lead(conn, org, "+442079460777", line_number="+442079460000")).lead_id == national
        assert (await match_lead(conn, org, "+442079460777", line_number="+14155550100")) is None
    finally:
        await conn.close()


def test_numbers_are_compared_as_e164():
    us = [to_e164(text, "US") for text in ("(415) 555-0134", "+1 415-555-0134", "14155550134",
                                             "415.555.0134", "011 1 415 555 0134")]
    assert {n.number for n in us} == {"+14155550134"}
    assert us[0].national == "4155550134"
    assert to_e164("442079460958", "US").number == "+442079460958"  # no US number has 12 digits
    assert to_e164("0612345678", "IT").number == "+390612345678"    # Italy keeps its leading 0
    for not_a_number in (None, "", "anonymous", "alice", "12", "1" * 80):
        assert to_e164(not_a_number, "US") is None
    assert region_of("15550100000") == "US" and region_of("+442079460000") == "GB"
    assert region_of("alice") is None
