"""The OpenAPI 3.1 document, generated from the endpoint table and its pydantic models."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from crm_core.api.endpoint import Endpoint
from crm_core.api.models import Error

_REF = "#/components/schemas/{model}"
_ERROR_TEXT = {
    400: "Malformed request (bad JSON, unknown filter, bad cursor)",
    401: "Missing or invalid credentials",
    403: "Not allowed (role, permission, scope or CSRF)",
    404: "No such record, or not yours to see",
    409: "Conflict (duplicate, already done, request in progress)",
    412: "If-Match does not match the record's ETag",
    413: "Body too large",
    415: "Unsupported media type",
    429: "Rate limit exceeded; see Retry-After",
    422: "The body failed validation",
}


def _models(endpoints: tuple[Endpoint, ...]) -> list[type[BaseModel]]:
    seen: dict[str, type[BaseModel]] = {"Error": Error}
    for ep in endpoints:
        for model in (ep.body, ep.response, ep.raw_body_model):
            if model is not None:
                seen[model.__name__] = model
    return list(seen.values())


def _op_id(ep: Endpoint) -> str:
    if ep.operation_id:
        return ep.operation_id
    words = re.sub(r"[{}]", "", ep.path.removeprefix("/api/v1/")).replace("-", "_").split("/")
    return ep.method.lower() + "_" + "_".join(w for w in words if w)


def build_openapi(endpoints: tuple[Endpoint, ...], *, version: str = "1.0.0") -> dict[str, Any]:
    models = _models(endpoints)
    modes = [(m, "serialization") for m in models] + [(m, "validation") for m in models]
    _, defs = models_json_schema(modes, ref_template=_REF)
    schemas = defs.get("$defs", {})
    paths: dict[str, dict[str, Any]] = {}
    for ep in endpoints:
        op: dict[str, Any] = {
            "operationId": _op_id(ep),
            "summary": ep.summary,
            "tags": [ep.tag],
            "responses": {},
        }
        params = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}
            for name in re.findall(r"{(\w+)}", ep.path)
        ]
        params += [{"name": q.name, "in": "query", "required": False, "schema": q.schema,
                    "description": q.description} for q in ep.query]
        if ep.method == "POST" and not ep.public:
            params.append({"name": "Idempotency-Key", "in": "header", "required": False,
                           "schema": {"type": "string", "maxLength": 255},
                           "description": "Retries with the same key replay the first response."})
        if ep.method in ("PATCH", "DELETE"):
            params.append({"name": "If-Match", "in": "header", "required": False, "schema": {"type": "string"},
                           "description": "The ETag you read; a stale one answers 412."})
        if params:
            op["parameters"] = params
        body_model = ep.body or ep.raw_body_model
        if body_model is not None:
            op["requestBody"] = {
                "required": ep.body is not None,
                "content": {"application/json": {"schema": {"$ref": _REF.format(model=body_model.__name__)}}},
            }
        elif ep.raw_body is not None:
            op["requestBody"] = {"required": True, "content": {ep.raw_body: {"schema": {"type": "string"}}}}
        if ep.response is None:
            op["responses"][str(ep.status)] = {"description": "Done, no content"}
        else:
            ref = {"$ref": _REF.format(model=ep.response.__name__)}
            schema = ref
            if ep.paginated:
                schema = {
                    "type": "object",
                    "required": ["data", "next_cursor"],
                    "properties": {"data": {"type": "array", "items": ref},
                                   "next_cursor": {"type": ["string", "null"]}},
                }
            op["responses"][str(ep.status)] = {"description": ep.summary,
                                               "content": {"application/json": {"schema": schema}}}
        statuses = set(ep.errors) | {429}
        if ep.body is not None or ep.raw_body is not None:
            statuses |= {413, 415} if ep.body is not None else {413}
        for status in sorted(statuses):
            op["responses"][str(status)] = {
                "description": _ERROR_TEXT.get(status, "Error"),
                "content": {"application/json": {"schema": {"$ref": _REF.format(model="Error")}}},
            }
        if not ep.public:
            op["security"] = [{"bearer": []}, {"session": []}]
        paths.setdefault(ep.path, {})[ep.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Coachline CRM API",
            "version": version,
            "description": "Leads, deals, calls, transcripts, activities, users, teams and API tokens. "
                           "Errors: {\"error\": {\"code\", \"message\", \"details\"}}. "
                           "Lists: {\"data\": [...], \"next_cursor\"}; pass next_cursor as ?cursor=.",
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer",
                           "description": "An API token (cl_…) or a browser access token (cla_…)."},
                "session": {"type": "apiKey", "in": "cookie", "name": "coachline_session",
                            "description": "Browser session; writes need X-CSRF-Token."},
            },
        },
    }
