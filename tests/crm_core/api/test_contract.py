"""The OpenAPI document: valid, complete, and true to what every route really answers."""

import re

from jsonschema import Draft202012Validator

# Served on the root app by their own handlers (crm_core.api.recordings, crm_core.api.privacy),
# documented through crm_core.api.routes.document_routes.
FOREIGN = {("GET", "/api/v1/calls/{call_id}/recording"), ("GET", "/api/v1/calls/{call_id}/recording/audit"),
           ("POST", "/api/v1/leads/{lead_id}/erasure"), ("GET", "/api/v1/leads/{lead_id}/export"),
           ("GET", "/api/v1/calls/{call_id}/recording/status")}
NO_ID = "00000000-0000-0000-0000-000000000000"
# training answers 201 only with enough history (tests/crm_core/api/test_scoring.py)
TRAINING = {("POST", "/api/v1/scoring/lead-models"), ("POST", "/api/v1/scoring/deal-models")}


async def test_the_document_is_openapi_3_1_with_valid_schemas(world):
    doc = world.openapi
    assert doc["openapi"] == "3.1.0"
    for schema in doc["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)
    refs = set(re.findall(r'"#/components/schemas/(\w+)"', str(doc).replace("'", '"')))
    assert refs <= set(doc["components"]["schemas"])
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert op["operationId"] and op["responses"], (method, path)
            for p in op.get("parameters", []):
                assert p["in"] in ("path", "query", "header")


async def test_every_route_the_server_has_is_documented(world):
    app_routes = set()
    for resource in world.client.app.router.resources():
        info = resource.get_info()
        # the /api/v1 sub-application's routes
        sub = info.get("app")
        if sub is not None:
            for sub_resource in sub.router.resources():
                for route in sub_resource:
                    path = sub_resource.canonical  # already carries the /api/v1 prefix
                    if route.method != "HEAD" and "{tail" not in path:
                        app_routes.add((route.method, path))
        elif resource.canonical.startswith(("/auth/", "/api/v1/")):
            # /api/v1 routes served on the root app (recordings, GDPR) count too
            for route in resource:
                if route.method != "HEAD":
                    app_routes.add((route.method, resource.canonical))
    documented = {(m.upper(), p) for p, ops in world.openapi["paths"].items() for m in ops}
    assert app_routes - {("GET", "/api/v1/openapi.json")} == documented


async def test_every_operation_answers_as_documented(world):
    """Drive every endpoint once as an admin (plus its error paths); ``world`` checks each reply."""
    org = await world.make_org()
    admin = org.admin
    async with world.pool.acquire() as conn:  # this test sends more than the starter plan's 60/min
        await conn.execute("""UPDATE organizations SET settings = settings || '{"plan": "enterprise"}'::jsonb
                              WHERE id = $1""", org.id)
    lead = await world.create_lead(admin)
    other = await world.create_lead(admin, first_name="Del")
    merged = await world.create_lead(admin, first_name="Merged")
    deal = await world.create_deal(admin, lead_id=lead["id"])
    _, team = await world.request("POST", "/api/v1/teams", as_=admin, json={"name": "Contract"})
    _, user = await world.request("POST", "/api/v1/users", as_=admin, json={"email": "c@c.test", "name": "C"})
    _, token = await world.request("POST", "/api/v1/api-tokens", as_=admin, json={"name": "c"})
    from crm_core.calls.records import NewCall, create_call
    async with world.pool.acquire() as conn:
        call = await create_call(conn, NewCall(org.id, "sip", "outbound", external_id="contract@x"))
    ids = {"leads": lead["id"], "deals": deal["id"], "users": user["id"], "teams": team["id"],
           "api-tokens": token["id"], "calls": str(call["id"])}
    _, job = await world.request("POST", "/api/v1/leads/import", as_=admin, data=b"first_name\nA\n",
                                 headers={"Content-Type": "text/csv"})
    ids["imports"] = job["id"]
    _, hook = await world.request("POST", "/api/v1/webhooks", as_=admin, json={"url": "https://hooks.example.com/c"})
    ids["webhooks"] = hook["id"]
    _, _ = await world.request("PUT", "/api/v1/coaching-rules", as_=admin, json={"rules": {}})
    _, versions = await world.request("GET", "/api/v1/coaching-rules/versions", as_=admin)
    ids["coaching-rules"] = versions["data"][0]["id"]
    _, number = await world.request("POST", "/api/v1/carrier-numbers", as_=admin,
                                    json={"number": "+14155550166", "user_id": user["id"]})
    ids["carrier-numbers"] = number["id"]
    _, pipelines = await world.request("GET", "/api/v1/pipelines", as_=admin)
    [pipeline] = pipelines["data"]
    ids["pipelines"] = pipeline["id"]
    ids["stages"] = next(s["id"] for s in pipeline["stages"] if s["name"] == "discovery")  # no deal in it

    bodies = {
        ("PATCH", "/api/v1/leads/{id}"): {"status": "qualified"},
        ("POST", "/api/v1/leads/{id}/convert"): {},
        ("PATCH", "/api/v1/deals/{id}"): {"stage": "demo"},
        ("POST", "/api/v1/activities"): {"lead_id": lead["id"], "text": "hi"},
        ("PATCH", "/api/v1/users/{id}"): {"name": "Cee"},
        ("PATCH", "/api/v1/teams/{id}"): {"name": "Contract 2"},
        ("POST", "/api/v1/leads"): {"first_name": "New"},
        ("POST", "/api/v1/deals"): {"name": "New"},
        ("POST", "/api/v1/users"): {"email": "d@c.test", "name": "D"},
        ("POST", "/api/v1/teams"): {"name": "Contract 3"},
        ("POST", "/api/v1/api-tokens"): {"name": "d"},
        ("POST", "/api/v1/webhooks"): {"url": "https://hooks.example.com/d"},
        ("PATCH", "/api/v1/webhooks/{id}"): {"active": False},
        ("PUT", "/api/v1/scoring/icp"): {"icp": {"base": 20, "industries": {"software": 20}}},
        ("PATCH", "/api/v1/organization"): {"plan": "professional"},
        ("PUT", "/api/v1/coaching-rules"): {"rules": {}},
        ("POST", "/api/v1/coaching-rules/preview"): {"text": "too expensive"},
        ("POST", "/api/v1/carrier-numbers"): {"number": "+14155550167", "user_id": user["id"]},
        ("POST", "/api/v1/calls/{id}/comments"): {"at_ms": 1000, "body": "Ask about budget here"},
        ("POST", "/api/v1/leads/{id}/merge"): {"other_id": merged["id"]},
        ("POST", "/api/v1/leads/batch"): {"create": [{"first_name": "Batch"}]},
        ("POST", "/api/v1/pipelines"): {"name": "Contract", "stages": [{"name": "a", "probability": 0.1}]},
        ("PATCH", "/api/v1/pipelines/{id}"): {"is_default": True},
        ("POST", "/api/v1/pipelines/{id}/stages"): {"name": "Contract stage", "probability": 0.5},
        ("PATCH", "/api/v1/pipelines/{id}/stages/{stage_id}"): {"probability": 0.3},
    }
    queries = {("GET", "/api/v1/search"): {"q": "ada"}}
    skip = {("POST", "/auth/token"), ("POST", "/auth/logout"), ("POST", "/api/v1/leads/import"),
            ("POST", "/api/v1/calls/outbound"), *FOREIGN, *TRAINING}
    order = {"get": 0, "post": 1, "put": 2, "patch": 2, "delete": 3}
    operations = sorted(((m.upper(), p) for p, ops in world.openapi["paths"].items() for m in ops),
                        key=lambda mp: order[mp[0].lower()])
    for method, template in operations:
        if (method, template) in skip:
            continue
        collection = template.removeprefix("/api/v1/").split("/")[0]
        path = template.replace("{id}", ids.get(collection, lead["id"])).replace("{stage_id}", ids["stages"])
        if method == "DELETE" and collection == "leads":
            path = template.replace("{id}", other["id"])
        path = path.replace("{comment_id}", ids.get("comment", "00000000-0000-0000-0000-000000000000"))
        query = queries.get((method, template))
        resp, body = await world.request(method, path, as_=admin, json=bodies.get((method, template)), params=query)
        assert resp.status < 300, (method, path, body)
        if (method, template) == ("POST", "/api/v1/calls/{id}/comments"):
            ids["comment"] = body["id"]  # deleted by its DELETE, later in the order
        # and the same route without credentials, and with an unknown id
        resp, _ = await world.request(method, path, json=bodies.get((method, template)), params=query)
        assert resp.status == 401, (method, path)
        if "{id}" in template:
            resp, _ = await world.request(method, template.replace("{id}", "00000000-0000-0000-0000-000000000000"),
                                          as_=admin, json=bodies.get((method, template)))
            assert resp.status == 404, (method, template)
    # No carrier is configured here (tests/voice_server/transports/test_carrier_outbound.py dials the fakes).
    outbound = "/api/v1/calls/outbound"
    resp, body = await world.request("POST", outbound, as_=admin, json={"carrier": "twilio", "lead_id": lead["id"],
                                                                        "to_number": "+15557770000"})
    assert (resp.status, body["error"]["code"]) == (422, "carrier_not_configured")
    resp, _ = await world.request("POST", outbound, json={"carrier": "twilio"})
    assert resp.status == 401
    resp, _ = await world.request("POST", outbound, as_=admin,
                                  json={"carrier": "twilio", "lead_id": "00000000-0000-0000-0000-000000000000"})
    assert resp.status == 404

    await _exercise_recording_and_gdpr_routes(world, org, str(call["id"]))
    for method, template in TRAINING:  # a new organisation has no history to train on
        resp, body = await world.request(method, template, as_=admin)
        assert (resp.status, body["error"]["code"]) == (422, "not_enough_history"), body
        resp, _ = await world.request(method, template)
        assert resp.status == 401

    from tests.crm_core.api_world import PASSWORD

    resp, signed = await world.request("POST", "/auth/token", json={"email": admin.email, "password": PASSWORD})
    assert resp.status == 200
    world.client.session.cookie_jar.clear()
    resp, _ = await world.request("POST", "/auth/logout", headers={"Authorization": f"Bearer {signed['token']}"})
    assert resp.status == 204
    resp, _ = await world.request("POST", "/auth/logout")
    assert resp.status == 401

    documented = {(m.upper(), p) for p, ops in world.openapi["paths"].items() for m in ops}
    exercised = {(m, p) for m, p, _ in world.checked}
    assert documented - exercised == set()


async def test_unknown_paths_and_bad_ids_use_the_error_shape(world):
    org = await world.make_org()
    resp = await world.client.get("/api/v1/nothing-here", headers=org.admin.auth)
    body = await resp.json()
    assert resp.status == 404 and body["error"]["code"] == "not_found"
    resp, body = await world.request("GET", "/api/v1/leads/not-a-uuid", as_=org.admin)
    assert resp.status == 404 and body["error"]["code"] == "not_found"
    resp = await world.client.put("/api/v1/leads", headers=org.admin.auth)
    body = await resp.json()
    assert (resp.status, body["error"]["code"]) == (405, "method_not_allowed")
    assert resp.headers["Allow"] == "GET, POST"
    resp = await world.client.get("/api/v1/openapi.json")
    assert resp.status == 200  # the document itself needs no credentials


async def test_form_posts_are_415_and_documented(world):
    org = await world.make_org()
    resp, body = await world.request("POST", "/api/v1/leads", as_=org.rep, data="first_name=A",
                                     headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert (resp.status, body["error"]["code"]) == (415, "unsupported_media_type")


async def _exercise_recording_and_gdpr_routes(world, org, call_id: str) -> None:
    """The routes other areas serve under /api/v1, each answer checked against the document."""
    admin = org.admin
    recording = f"/api/v1/calls/{call_id}/recording"
    resp, body = await world.request("GET", recording, as_=admin)
    assert (resp.status, body["error"]["code"]) == (404, "not_found")  # a call without a recording
    resp, _ = await world.request("GET", f"/api/v1/calls/{NO_ID}/recording", as_=admin)
    assert resp.status == 404
    resp, _ = await world.request("GET", "/api/v1/calls/not-a-uuid/recording", as_=admin)
    assert resp.status == 404
    resp, body = await world.request("GET", recording)
    assert (resp.status, body["error"]["code"]) == (401, "unauthenticated")

    resp, body = await world.request("GET", recording + "/audit", as_=admin)
    assert resp.status == 200 and body["next_cursor"] is None
    assert [e["outcome"] for e in body["data"]][:1] == ["denied"]  # the refused play above, logged
    resp, _ = await world.request("GET", recording + "/audit")
    assert resp.status == 401
    resp, _ = await world.request("GET", f"/api/v1/calls/{NO_ID}/recording/audit", as_=admin)
    assert resp.status == 404
    # no recording key on this node: the review's player is told recording is off
    resp, body = await world.request("GET", recording + "/status", as_=admin)
    assert resp.status == 200 and (body["available"], body["reason"]) == (False, "recording_off")
    resp, _ = await world.request("GET", recording + "/status")
    assert resp.status == 401
    resp, _ = await world.request("GET", f"/api/v1/calls/{NO_ID}/recording/status", as_=admin)
    assert resp.status == 404

    lead = await world.create_lead(admin, first_name="Gdpr", phone="+15557770000", owner_id=org.rep.user_id)
    export = f"/api/v1/leads/{lead['id']}/export"
    resp, body = await world.request("GET", export, as_=admin)
    assert resp.status == 200 and body["lead"]["id"] == lead["id"]
    resp, body = await world.request("GET", export, as_=org.rep)  # the rep's own lead: not an admin
    assert (resp.status, body["error"]["code"]) == (403, "forbidden")
    resp, body = await world.request("GET", export, as_=org.other_rep)  # out of reach: as if missing
    assert (resp.status, body["error"]["code"]) == (404, "not_found")
    resp, _ = await world.request("GET", export)
    assert resp.status == 401
    resp, _ = await world.request("GET", f"/api/v1/leads/{NO_ID}/export", as_=admin)
    assert resp.status == 404

    erasure = f"/api/v1/leads/{lead['id']}/erasure"
    resp, _ = await world.request("POST", erasure)
    assert resp.status == 401
    resp, _ = await world.request("POST", erasure, as_=org.manager)
    assert resp.status == 403
    resp, body = await world.request("POST", erasure, as_=admin)
    assert resp.status == 200 and body["lead_id"] == lead["id"]
    resp, _ = await world.request("POST", f"/api/v1/leads/{NO_ID}/erasure", as_=admin)
    assert resp.status == 404


async def test_routes_of_other_areas_are_documented_with_the_error_shape(world):
    paths = world.openapi["paths"]
    play = paths["/api/v1/calls/{call_id}/recording"]["get"]
    assert "audio/wav" in play["responses"]["200"]["content"]
    assert {"206", "401", "403", "404", "416"} <= set(play["responses"])
    assert {p["name"] for p in play["parameters"]} == {"call_id", "access_token", "Range"}
    error = {"$ref": "#/components/schemas/Error"}
    for path, method in (("/api/v1/calls/{call_id}/recording/audit", "get"),
                         ("/api/v1/leads/{lead_id}/erasure", "post"), ("/api/v1/leads/{lead_id}/export", "get")):
        op = paths[path][method]
        for status in ("401", "403", "404"):
            assert op["responses"][status]["content"]["application/json"]["schema"] == error, (path, status)
        assert "Idempotency-Key" not in {p["name"] for p in op.get("parameters", [])}  # not replayed there
    outbound = paths["/api/v1/calls/outbound"]["post"]
    assert "Idempotency-Key" in {p["name"] for p in outbound["parameters"]}
    assert {"201", "409", "422", "502"} <= set(outbound["responses"])
