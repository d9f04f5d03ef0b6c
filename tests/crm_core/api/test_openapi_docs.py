"""The OpenAPI document as reference: prose and a valid example for every operation, headers named.

``/docs`` shows this document to people (voice_server/web/api_docs.py); these tests hold it
to saying what each operation does, showing a body that the schema accepts, and naming the
response headers clients pace and lock with (``RateLimit-*``, ``ETag``, ``Idempotent-Replayed``).
That the server really sends them is checked on every reply the API tests get
(``ApiWorld.check_contract``) and by schemathesis against a live node.
"""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator

RATE_LIMIT = ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset")
NO_ID = "00000000-0000-0000-0000-000000000000"


def _operations(doc: dict[str, Any]):
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            yield f"{method.upper()} {path}", op


def _headers(doc: dict[str, Any], response: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out = {}
    for name, spec in response.get("headers", {}).items():
        if "$ref" in spec:
            spec = doc["components"]["headers"][spec["$ref"].rsplit("/", 1)[-1]]
        out[name] = spec
    return out


async def test_every_operation_has_a_summary_and_a_description(world):
    doc = world.openapi
    missing = [
        label
        for label, op in _operations(doc)
        if not op.get("summary") or not op.get("description")
    ]
    assert not missing, missing
    # the description says what a client must know, not only the summary again
    create_lead = doc["paths"]["/api/v1/leads"]["post"]["description"]
    assert "Idempotency-Key" in create_lead and "leads:write" in create_lead


async def test_every_json_body_has_an_example_its_schema_accepts(world):
    doc = world.openapi
    checked, problems = 0, []
    for label, op in _operations(doc):
        bodies = [("request", op["requestBody"]["content"])] if "requestBody" in op else []
        bodies += [
            (status, r["content"]) for status, r in op["responses"].items() if "content" in r
        ]
        for where, content in bodies:
            media = content.get("application/json")
            if media is None:
                continue
            if "example" not in media:
                problems.append(f"{label} {where}: no example")
                continue
            schema = {**media["schema"], "components": doc["components"]}
            errors = sorted(Draft202012Validator(schema).iter_errors(media["example"]), key=str)
            if errors:
                problems.append(f"{label} {where}: {errors[0].message}")
            checked += 1
    assert not problems, "\n".join(problems)
    assert checked > 300  # every operation's success and error bodies, not a handful


async def test_every_success_and_refusal_names_the_rate_limit_headers(world):
    doc = world.openapi
    for label, op in _operations(doc):
        for status, response in op["responses"].items():
            headers = _headers(doc, response)
            if status in ("416",):  # an empty refusal of a Range: no body, nothing spent twice
                continue
            assert set(RATE_LIMIT) <= set(headers), (label, status)
            assert all(headers[h]["schema"]["type"] == "integer" for h in RATE_LIMIT)
            if status == "429":
                assert "Retry-After" in headers, label


async def test_etag_and_idempotency_headers_are_named_where_they_apply(world):
    doc = world.openapi
    for path in ("/api/v1/leads/{id}", "/api/v1/deals/{id}"):
        for method in ("get", "patch"):
            etag = _headers(doc, doc["paths"][path][method]["responses"]["200"])["ETag"]
            assert etag.get("required") is True, (method, path)
        names = {p["name"] for p in doc["paths"][path]["patch"]["parameters"]}
        assert "If-Match" in names
    created = _headers(doc, doc["paths"]["/api/v1/leads"]["post"]["responses"]["201"])
    # a replayed POST carries its stored body only: its ETag is documented, not promised
    assert "ETag" in created and not created["ETag"].get("required")
    assert "Idempotent-Replayed" in created
    token = _headers(doc, doc["paths"]["/api/v1/api-tokens"]["post"]["responses"]["201"])
    assert "Secret-Redacted" in token
    # operations that answer no ETag do not claim one
    assert "ETag" not in _headers(
        doc, doc["paths"]["/api/v1/teams/{id}"]["get"]["responses"]["200"]
    )


async def test_the_headers_a_reply_sends_are_the_documented_ones(world):
    """ETag is really sent where required, RateLimit-* really sent (integers), and a stale
    If-Match is refused: what the document says, the server does."""
    org = await world.make_org()
    lead = await world.create_lead(org.admin)
    resp, _ = await world.request("GET", f"/api/v1/leads/{lead['id']}", as_=org.admin)
    assert resp.headers["ETag"].startswith('W/"')
    assert int(resp.headers["RateLimit-Limit"]) >= int(resp.headers["RateLimit-Remaining"]) >= 0
    stale, _ = await world.request(
        "PATCH",
        f"/api/v1/leads/{lead['id']}",
        as_=org.admin,
        json={"title": "CTO"},
        headers={"If-Match": 'W/"1"'},
    )
    assert stale.status == 412
    fresh, body = await world.request(
        "PATCH",
        f"/api/v1/leads/{lead['id']}",
        as_=org.admin,
        json={"title": "CTO"},
        headers={"If-Match": resp.headers["ETag"]},
    )
    assert (
        fresh.status == 200
        and body["title"] == "CTO"
        and fresh.headers["ETag"] != resp.headers["ETag"]
    )
    key = {"Idempotency-Key": "docs-replay-1"}
    first, made = await world.request(
        "POST", "/api/v1/leads", as_=org.admin, json={"company": "Replay"}, headers=key
    )
    again, replayed = await world.request(
        "POST", "/api/v1/leads", as_=org.admin, json={"company": "Replay"}, headers=key
    )
    assert first.status == again.status == 201 and replayed["id"] == made["id"]
    assert (
        again.headers["Idempotent-Replayed"] == "true"
        and "Idempotent-Replayed" not in first.headers
    )
