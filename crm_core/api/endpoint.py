"""One REST endpoint: its route, its models, and the wrapper that makes every endpoint behave alike.

The wrapper authenticates, reads and validates the JSON body (size limit,
pydantic), replays ``Idempotency-Key`` POSTs, and renders the reply; a GET's
reply is shaped as asked (``fields=``, CSV) and tagged, and answers 304 when
``If-None-Match`` names what the client holds. The
same ``Endpoint`` records feed the OpenAPI document, so the document and
the server cannot drift apart.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ValidationError

from crm_core.api.conditional import body_etag, none_match_hits
from crm_core.api.csv_export import CsvExport, stream_csv
from crm_core.api.idempotency import run_idempotent, shown_once_fields
from crm_core.api.reply import RAW_BODY_KEY, Call, Handler, Reply, render
from crm_core.api.representation import Shape, read_shape, select, selectable_fields
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
    # Other success statuses with the same body (e.g. 200 when a create merged into an existing record).
    also_ok: tuple[int, ...] = ()

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
        if endpoint.method == "GET":
            shape = read_shape(request, method="GET", response=endpoint.response, paginated=endpoint.paginated)
            call = Call(request, principal, body, context, shape)
            return await answer_get(call, endpoint, await endpoint.handler(call))
        call = Call(request, principal, body, context)
        key = request.headers.get("Idempotency-Key")
        if key is not None and endpoint.idempotent_post and principal is not None:
            return await run_idempotent(call, key, endpoint.handler, shown_once_fields(endpoint.response))
        return render(await endpoint.handler(call))

    handle.__name__ = endpoint.operation_id or endpoint.handler.__name__
    return handle


# Headers a 304 repeats from the 200 it stands for (RFC 9110 §15.4.5).
_NOT_MODIFIED_HEADERS = ("ETag", "Vary", "Cache-Control", "Content-Location", "Expires")


async def answer_get(call: Call, endpoint: Endpoint, reply: Reply) -> web.StreamResponse:
    """A GET's reply as the request shaped it, tagged; 304 if the client already holds it."""
    shape: Shape = call.shape
    if endpoint.paginated:
        reply.headers.setdefault("Vary", "Accept")  # JSON or CSV, by Accept
    if shape.csv and reply.status == 200 and endpoint.response is not None:
        export = reply.data
        if not isinstance(export, CsvExport):  # a list the handler answers whole, in one page
            cap = call.context.options.csv_export_max_rows
            export = CsvExport(_one_page(reply.json_body()["data"][:cap]), cap)
        columns = shape.fields or selectable_fields(endpoint.response)
        return await stream_csv(call.request, export, columns, filename=endpoint.tag, headers=reply.headers)
    if shape.fields is not None and reply.data is not None:
        body = reply.json_body()
        if endpoint.paginated:
            body = {**body, "data": [select(item, shape.fields) for item in body["data"]]}
        else:
            body = select(body, shape.fields)
        reply.data = body
    response = render(reply)
    if reply.status != 200 or not isinstance(response.body, bytes):
        return response
    etag = response.headers.setdefault("ETag", body_etag(response.body))
    if none_match_hits(call.request, etag):
        kept = {name: response.headers[name] for name in _NOT_MODIFIED_HEADERS if name in response.headers}
        return web.Response(status=304, headers=kept)
    return response


async def _one_page(items: list[Any]) -> AsyncIterator[list[Any]]:
    yield items
