"""Hostile JSON on every JSON operation of the OpenAPI document: a 4xx in the one error shape, never a 5xx.

The operations are read from the document the server publishes, so a new JSON endpoint is attacked
as soon as it exists; it only needs a valid body in ``VALID_BODIES`` (the test fails until it has
one) so that hostile values reach the handler and the database, not just the validator.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import pytest

from crm_core.calls.records import NewCall, create_call
from crm_core.json_input import (
    MAX_DEPTH,
    JsonInputError,
    UnstorableText,
    _check_depth_and_text,
    _nesting_exceeds,
    parse_json,
)
from tests.security.unlimited_world import world  # noqa: F401  (the running API, as a fixture here)

# Raw bodies no JSON endpoint may answer with a 5xx.
HOSTILE_BODIES: dict[str, bytes] = {
    "deep arrays": b"[" * 100_000 + b"]" * 100_000,
    "deep objects": b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
    "deep unclosed": b"[" * 200_000,
    "deep, under the sign-in size limit": b"[" * 12_000,
    "nested past the bound": b'{"a":' + b"[" * (MAX_DEPTH + 5) + b"]" * (MAX_DEPTH + 5) + b"}",
    "invalid UTF-8": b'{"name": "\xc3\x28"}',
    "latin-1": '{"name": "caf\xe9"}'.encode("latin-1"),
    "UTF-16 with BOM": '{"name": "x"}'.encode("utf-16"),
    "NaN": b'{"value": NaN, "company_size": NaN}',
    "Infinity": b'{"value": Infinity, "company_size": -Infinity}',
    "1e400": b'{"value": 1e400, "company_size": 1e400}',
    "5000-digit integer": b'{"value": ' + b"9" * 5000 + b', "company_size": ' + b"9" * 5000 + b"}",
    "duplicate keys": b'{"name": "a", "name": "b", "email": "a@b.test", "email": "c@d.test"}',
    "NUL in a key": b'{"na\\u0000me": "x"}',
    "lone surrogate": b'{"name": "\\udc00", "first_name": "\\ud800"}',
    "not an object": b'"just a string"',
    "truncated": b'{"name": "x',
    "empty key soup": b"{" + b'"":1,' * 5000 + b'"":1}',
}

# A valid body per JSON operation (operationId), so per-field hostile values get past the rest of
# the validation. ``{id}`` paths are filled with real resources of the caller's organisation.
VALID_BODIES: dict[str, dict[str, Any]] = {
    "issue_token": {"email": "nobody@example.test", "password": "wrong password"},
    "post_leads": {"first_name": "Ada", "last_name": "Lovelace", "company": "Analytical"},
    "patch_leads_id": {"first_name": "Ada"},
    "post_leads_id_convert": {"name": "Deal"},
    "post_leads_id_merge": {"other_id": "00000000-0000-0000-0000-000000000000"},
    "post_leads_batch": {"create": [{"first_name": "Ada"}], "update": [], "delete": []},
    "post_deals": {"name": "Deal"},
    "patch_deals_id": {"name": "Deal"},
    "post_calls_outbound": {"carrier": "twilio", "to_number": "+15005550006"},
    "post_activities": {"text": "note", "lead_id": "{lead}"},
    "post_users": {"email": "new-{n}@example.test", "name": "New", "role": "rep"},
    "patch_users_id": {"name": "Renamed"},
    "post_teams": {"name": "Team {n}"},
    "patch_teams_id": {"name": "Team {n}"},
    "post_api_tokens": {"name": "token"},
    "post_webhooks": {"url": "https://example.com/hook"},
    "patch_webhooks_id": {"description": "hook"},
    "put_scoring_icp": {"icp": {"base": 10}},
    "patch_organization": {"plan": "professional"},
    "put_coaching_rules": {"rules": {}},
    "post_coaching_rules_preview": {"text": "too expensive"},
    "post_carrier_numbers": {"number": "+14155550123", "user_id": "{user}"},
    "post_calls_id_comments": {"at_ms": 0, "body": "note"},
    "post_pipelines": {"name": "P-{n}", "stages": [{"name": "first", "probability": 0.1}]},
    "patch_pipelines_id": {"name": "P-{n}"},
    "post_pipelines_id_stages": {"name": "S-{n}", "probability": 0.5},
    "patch_pipelines_id_stages_stage_id": {"probability": 0.3},
}

NUMBERS = [10**30, -(10**30), 2**63, -(2**63) - 1, 2**31, 1e300, -1e300, 1.5e-320, 0.001]
STRINGS = ["\\u0000", "\\ud800", "\\udfff\\ud800", "x" * 100_000, "\\u202e\\ufeff"]


def json_operations(openapi: dict[str, Any]) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(method, path template, operationId, body schema) of every operation taking a JSON body."""
    found = []
    for path, ops in openapi["paths"].items():
        for method, op in ops.items():
            content = (op.get("requestBody") or {}).get("content", {})
            if "application/json" in content:
                found.append(
                    (method.upper(), path, op["operationId"], content["application/json"]["schema"])
                )
    return found


def _resolve(schema: dict[str, Any], openapi: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    return openapi["components"]["schemas"][ref.rsplit("/", 1)[1]] if ref else schema


def _types(prop: dict[str, Any]) -> set[str]:
    kinds = {prop.get("type")}
    for alt in prop.get("anyOf", []) + prop.get("oneOf", []):
        kinds.add(alt.get("type"))
    return {k for k in kinds if k}


async def _resources(api, org) -> dict[str, str]:
    admin = org.admin
    lead = await api.create_lead(admin)
    deal = await api.create_deal(admin)
    _, team = await api.request(
        "POST", "/api/v1/teams", as_=admin, json={"name": f"T-{uuid.uuid4().hex[:6]}"}
    )
    _, hook = await api.request(
        "POST", "/api/v1/webhooks", as_=admin, json={"url": "https://example.com/h"}
    )
    async with api.pool.acquire() as conn:  # a call to comment on
        call = await create_call(
            conn, NewCall(org.id, "simulator", "outbound", external_id=uuid.uuid4().hex, rep_id=org.rep.user_id)
        )
    _, pipelines = await api.request("GET", "/api/v1/pipelines", as_=admin)
    [pipeline] = pipelines["data"]
    return {
        "calls": str(call["id"]),
        "pipelines": pipeline["id"],
        "stages": pipeline["stages"][2]["id"],  # no deal in it
        "leads": lead["id"],
        "deals": deal["id"],
        "teams": team["id"],
        "webhooks": hook["id"],
        "users": org.rep.user_id,
        "lead": lead["id"],
    }


def _fill_path(template: str, ids: dict[str, str]) -> str:
    def one(match: re.Match[str]) -> str:
        resource = template[: match.start()].rstrip("/").rsplit("/", 1)[-1]
        return ids.get(resource, str(uuid.uuid4()))

    return re.sub(r"\{\w+\}", one, template)


def _body_text(body: dict[str, Any], ids: dict[str, str]) -> str:
    text = json.dumps(body).replace("{lead}", ids["lead"]).replace("{user}", ids["users"])
    return text.replace("{n}", uuid.uuid4().hex[:8])


async def _send(api, method: str, path: str, raw: bytes, person=None) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if person is not None:
        headers.update(person.auth)
    resp = await api.client.request(method, path, data=raw, headers=headers)
    body = await resp.read()
    return resp.status, body


def _assert_refused_cleanly(label: str, status: int, body: bytes) -> None:
    assert status < 500, f"{label}: {status} {body[:300]!r}"
    if status >= 400:
        error = json.loads(body)["error"]
        assert isinstance(error["code"], str) and isinstance(error["message"], str), (
            f"{label}: {body[:300]!r}"
        )


@pytest.mark.asyncio(loop_scope="session")
async def test_every_json_operation_refuses_hostile_bodies_without_a_5xx(world):  # noqa: F811
    operations = json_operations(world.openapi)
    assert {"issue_token", "post_leads", "put_scoring_icp"} <= {op for _, _, op, _ in operations}
    missing = sorted(op for _, _, op, _ in operations if op not in VALID_BODIES)
    assert not missing, f"add a valid body for {missing} to VALID_BODIES"
    org = await world.make_org()
    ids = await _resources(world, org)
    for method, template, op_id, _schema in operations:
        path = _fill_path(template, ids)
        for name, raw in HOSTILE_BODIES.items():
            for person in (None, org.admin):
                status, body = await _send(world, method, path, raw, person)
                _assert_refused_cleanly(
                    f"{method} {template} {name} as {person and person.role}", status, body
                )
                if person is not None or template == "/auth/token":
                    # the body was read: a parse refusal, never an acceptance of the hostile text
                    assert status in (400, 413, 422), (
                        f"{method} {template} {name}: {status} {body[:200]!r}"
                    )


@pytest.mark.asyncio(loop_scope="session")
async def test_every_json_field_refuses_out_of_range_and_unstorable_values(world):  # noqa: F811
    org = await world.make_org()
    ids = await _resources(world, org)
    tried = 0
    for method, template, op_id, schema in json_operations(world.openapi):
        path = _fill_path(template, ids)
        base = json.loads(_body_text(VALID_BODIES[op_id], ids))
        properties = _resolve(schema, world.openapi).get("properties", {})
        for field, prop in properties.items():
            kinds = _types(prop)
            values: list[str] = []
            if kinds & {"integer", "number"}:
                values += [json.dumps(n) for n in NUMBERS]
            if "string" in kinds:
                values += [f'"{s}"' for s in STRINGS]
            if "object" in kinds:  # free-form objects (the ICP rules) get hostile numbers inside
                values += [f'{{"base": {json.dumps(n)}}}' for n in NUMBERS]
            for value in values:
                rest = {k: v for k, v in base.items() if k != field}
                text = json.dumps(rest)[:-1] + ("," if rest else "") + f'"{field}": {value}' + "}"
                text = text.replace("{n}", uuid.uuid4().hex[:8])
                status, body = await _send(world, method, path, text.encode(), org.admin)
                _assert_refused_cleanly(f"{method} {template} {field}={value[:40]}", status, body)
                tried += 1
    assert tried > 100


@pytest.mark.asyncio(loop_scope="session")
async def test_forged_cursor_that_nests_deeply_is_a_400(world):  # noqa: F811
    import base64

    org = await world.make_org()
    cursor = base64.urlsafe_b64encode(b"[" * 5000).decode().rstrip("=")
    resp, body = await world.request(
        "GET", "/api/v1/leads", as_=org.admin, params={"cursor": cursor}
    )
    assert resp.status == 400, body
    assert body["error"]["code"] == "invalid_cursor"
    cursor = base64.urlsafe_b64encode(
        b'["created_at", "\\ud800", "%s"]' % str(uuid.uuid4()).encode()
    ).decode()
    resp, body = await world.request(
        "GET", "/api/v1/leads", as_=org.admin, params={"cursor": cursor.rstrip("=")}
    )
    assert resp.status == 400, body


@pytest.mark.parametrize("raw", list(HOSTILE_BODIES.values())[:13], ids=list(HOSTILE_BODIES)[:13])
def test_parse_json_refuses_with_its_own_error(raw):
    with pytest.raises(JsonInputError):
        parse_json(raw)


@pytest.mark.parametrize(
    "raw", [b'{"na\\u0000me": 1}', b'[{"a": "\\ud800"}]', b'["\\udfff\\ud800"]']
)
def test_parse_json_refuses_unstorable_text_and_says_where(raw):
    with pytest.raises(UnstorableText):
        parse_json(raw)


def test_parse_json_keeps_what_json_allows():
    assert parse_json(b'{"a": [1, 2.5, -3e2, true, null, "\\ud83d\\ude00"]}') == {
        "a": [1, 2.5, -300.0, True, None, "\U0001f600"]
    }
    assert parse_json(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH) is not None
    with pytest.raises(JsonInputError):
        parse_json(b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1))
    assert parse_json('"' + "[" * 50 + '"') == "[" * 50  # brackets inside a string do not nest


# The bracket scan runs before the recursive parser, so a body too deep for the interpreter is
# refused for its depth, never reaches the parser's RecursionError; strings, escapes and closed
# siblings must not fool it.
DEEP_BEYOND_RECURSION = {
    "arrays": b"[" * 5_000 + b"]" * 5_000,
    "objects": b'{"a":' * 5_000 + b"1" + b"}" * 5_000,
    "mixed": b'[{"a":' * 2_500 + b"1" + b"}]" * 2_500,
    "after strings": b'{"Az": "b\\\\", "q": "\\"]]", "c": ' + b"[" * 5_000 + b"]" * 5_000 + b"}",
    "after closed siblings": b"[" + b"[]," * 2_000 + b"[" * 1_500 + b"]" * 1_501,
}


@pytest.mark.parametrize("raw", DEEP_BEYOND_RECURSION.values(), ids=DEEP_BEYOND_RECURSION)
def test_parse_json_refuses_deep_bodies_for_their_depth_before_parsing(raw):
    with pytest.raises(JsonInputError, match=f"nests deeper than {MAX_DEPTH} levels"):
        parse_json(raw)


def test_parse_json_counts_depth_not_brackets():
    wide = parse_json(b"[" + b",".join([b"[]"] * 100) + b"]")
    assert wide == [[]] * 100
    many_keys = {f"k{i}": i for i in range(300)}  # more keys than small ints are cached for
    assert parse_json(json.dumps(many_keys)) == many_keys
    # exactly the bound deep, with more brackets than the bound in all
    at_bound = b"[" * MAX_DEPTH + b"]" * MAX_DEPTH
    assert parse_json(b"[" + at_bound[1:-1] + b",[]]") is not None
    assert _nesting_exceeds(at_bound.decode(), MAX_DEPTH) is False
    assert _nesting_exceeds("[" + at_bound.decode() + "]", MAX_DEPTH) is True
    in_string = '["\\\\", "\\"' + "[" * 100 + '"]'  # brackets after an escaped quote
    assert parse_json(in_string) == ["\\", '"' + "[" * 100]
    assert parse_json('["a [' + "[" * 40 + '"]') == ["a [" + "[" * 40]  # blanks in strings


def test_parse_json_walk_after_parsing_bounds_depth_on_its_own():
    # Belt and braces behind the scan: the walk over the parsed value holds the same bound.
    for empty in ([], {}):
        value: Any = empty
        for _ in range(MAX_DEPTH - 1):
            value = [value] if isinstance(empty, list) else {"a": value}
        _check_depth_and_text(value, MAX_DEPTH)
        with pytest.raises(JsonInputError, match="nests deeper"):
            _check_depth_and_text([value], MAX_DEPTH)


def test_parse_json_bounds_numbers_by_their_length():
    assert parse_json("9" * 40) == int("9" * 40)
    assert parse_json("0." + "5" * 38) == float("0." + "5" * 38)
    for raw in ("9" * 41, "9" * 100, "0." + "5" * 39, "1" + "0" * 60 + ".5"):
        with pytest.raises(JsonInputError, match="more than 40 characters"):
            parse_json(raw)


def test_parse_json_names_the_first_duplicated_key_briefly():
    with pytest.raises(JsonInputError, match="the key 'a' appears more than once"):
        parse_json(b'{"b": 1, "a": 2, "a": 3, "c": 4}')
    long_key = "k" * 100
    with pytest.raises(JsonInputError) as refused:
        parse_json(f'{{"{long_key}": 1, "{long_key}": 2}}')
    assert refused.value.reason == f"the key {'k' * 60!r} appears more than once in an object"


def test_parse_json_says_where_the_syntax_breaks():
    with pytest.raises(JsonInputError, match="Expecting value at line 2 column 7"):
        parse_json(b'{"a":\n  [1, ]}')
