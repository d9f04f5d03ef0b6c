"""The OpenAPI 3.1 document, generated from the endpoint table and its pydantic models.

Routes served under /api/v1 by handlers outside the endpoint table (recording review,
GDPR) are described by ``ForeignOperation`` records, registered with
``crm_core.api.routes.document_routes(app, ops)``, so the API still has one document.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic.json_schema import models_json_schema

from crm_core.api.endpoint import Endpoint, QueryParam
from crm_core.api.examples import example_for
from crm_core.api.idempotency import REDACTED_HEADER, REPLAY_HEADER, shown_once_fields
from crm_core.api.representation import query_docs, selection_schema, takes_fields, takes_format
from crm_core.api.schemas.common import Error

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
    416: "The Range asked for lies outside the body",
    422: "The body (or fields= / format=) failed validation",
    500: "The stored data failed an integrity check",
    502: "The carrier refused the call or could not be reached",
    503: "A service this route needs is unavailable, or the node is overloaded; see Retry-After",
}


# any operation may be rate limited, or shed while the node is overloaded (voice_server.api_admission)
_ALWAYS = frozenset({429, 503})
_HEADER_REF = "#/components/headers/{name}"
# Response headers the document names; none is required where the server may leave it out.
_HEADERS: dict[str, dict[str, Any]] = {
    "RateLimit-Limit": {
        "description": "Requests the budget this request spent allows per window (your organisation's plan "
                       "for an API token, your own for a browser session, your address's when anonymous). "
                       "Sent whenever the request spent a budget: absent while rate limiting is off or Redis "
                       "is unreachable.",
        "schema": {"type": "integer", "minimum": 0}},
    "RateLimit-Remaining": {"description": "Requests left in that budget.",
                            "schema": {"type": "integer", "minimum": 0}},
    "RateLimit-Reset": {"description": "Seconds until that budget is whole again.",
                        "schema": {"type": "integer", "minimum": 0}},
    "Retry-After": {"description": "Seconds to wait before trying again.", "schema": {"type": "integer", "minimum": 0}},
    "ETag": {"description": "The record's version; send it back as If-Match to change the record only if "
                            "nobody changed it since.", "schema": {"type": "string"}},
    REPLAY_HEADER: {"description": "\"true\" on a response replayed for a repeated Idempotency-Key.",
                    "schema": {"type": "string", "enum": ["true"]}},
    REDACTED_HEADER: {"description": "On a replay: the fields that held a secret shown only once, now null.",
                      "schema": {"type": "string"}},
}
_RATE_LIMIT_HEADERS = ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset")


@dataclass(frozen=True, slots=True)
class ForeignOperation:
    """A route another area serves with its own handler, documented in the API's one document.

    Its handler must answer errors in the API's shape (``{"error": {code, message,
    details}}``) and only with the statuses listed here; the contract tests hold it to that.
    Foreign operations take no JSON body and do not replay ``Idempotency-Key``.
    """

    method: str
    path: str  # the full path, e.g. /api/v1/calls/{call_id}/recording
    summary: str
    tag: str
    response: type[BaseModel] | None = None  # the JSON success body; None with media_type or for 204
    status: int = 200
    paginated: bool = False
    media_type: str | None = None  # a non-JSON success body (e.g. audio/wav), documented as bytes
    other_responses: tuple[tuple[int, str], ...] = ()  # more successes, e.g. (206, "Partial content")
    query: tuple[QueryParam, ...] = ()
    headers: tuple[QueryParam, ...] = ()  # request headers the handler reads (e.g. Range)
    errors: tuple[int, ...] = (401, 403, 404)
    empty_errors: tuple[int, ...] = ()  # error statuses answered without a body (e.g. 416)
    operation_id: str = ""
    public: bool = False
    description: str = ""


def _models(endpoints: tuple[Endpoint, ...], foreign: tuple[ForeignOperation, ...] = ()) -> list[type[BaseModel]]:
    seen: dict[str, type[BaseModel]] = {"Error": Error}
    for ep in endpoints:
        for model in (ep.body, ep.response, ep.raw_body_model):
            if model is not None:
                seen[model.__name__] = model
    for op in foreign:
        if op.response is not None:
            seen[op.response.__name__] = op.response
    return list(seen.values())


def _accepts_empty(model: type[BaseModel]) -> bool:
    if model.model_json_schema().get("minProperties"):
        return False  # the handler refuses {} (e.g. 400 empty_update)
    try:
        model.model_validate({})
    except ValidationError:
        return False
    return True


def _op_id(ep: Endpoint | ForeignOperation) -> str:
    if ep.operation_id:
        return ep.operation_id
    words = re.sub(r"[{}]", "", ep.path.removeprefix("/api/v1/")).replace("-", "_").split("/")
    return ep.method.lower() + "_" + "_".join(w for w in words if w)


def _success_schema(response: type[BaseModel], paginated: bool, selectable: bool = False) -> dict[str, Any]:
    ref: dict[str, Any] = {"$ref": _REF.format(model=response.__name__)}
    if selectable:  # the whole record, or what fields= kept of it
        ref = {"anyOf": [ref, {"$ref": _REF.format(model=response.__name__ + "Fields")}]}
    if not paginated:
        return ref
    return {
        "type": "object",
        "required": ["data", "next_cursor"],
        "properties": {"data": {"type": "array", "items": ref},
                       "next_cursor": {"type": ["string", "null"]}},
    }


def _header_refs(names: tuple[str, ...], required: tuple[str, ...] = ()) -> dict[str, Any]:
    # A header required on one response and optional on another cannot share one component.
    return {name: {**_HEADERS[name], "required": True} if name in required
            else {"$ref": _HEADER_REF.format(name=name)} for name in names}


def _error_response(status: int) -> dict[str, Any]:
    extra = ("Retry-After",) if status in (429, 503) else ()
    return {
        "description": _ERROR_TEXT.get(status, "Error"),
        "headers": _header_refs((*_RATE_LIMIT_HEADERS, *extra)),
        "content": {"application/json": {"schema": {"$ref": _REF.format(model="Error")}}},
    }


def _description(ep: Endpoint) -> str:
    """The operation's prose: what the table says about it, then the rules every client must know."""
    parts = [ep.description or " ".join((ep.handler.__doc__ or "").split()) or ep.summary + "."]
    if ep.public:
        parts.append("Needs no credentials.")
    else:
        verb = "read" if ep.method == "GET" else "write"
        parts.append(f"An API token needs the `{verb}` or `{ep.scope_resource}:{verb}` scope; "
                     "a browser session's writes need X-CSRF-Token.")
    if ep.paginated:
        parts.append("One page of results: pass `next_cursor` back as `?cursor=` for the next.")
    if ep.idempotent_post:
        parts.append("Send `Idempotency-Key` to make retries safe: a repeat replays the first response "
                     f"(with `{REPLAY_HEADER}: true`).")
    if ep.etag:
        parts.append("The response's `ETag` is the record's version, for `If-Match`.")
    if ep.method in ("PATCH", "DELETE") and 412 in ep.errors:
        parts.append("Send `If-Match` with the ETag you read to refuse (412) a change made since.")
    return " ".join(parts)


def _success_headers(ep: Endpoint) -> dict[str, Any]:
    names: list[str] = list(_RATE_LIMIT_HEADERS)
    required: tuple[str, ...] = ()
    if ep.etag:
        names.append("ETag")
        # a replayed POST carries only what was stored: its body, not its headers
        required = () if ep.idempotent_post else ("ETag",)
    if ep.idempotent_post:
        names.append(REPLAY_HEADER)
        if shown_once_fields(ep.response):
            names.append(REDACTED_HEADER)
    return _header_refs(tuple(names), required)


def _examples(doc: dict[str, Any]) -> None:
    """An example on every JSON body the document describes, valid against its schema."""
    components = doc["components"]["schemas"]
    for ops in doc["paths"].values():
        for op in ops.values():
            media = [op["requestBody"]["content"]] if "requestBody" in op else []
            media += [r["content"] for r in op["responses"].values() if "content" in r]
            for content in media:
                json_body = content.get("application/json")
                if json_body is not None and "example" not in json_body:
                    json_body["example"] = example_for(json_body["schema"], components)


def _foreign_operation(op: ForeignOperation) -> dict[str, Any]:
    prose = op.description or op.summary + "."
    if not op.public:
        prose += " Needs a signed-in session or an API token (Authorization: Bearer)."
    out: dict[str, Any] = {"operationId": _op_id(op), "summary": op.summary, "description": prose,
                           "tags": [op.tag], "responses": {}}
    params = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}
        for name in re.findall(r"{(\w+)}", op.path)
    ]
    params += [{"name": q.name, "in": "query", "required": False, "schema": q.schema,
                "description": q.description} for q in op.query]
    params += [{"name": h.name, "in": "header", "required": False, "schema": h.schema,
                "description": h.description} for h in op.headers]
    if params:
        out["parameters"] = params
    successes = ((op.status, op.summary), *op.other_responses)
    for status, text in successes:
        headers = _header_refs(_RATE_LIMIT_HEADERS)
        if op.media_type is not None:
            content = {op.media_type: {"schema": {"type": "string", "contentMediaType": op.media_type}}}
            out["responses"][str(status)] = {"description": text, "headers": headers, "content": content}
        elif op.response is not None:
            out["responses"][str(status)] = {
                "description": text, "headers": headers,
                "content": {"application/json": {"schema": _success_schema(op.response, op.paginated)}},
            }
        else:
            out["responses"][str(status)] = {"description": text, "headers": headers}
    for status in sorted(set(op.errors) | _ALWAYS):
        out["responses"][str(status)] = _error_response(status)
    for status in op.empty_errors:
        out["responses"][str(status)] = {"description": _ERROR_TEXT.get(status, "Error")}
    if not op.public:
        out["security"] = [{"bearer": []}, {"session": []}]
    return out


def build_openapi(endpoints: tuple[Endpoint, ...], *, foreign: tuple[ForeignOperation, ...] = (),
                  version: str = "1.0.0") -> dict[str, Any]:
    models = _models(endpoints, foreign)
    modes = [(m, "serialization") for m in models] + [(m, "validation") for m in models]
    _, defs = models_json_schema(modes, ref_template=_REF)
    schemas = defs.get("$defs", {})
    paths: dict[str, dict[str, Any]] = {}
    for ep in endpoints:
        op: dict[str, Any] = {
            "operationId": _op_id(ep),
            "summary": ep.summary,
            "description": _description(ep),
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
                           "schema": {"type": "string", "minLength": 1, "maxLength": 255},
                           "description": "Retries with the same key replay the first response."})
        params += query_docs(ep.method, ep.response, ep.paginated)
        if ep.method == "GET" and ep.response is not None:
            params.append({"name": "If-None-Match", "in": "header", "required": False, "schema": {"type": "string"},
                           "description": "ETags you hold (or *): if one matches (weak comparison), 304."})
        if ep.method in ("PATCH", "DELETE") and 412 in ep.errors:
            # only where the handler checks it (check_if_match): elsewhere it would be a promise not kept
            params.append({"name": "If-Match", "in": "header", "required": False, "schema": {"type": "string"},
                           "description": "The ETag you read; a stale one answers 412."})
        if params:
            op["parameters"] = params
        body_model = ep.body or ep.raw_body_model
        if body_model is not None:
            op["requestBody"] = {
                # An empty body reads as {} (endpoint.read_json_body): it is optional wherever {} is valid.
                "required": ep.body is not None and not _accepts_empty(ep.body),
                "content": {"application/json": {"schema": {"$ref": _REF.format(model=body_model.__name__)}}},
            }
        elif ep.raw_body is not None:
            op["requestBody"] = {"required": True, "content": {ep.raw_body: {"schema": {"type": "string"}}}}
        if ep.response is None:
            op["responses"][str(ep.status)] = {"description": "Done, no content", "headers": _success_headers(ep)}
        else:
            selectable = takes_fields(ep.method, ep.response)
            if selectable and ep.response.__name__ + "Fields" not in schemas:
                name = ep.response.__name__
                schemas[name + "Fields"] = selection_schema(name, schemas[name].get("properties", {}))
            schema = _success_schema(ep.response, ep.paginated, selectable)
            content: dict[str, Any] = {"application/json": {"schema": schema}}
            if takes_format(ep.method, ep.paginated):
                content["text/csv"] = {"schema": {"type": "string"}}
            op["responses"][str(ep.status)] = {"description": ep.summary, "headers": _success_headers(ep),
                                               "content": content}
            for other in ep.also_ok:
                op["responses"][str(other)] = {**op["responses"][str(ep.status)], "description": "Done"}
            if ep.method == "GET":
                op["responses"]["304"] = {
                    "description": "Not modified: If-None-Match names the current ETag",
                    "headers": _header_refs((*_RATE_LIMIT_HEADERS, "ETag"), ("ETag",)),
                }
        statuses = set(ep.errors) | _ALWAYS
        if takes_fields(ep.method, ep.response) or takes_format(ep.method, ep.paginated):
            statuses |= {422}
        if ep.idempotent_post:
            statuses |= {409}  # a retry while the first request with its Idempotency-Key still runs
        if ep.body is not None or ep.raw_body is not None:
            statuses |= {413, 415} if ep.body is not None else {413}
        for status in sorted(statuses):
            op["responses"][str(status)] = _error_response(status)
        if not ep.public:
            op["security"] = [{"bearer": []}, {"session": []}]
        paths.setdefault(ep.path, {})[ep.method.lower()] = op
    for fop in foreign:
        paths.setdefault(fop.path, {})[fop.method.lower()] = _foreign_operation(fop)
    doc = {
        "openapi": "3.1.0",
        "info": {
            "title": "Coachline CRM API",
            "version": version,
            "description": "Leads, deals, calls, transcripts, recordings, activities, users, teams, API tokens "
                           "and GDPR requests. "
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
            "headers": {name: dict(header) for name, header in _HEADERS.items()},
        },
    }
    _examples(doc)
    return doc
