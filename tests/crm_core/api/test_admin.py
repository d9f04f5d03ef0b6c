"""What admins configure through the API: settings, the coaching rule set, carrier numbers, people."""

from __future__ import annotations

import uuid

from crm_core.admin.carrier_numbers import rep_for_number
from voice_server.transports.carrier_config import CarrierConfig

RULES = {
    "keywords": {
        "competitor": {
            "phrases": [{"phrase": "Zebracorp", "link": "/cards/zebracorp"}],
            "parties": ["customer"],
        }
    },
    "rules": [
        {
            "id": "zebra-card",
            "trigger": "keyword",
            "category": "competitor",
            "severity": "warning",
            "title": "Zebracorp mentioned",
            "body": "Lead with our integrations.",
        }
    ],
}


async def _audit(world, org_id: str, action: str) -> list:
    async with world.pool.acquire() as conn:
        return await conn.fetch(
            "SELECT * FROM audit_log WHERE org_id = $1 AND action = $2 ORDER BY id",
            uuid.UUID(org_id),
            action,
        )


async def test_settings_have_defaults_change_validated_and_audited(world):
    org = await world.make_org()
    resp, body = await world.request("GET", "/api/v1/organization", as_=org.admin)
    assert resp.status == 200
    assert body["settings"]["reps_review_own_calls"] is True
    assert body["settings"]["recording_enabled"] is True and body["settings"]["plan"] == "starter"

    change = {
        "recording_retention_days": 30,
        "plan": "professional",
        "recording_enabled": False,
        "reps_review_own_calls": False,
        "sip_peers": [{"name": "trunk", "address": "203.0.113.7"}],
    }
    resp, body = await world.request("PATCH", "/api/v1/organization", as_=org.admin, json=change)
    assert resp.status == 200, body
    settings = body["settings"]
    assert settings["recording_retention_days"] == 30 and settings["plan"] == "professional"
    assert settings["sip_peers"] == [{"name": "trunk", "address": "203.0.113.7/32", "port": 5060}]
    audit = await _audit(world, org.id, "organization.settings.update")
    assert len(audit) == 1 and audit[0]["after"]["plan"] == "professional"
    assert audit[0]["before"]["plan"] == "starter"

    # every bad value is a 422 naming its field, and nothing changes
    for bad, field in (
        ({"plan": "gold"}, "plan"),
        ({"recording_retention_days": -1}, "recording_retention_days"),
        ({"rate_limit_per_min": "5"}, "rate_limit_per_min"),
        ({"recording_enabled": None}, "recording_enabled"),
        ({"sip_peers": [{"name": "x", "address": "not-an-ip"}]}, "sip_peers"),
        ({"coaching_rules": {}}, "coaching_rules"),
    ):
        resp, body = await world.request("PATCH", "/api/v1/organization", as_=org.admin, json=bad)
        assert resp.status == 422, (bad, body)
        assert any(d["loc"][:1] == [field] for d in body["error"]["details"]), (bad, body)
    resp, body = await world.request("GET", "/api/v1/organization", as_=org.admin)
    assert body["settings"] == settings

    for who in (org.manager, org.rep):
        resp, body = await world.request(
            "PATCH", "/api/v1/organization", as_=who, json={"plan": "enterprise"}
        )
        assert resp.status == 403, body


async def test_rule_set_saved_as_versions_previewed_and_rolled_back(world):
    org = await world.make_org()
    resp, body = await world.request("GET", "/api/v1/coaching-rules", as_=org.admin)
    assert body == {"version": None, "rules": {}}

    sentence = {"text": "Honestly Zebracorp quoted us less.", "party": "customer"}
    resp, before = await world.request(
        "POST", "/api/v1/coaching-rules/preview", as_=org.admin, json=sentence
    )
    assert resp.status == 200 and not any(p["rule_id"] == "zebra-card" for p in before["prompts"])
    # a rule set tried in the preview is not saved
    resp, tried = await world.request(
        "POST", "/api/v1/coaching-rules/preview", as_=org.admin, json={**sentence, "rules": RULES}
    )
    assert "zebra-card" in [p["rule_id"] for p in tried["prompts"]]
    assert tried["keywords"][0]["category"] == "competitor"

    resp, v1 = await world.request(
        "PUT",
        "/api/v1/coaching-rules",
        as_=org.admin,
        json={"rules": RULES, "note": "Zebracorp card"},
    )
    assert resp.status == 200 and v1["version"] == 1
    resp, fired = await world.request(
        "POST", "/api/v1/coaching-rules/preview", as_=org.admin, json=sentence
    )
    assert "zebra-card" in [p["rule_id"] for p in fired["prompts"]]

    # an invalid rule set: 422 pointing at the field as written, the one in force unchanged
    broken = {
        "rules": [
            {
                "id": "talk",
                "trigger": "metric",
                "title": "t",
                "body": "b",
                "metric": "talkratio",
                "value": 0.6,
            }
        ]
    }
    resp, body = await world.request(
        "PUT", "/api/v1/coaching-rules", as_=org.admin, json={"rules": broken}
    )
    assert resp.status == 422 and body["error"]["code"] == "invalid_rule_set"
    assert body["error"]["details"][0]["loc"] == ["rules", "rules", 0, "metric"]
    assert "talkratio" in body["error"]["details"][0]["message"]
    resp, body = await world.request(
        "PUT",
        "/api/v1/coaching-rules",
        as_=org.admin,
        json={"rules": {"keywords": {"competitor": {"phrases": []}}}},
    )
    assert resp.status == 422 and body["error"]["details"][0]["loc"] == [
        "rules",
        "keywords",
        "competitor",
        "phrases",
    ]

    resp, v2 = await world.request(
        "PUT", "/api/v1/coaching-rules", as_=org.admin, json={"rules": {}}
    )
    assert v2["version"] == 2
    resp, versions = await world.request("GET", "/api/v1/coaching-rules/versions", as_=org.admin)
    assert [v["version"] for v in versions["data"]] == [2, 1]
    first = versions["data"][1]
    resp, v3 = await world.request(
        "POST", f"/api/v1/coaching-rules/versions/{first['id']}/restore", as_=org.admin
    )
    assert resp.status == 200 and v3 == {"version": 3, "rules": RULES}
    resp, versions = await world.request("GET", "/api/v1/coaching-rules/versions", as_=org.admin)
    assert versions["data"][0]["restored_from"] == 1
    assert len(await _audit(world, org.id, "coaching_rules.update")) == 2
    assert len(await _audit(world, org.id, "coaching_rules.restore")) == 1

    # another organization's version is not found; nobody but an admin reaches any of it
    other = await world.make_org()
    resp, _ = await world.request(
        "POST", f"/api/v1/coaching-rules/versions/{first['id']}/restore", as_=other.admin
    )
    assert resp.status == 404
    for who in (org.manager, org.rep):
        resp, _ = await world.request(
            "POST", "/api/v1/coaching-rules/preview", as_=who, json=sentence
        )
        assert resp.status == 403
        resp, _ = await world.request("PUT", "/api/v1/coaching-rules", as_=who, json={"rules": {}})
        assert resp.status == 403


async def test_carrier_numbers_route_calls_and_the_database_wins_over_the_bootstrap(world):
    org = await world.make_org()
    other = await world.make_org()
    number = f"+1415{uuid.uuid4().int % 10**7:07d}"
    spaced = f"{number[:2]} ({number[2:5]}) {number[5:8]}-{number[8:]}"
    resp, mapped = await world.request(
        "POST",
        "/api/v1/carrier-numbers",
        as_=org.admin,
        json={"number": spaced, "user_id": org.rep.user_id},
    )
    assert resp.status == 201 and mapped["number"] == number
    resp, listed = await world.request("GET", "/api/v1/carrier-numbers", as_=org.admin)
    assert [(n["number"], n["user_id"]) for n in listed["data"]] == [(number, org.rep.user_id)]

    # moved to another rep of the same organization; another organization cannot take it
    resp, moved = await world.request(
        "POST",
        "/api/v1/carrier-numbers",
        as_=org.admin,
        json={"number": number, "user_id": org.other_rep.user_id},
    )
    assert resp.status == 201 and moved["id"] == mapped["id"]
    resp, body = await world.request(
        "POST",
        "/api/v1/carrier-numbers",
        as_=other.admin,
        json={"number": number, "user_id": other.rep.user_id},
    )
    assert resp.status == 409 and body["error"]["code"] == "number_taken"
    resp, body = await world.request(
        "POST",
        "/api/v1/carrier-numbers",
        as_=org.admin,
        json={"number": "12", "user_id": org.rep.user_id},
    )
    assert resp.status == 422 and body["error"]["details"][0]["loc"] == ["number"]
    resp, _ = await world.request(
        "POST",
        "/api/v1/carrier-numbers",
        as_=org.admin,
        json={"number": number, "user_id": other.rep.user_id},
    )
    assert resp.status == 404

    bootstrap_only = f"+1628{uuid.uuid4().int % 10**7:07d}"
    config = CarrierConfig(
        public_url="http://x",
        carrier_numbers={number: org.rep.user_id, bootstrap_only: org.outsider_rep.user_id},
    )
    async with world.pool.acquire() as conn:
        assert (
            await config.rep_for_number(conn, number) == org.other_rep.user_id
        )  # the database wins
        assert (
            await config.rep_for_number(conn, bootstrap_only.lstrip("+"))
            == org.outsider_rep.user_id
        )
    resp, _ = await world.request(
        "DELETE", f"/api/v1/carrier-numbers/{mapped['id']}", as_=other.admin
    )
    assert resp.status == 404
    resp, _ = await world.request(
        "DELETE", f"/api/v1/carrier-numbers/{mapped['id']}", as_=org.admin
    )
    assert resp.status == 204
    async with world.pool.acquire() as conn:
        assert await rep_for_number(conn, number) is None
    assert [r["action"] for r in await _audit(world, org.id, "carrier_number.map")] == [
        "carrier_number.map"
    ] * 2


async def test_deactivating_a_user_ends_their_sessions_and_api_tokens(world):
    org = await world.make_org()
    resp, created = await world.request(
        "POST",
        "/api/v1/users",
        as_=org.admin,
        json={
            "email": f"new-{uuid.uuid4().hex[:6]}@example.test",
            "name": "Nia New",
            "role": "rep",
            "team_id": org.team_id,
            "territory": "EMEA",
            "phone": "+14155550100",
            "sip_uri": "sip:nia@pbx.example.com",
            "password": "a long enough password",
        },
    )
    assert resp.status == 201 and created["sip_uri"] == "sip:nia@pbx.example.com"
    resp, _ = await world.request(
        "POST",
        "/api/v1/users",
        as_=org.admin,
        json={"email": "x@example.test", "name": "X", "sip_uri": "nia@pbx"},
    )
    assert resp.status == 422
    sign_in = await world.client.post(
        "/auth/token",
        json={
            "email": created["email"],
            "password": "a long enough password",
            "organization": org.slug,
        },
    )
    assert sign_in.status == 200, await sign_in.text()
    session_token = (await sign_in.json())["token"]
    resp, token = await world.request(
        "POST",
        "/api/v1/api-tokens",
        as_=org.admin,
        json={"name": "nia", "scopes": ["read"], "user_id": created["id"]},
    )
    assert resp.status == 201
    for secret in (session_token, token["token"]):
        me = await world.client.get("/api/v1/me", headers={"Authorization": f"Bearer {secret}"})
        assert me.status == 200

    resp, _ = await world.request("DELETE", f"/api/v1/users/{created['id']}", as_=org.admin)
    assert resp.status == 204
    for secret in (session_token, token["token"]):
        me = await world.client.get("/api/v1/me", headers={"Authorization": f"Bearer {secret}"})
        assert me.status == 401
    resp, tokens = await world.request(
        "GET", "/api/v1/api-tokens", as_=org.admin, params={"user_id": created["id"]}
    )
    assert tokens["data"][0]["revoked_at"] is not None
