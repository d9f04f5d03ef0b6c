"""``add_api_routes(app)``: mounts the CRM REST API on the node's application."""

from __future__ import annotations

import logging
from typing import Awaitable, Callable

import asyncpg
from aiohttp import web

from crm_core.api import activities, api_tokens, calls, deals, imports, leads, sessions, teams, users
from crm_core.api.endpoint import Endpoint, wrap
from crm_core.api.openapi import build_openapi
from crm_core.api_context import CRM_API, ApiContext, ApiOptions
from crm_core.api_errors import ApiError, NotFound
from storage.events import EventBus

log = logging.getLogger(__name__)

PREFIX = "/api/v1"

ENDPOINTS: tuple[Endpoint, ...] = (
    *sessions.ENDPOINTS, *leads.ENDPOINTS, *imports.ENDPOINTS, *deals.ENDPOINTS, *calls.ENDPOINTS,
    *activities.ENDPOINTS, *users.ENDPOINTS, *teams.ENDPOINTS, *api_tokens.ENDPOINTS,
)


@web.middleware
async def _error_shape(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]):
    """aiohttp's own refusals (unknown path, wrong method, body too big) in the API's error shape."""
    try:
        return await handler(request)
    except ApiError as exc:
        return exc.response()
    except web.HTTPException as exc:
        if exc.status < 400 or exc.content_type == "application/json":
            raise  # redirects, and errors already in the JSON shape (e.g. 429 from rate limits)
        code = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(exc.status, "http_error")
        headers = {k: v for k, v in exc.headers.items() if k.lower() == "allow"}
        return web.json_response({"error": {"code": code, "message": exc.reason, "details": None}},
                                 status=exc.status, headers=headers)


def _catching(endpoint: Endpoint):
    inner = wrap(endpoint)

    async def handle(request: web.Request) -> web.StreamResponse:
        try:
            return await inner(request)
        except ApiError as exc:
            return exc.response()

    return handle


def add_api_routes(
    app: web.Application,
    *,
    pool: Callable[[], asyncpg.Pool],
    bus: Callable[[], EventBus | None],
    options: ApiOptions | None = None,
    after_authenticate: Callable[[web.Request, object], Awaitable[None]] | None = None,
) -> None:
    """Mount ``/api/v1`` (a sub-application), ``/auth/token`` and ``/auth/logout`` on ``app``.

    ``pool`` and ``bus`` are called per request, so they may be opened after this call.
    ``after_authenticate(request, principal)`` runs before each authenticated handler
    (rate limits per organization).
    """
    app[CRM_API] = ApiContext(pool=pool, bus=bus, options=options or ApiOptions(),
                              after_authenticate=after_authenticate)
    api = web.Application(middlewares=[_error_shape])
    document = build_openapi(ENDPOINTS)

    async def openapi(_request: web.Request) -> web.Response:
        return web.json_response(document)

    api.router.add_get("/openapi.json", openapi)
    for ep in ENDPOINTS:
        if ep.path.startswith(PREFIX + "/"):
            api.router.add_route(ep.method, ep.path.removeprefix(PREFIX), _catching(ep))
        else:
            app.router.add_route(ep.method, ep.path, _catching(ep))

    async def not_found(_request: web.Request) -> web.Response:
        raise NotFound("no such API path")

    api.router.add_route("*", "/{tail:.*}", not_found)
    app.add_subapp(PREFIX, api)
    app.on_shutdown.append(_stop_imports)


async def _stop_imports(_app: web.Application) -> None:
    import asyncio

    running = list(imports._JOBS)
    for task in running:
        task.cancel()
    if running:
        await asyncio.gather(*running, return_exceptions=True)
