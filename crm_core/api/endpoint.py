"""One REST endpoint: its route, its models, and the wrapper that makes every endpoint behave alike.

The wrapper authenticates, reads and validates the JSON body (size limit,
pydantic), replays ``Idempotency-Key`` POSTs, and renders the reply. The
same ``Endpoint`` records feed the OpenAPI document, so the document and
the server cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ValidationError

from crm_core.api.idempotency import run_idempotent, shown_once_fields
from crm_core.api.reply import RAW_BODY_KEY, Call, Handler, render
from crm_core.api_context import api_context
from crm_core.api_errors import (
    BadRequest,
    PayloadTooLarge,
    Unprocessable,
    UnsupportedMediaType,
    validation_details,
)
from crm_core.auth.http import authenticate
from crm_core.json_input import JsonInputError, UnstorableText, parse_json


@dataclass(frozen=True, slots=True)
class QueryParam:
    """A documented query parameter (filters, sort, cursor, limit)."""

    name: str
    schema: dict[str, Any]
    description: str


@dataclass(frozen=True, slots=True)
class Endpoint:
    method: str
    path: str  # relative to /api/v1, with {name} placeholders
    handler: Handler
    summary: str
    tag: str
    body: type[BaseModel] | None = None
    response: type[BaseModel] | None = None  # None: no body (204) or a non-JSON body
    status: int = 200
    paginated: bool = False  # the response is {data: [response], next_cursor}
    query: tuple[QueryParam, ...] = ()
    public: bool = False
    # A body the handler reads itself: its media type and (for JSON) its model, documented only.
    raw_body: str | None = None
    raw_body_model: type[BaseModel] | None = None
    errors: tuple[int, ...] = (400, 401, 403, 404, 422)
    operation_id: str = ""
    # What API token scopes bound (crm_core.auth.principal.RESOURCES, or SELF: any valid token
    # may read it); "" is the tag's resource ("api-tokens" -> "api_tokens").
    resource: str = ""
    # What the summary leaves out, for the document's description (the handler's docstring otherwise).
    description: str = ""
    # The success response carries the record's ETag (for If-Match on a later PATCH/DELETE).
    etag: bool = False

    @property
    def idempotent_post(self) -> bool:
        return self.method == "POST" and not self.public

    @property
    def scope_resource(self) -> str:
        return self.resource or self.tag.replace("-", "_")


async def read_limited(request: web.Request, limit: int) -> bytes:
    """The whole body, refusing (413) as soon as it passes ``limit`` bytes (read once, then cached)."""
    if RAW_BODY_KEY in request:
        return request[RAW_BODY_KEY]
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"the request body exceeds {limit} bytes", {"limit": limit})
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.read(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the request body exceeds {limit} bytes", {"limit": limit})
        chunks.append(chunk)
    request[RAW_BODY_KEY] = b"".join(chunks)
    return request[RAW_BODY_KEY]


def parse_body(raw: bytes) -> Any:
    """The JSON value of a request body, or a 400 ``invalid_json`` saying what is wrong with it."""
    try:
        return parse_json(raw)
    except UnstorableText as exc:
        raise Unprocessable("the body failed validation",
                            [{"loc": list(exc.loc), "type": "string_unstorable", "message": exc.reason}]) from None
    except JsonInputError as exc:
        raise BadRequest("the body is not valid JSON", {"reason": exc.reason}, code="invalid_json") from None


async def read_json_body(request: web.Request, model: type[BaseModel], limit: int) -> BaseModel:
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"the request body exceeds {limit} bytes", {"limit": limit})
    raw = await read_limited(request, limit)
    if not raw.strip():
        raw = b"{}"
    elif request.content_type not in ("application/json", "application/octet-stream", ""):
        # Browsers' form posts are refused rather than guessed at.
        raise UnsupportedMediaType("send the body as application/json")
    parse_body(raw)  # hostile or malformed text is a 400, a wrong value (below) a 422
    try:
        # Strict, from the JSON text: a JSON 0 is not a boolean nor "5" an integer, as the document
        # says (lax mode would turn {"is_active": 0} into a deactivation). Strings still carry
        # dates, times and UUIDs, as JSON must.
        return model.model_validate_json(raw, strict=True)
    except ValidationError as exc:
        raise Unprocessable("the body failed validation", validation_details(exc)) from None


def wrap(endpoint: Endpoint) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        context = api_context(request)
        principal = None if endpoint.public else await authenticate(request, resource=endpoint.scope_resource)
        if principal is not None and context.after_authenticate is not None:
            await context.after_authenticate(request, principal)
        body = None
        if endpoint.raw_body == "text/csv":
            # read before the idempotency check, which fingerprints the body
            await read_limited(request, context.options.max_import_bytes)
        if endpoint.body is not None:
            body = await read_json_body(request, endpoint.body, context.options.max_json_bytes)
        call = Call(request, principal, body, context)
        key = request.headers.get("Idempotency-Key")
        if key is not None and endpoint.idempotent_post and principal is not None:
            return await run_idempotent(call, key, endpoint.handler, shown_once_fields(endpoint.response))
        return render(await endpoint.handler(call))

    handle.__name__ = endpoint.operation_id or endpoint.handler.__name__
    return handle
