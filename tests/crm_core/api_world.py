"""A running Coachline app with the CRM API on a fresh database, and people to call it as.

Every response that goes through ``ApiWorld.request`` is checked against the
OpenAPI document the server itself publishes (status documented, body
matches the schema), so every test doubles as a contract test.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp.test_utils import TestClient
from jsonschema import Draft202012Validator

from crm_core.auth.passwords import hash_password
from crm_core.auth.tokens import create_api_token

PASSWORD = "correct horse battery"
_PASSWORD_HASH = hash_password(PASSWORD)


@dataclass
class Person:
    user_id: str
    org_id: str
    role: str
    email: str
    token: str
    team_id: str | None = None

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class Org:
    id: str
    slug: str
    team_id: str
    admin: Person
    manager: Person
    rep: Person
    other_rep: Person  # same team as rep
    outsider_rep: Person  # no team


class ContractError(AssertionError):
    pass


@dataclass
class ApiWorld:
    client: TestClient
    pool: Any
    bus: Any
    openapi: dict[str, Any]
    checked: set[tuple[str, str, int]] = field(default_factory=set)

    # --- people ---------------------------------------------------------

    async def make_org(self, slug: str | None = None) -> Org:
        slug = slug or f"org-{uuid.uuid4().hex[:8]}"
        async with self.pool.acquire() as conn:
            org_id = str(await conn.fetchval(
                "INSERT INTO organizations (name, slug) VALUES ($1, $1) RETURNING id", slug))
            team_id = str(await conn.fetchval(
                "INSERT INTO teams (org_id, name) VALUES ($1, 'East') RETURNING id", org_id))
        people = {}
        for key, role, team in (("admin", "admin", None), ("manager", "manager", team_id),
                                ("rep", "rep", team_id), ("other_rep", "rep", team_id),
                                ("outsider_rep", "rep", None)):
            people[key] = await self.make_person(org_id, role, team, f"{key}@{slug}.test")
        return Org(org_id, slug, team_id, **people)

    async def make_person(self, org_id: str, role: str, team_id: str | None, email: str) -> Person:
        async with self.pool.acquire() as conn:
            user_id = str(await conn.fetchval(
                """
                INSERT INTO users (org_id, email, name, role, team_id, password_hash)
                VALUES ($1, $2, $2, $3, $4, $5) RETURNING id
                """,
                org_id, email, role, team_id, _PASSWORD_HASH,
            ))
            issued = await create_api_token(conn, org_id=org_id, user_id=user_id, name="tests",
                                            scopes=["read", "write", "transcripts:raw", "recordings:listen",
                                                    "leads:import", "users:manage", "teams:manage",
                                                    "api_tokens:manage", "webhooks:manage",
                                                    "scoring:manage", "organization:manage",
                                                     "pipelines:manage"],
                                            expires_at=None)
        return Person(user_id, org_id, role, email, issued.token, team_id)

    # --- requests checked against the OpenAPI document -----------------------

    async def request(self, method: str, path: str, *, as_: Person | None = None, json: Any = None,
                      headers: dict[str, str] | None = None, data: Any = None, params: Any = None,
                      check: bool = True):
        all_headers = dict(as_.auth) if as_ else {}
        all_headers.update(headers or {})
        resp = await self.client.request(method, path, json=json, data=data, headers=all_headers, params=params)
        body = None
        if resp.status != 204 and resp.content_type == "application/json":
            body = await resp.json()
        if check:
            self.check_contract(method, path, resp.status, body, resp.content_type, resp.headers)
        return resp, body

    def check_contract(self, method: str, path: str, status: int, body: Any,
                       media_type: str = "application/json", headers: Any = None) -> None:
        template, operation = self._operation(method, path)
        responses = operation["responses"]
        if str(status) not in responses:
            raise ContractError(f"{method} {template} answered {status}, not in the document "
                                f"({sorted(responses)}): {body}")
        content = responses[str(status)].get("content")
        if content is None:
            if body is not None:
                raise ContractError(f"{method} {template} {status} documents no body but sent {body}")
        elif "application/json" not in content:  # a documented binary body (e.g. audio/wav)
            if body is not None:
                raise ContractError(f"{method} {template} {status} documents {sorted(content)} but sent JSON")
        elif body is None and media_type != "application/json":  # e.g. a list as text/csv
            if media_type not in content:
                raise ContractError(f"{method} {template} {status} documents {sorted(content)} but sent {media_type}")
        else:
            schema = dict(content["application/json"]["schema"])
            schema["components"] = self.openapi["components"]
            errors = sorted(Draft202012Validator(schema).iter_errors(body), key=str)
            if errors:
                raise ContractError(f"{method} {template} {status}: {errors[0].message} in {body}")
        if headers is not None:
            self._check_headers(f"{method} {template} {status}", responses[str(status)], headers)
        self.checked.add((method.upper(), template, status))

    def _check_headers(self, what: str, response: dict[str, Any], headers: Any) -> None:
        """Documented response headers: the required ones sent, every one sent matching its schema."""
        for name, spec in response.get("headers", {}).items():
            if "$ref" in spec:
                spec = self.openapi["components"]["headers"][spec["$ref"].rsplit("/", 1)[-1]]
            value = headers.get(name)
            if value is None:
                if spec.get("required"):
                    raise ContractError(f"{what} documents the {name} header as required but did not send it")
                continue
            schema = spec["schema"]
            candidate: Any = value
            if schema.get("type") == "integer":
                if not re.fullmatch(r"-?\d+", value):
                    raise ContractError(f"{what} sent {name}: {value!r}, not an integer")
                candidate = int(value)
            errors = list(Draft202012Validator(schema).iter_errors(candidate))
            if errors:
                raise ContractError(f"{what} sent {name}: {value!r}: {errors[0].message}")

    def _operation(self, method: str, path: str) -> tuple[str, dict[str, Any]]:
        path = path.split("?")[0]
        for template, ops in self.openapi["paths"].items():
            pattern = "^" + re.sub(r"\{\w+\}", "[^/]+", template) + "$"
            if re.match(pattern, path) and method.lower() in ops:
                return template, ops[method.lower()]
        raise ContractError(f"{method} {path} is not in the OpenAPI document")

    # --- shortcuts ----------------------------------------------------------

    async def create_lead(self, as_: Person, **fields: Any) -> dict[str, Any]:
        body = {"first_name": "Ada", "last_name": "Lovelace", "company": "Analytical", **fields}
        resp, data = await self.request("POST", "/api/v1/leads", as_=as_, json=body)
        assert resp.status == 201, data
        return data

    async def create_deal(self, as_: Person, **fields: Any) -> dict[str, Any]:
        resp, data = await self.request("POST", "/api/v1/deals", as_=as_, json={"name": "Big deal", **fields})
        assert resp.status == 201, data
        return data
