"""``add_api_routes(app)``: mounts the CRM REST API on the node's application."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import asyncpg
from aiohttp import web

from crm_core.api import (
    activities,
    api_tokens,
    call_comments,
    call_caller,
    call_prompts,
    calls,
    deals,
    imports,
    lead_batch,
    lead_merge,
    leads,
    organization,
    outbound,
    pipeline_analytics,
    pipelines,
    scoring,
    sessions,
    team_analytics,
    teams,
    users,
    webhooks,
)
from crm_core.api import search as search_api
from crm_core.api.endpoint import Endpoint, wrap
from crm_core.api.openapi import ForeignOperation, build_openapi
from crm_core.api.rate_limits import (
    ApiRateLimits,
    add_rate_limit_headers,
    anonymous_limit_middleware,
    org_rate_limit_hook,
    redis_limiter,
)
from crm_core.api.sign_in_limits import SIGN_IN_LIMITS, SignInLimits
from crm_core.api_context import CRM_API, ApiContext, ApiOptions, no_request_id
from crm_core.api_errors import ApiError, MethodNotAllowed, NotFound, unavailable_error
from crm_core.auth.principal import RESOURCES, SELF
from crm_core.calls.dialing import Dialer
from crm_core.changes import flush_published_marks
from storage.events import EventBus

log = logging.getLogger(__name__)

PREFIX = "/api/v1"
# Operations other areas serve under /api/v1 with their own handlers (see document_routes).
FOREIGN_OPERATIONS = web.AppKey("crm_api_foreign_operations", list)

ENDPOINTS: tuple[Endpoint, ...] = (
    *sessions.ENDPOINTS, *leads.ENDPOINTS, *imports.ENDPOINTS, *deals.ENDPOINTS, *calls.ENDPOINTS, *outbound.ENDPOINTS,
    *activities.ENDPOINTS, *users.ENDPOINTS, *teams.ENDPOINTS, *api_tokens.ENDPOINTS,
    *webhooks.ENDPOINTS,
    *scoring.ENDPOINTS,
    *call_prompts.ENDPOINTS,
    *organization.ENDPOINTS,
    *call_comments.ENDPOINTS,
    *team_analytics.ENDPOINTS,
    *call_caller.ENDPOINTS,
    *lead_merge.ENDPOINTS, *search_api.ENDPOINTS, *lead_batch.ENDPOINTS,
    *pipelines.ENDPOINTS,
    *pipeline_analytics.ENDPOINTS,
)



def _check_resources(endpoints: tuple[Endpoint, ...]) -> None:
    """Every authenticated operation names a resource token scopes know, or tokens could not reach it."""
    known = RESOURCES | {SELF}
    unknown = sorted(f"{ep.method} {ep.path}: {ep.scope_resource}" for ep in endpoints
                     if not ep.public and ep.scope_resource not in known)
    if unknown:
        raise RuntimeError(f"operations with a resource API token scopes do not know: {unknown}")


_check_resources(ENDPOINTS)


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
    except Exception as exc:
        if (refusal := _unavailable(request, exc)) is None:
            raise
        return refusal.response()


def _catching(endpoint: Endpoint):
    inner = wrap(endpoint)

    async def handle(request: web.Request) -> web.StreamResponse:
        try:
            return await inner(request)
        except ApiError as exc:
            return exc.response()
        except Exception as exc:
            if (refusal := _unavailable(request, exc)) is None:
                raise
            return refusal.response()

    return handle


def _unavailable(request: web.Request, exc: Exception) -> ApiError | None:
    """A stalled or lost PostgreSQL/Redis is a 503 the client may retry, not a 500 (bugs)."""
    refusal = unavailable_error(exc)
    if refusal is not None:
        log.warning("%s %s: 503, a dependency is unavailable: %s: %s",
                    request.method, request.path, type(exc).__name__, exc)
    return refusal


def document_routes(app: web.Application, operations: tuple[ForeignOperation, ...]) -> None:
    """Put routes another area serves itself under /api/v1 into the API's OpenAPI document.

    Call it next to the ``router.add_*`` calls, before the app starts; the handlers must
    answer errors in the API's one shape (``crm_core.api_errors``).
    """
    if app.frozen:
        raise RuntimeError("document_routes must be called before the application starts")
    if FOREIGN_OPERATIONS not in app:
        app[FOREIGN_OPERATIONS] = []
    app[FOREIGN_OPERATIONS].extend(operations)


def add_api_routes(
    app: web.Application,
    *,
    pool: Callable[[], asyncpg.Pool],
    bus: Callable[[], EventBus | None],
    options: ApiOptions | None = None,
    rate_limits: ApiRateLimits | None = None,
    dialers: dict[str, Dialer] | None = None,
    request_id: Callable[[], str | None] | None = None,
    rule_set_engine: object | None = None,
) -> None:
    """Mount ``/api/v1`` (a sub-application), ``/auth/token`` and ``/auth/logout`` on ``app``.

    ``pool`` and ``bus`` are called per request, so they may be opened after this call.
    ``rate_limits`` (none: no limits) makes each authenticated request spend its organization's
    budget (a browser session: its user's interactive budget) before its handler runs, puts
    ``RateLimit-*`` headers on every response that spent a budget, limits sign-in attempts on ``/auth/token`` and
    unauthenticated requests per client IP (a middleware appended to ``app``'s). ``dialers`` (carrier name ->
    ``crm_core.calls.dialing.Dialer``) is the registry ``POST /calls/outbound`` dials through;
    it is read per request, so the carrier edge may fill ``app[CRM_API].dialers`` after this
    call. ``request_id()`` gives the id of the request being served, for audit rows.
    """
    after_authenticate = None
    if rate_limits is not None:
        limiter = redis_limiter(rate_limits.redis, enabled=rate_limits.enabled)
        after_authenticate = org_rate_limit_hook(limiter, rate_limits.policy, pool)
        # sign-in attempts spend per-IP and per-account budgets before the password is checked
        app[SIGN_IN_LIMITS] = SignInLimits(
            limiter, rate_limits.policy, per_account_per_min=rate_limits.sign_in_failures_per_email_per_min)
        # unauthenticated requests spend their client IP's budget
        app.middlewares.append(anonymous_limit_middleware(limiter, rate_limits.policy))
        # every response that spent a budget says what is left of it (RateLimit-* headers)
        app.on_response_prepare.append(add_rate_limit_headers)
    app[CRM_API] = ApiContext(pool=pool, bus=bus, options=options or ApiOptions(),
                              after_authenticate=after_authenticate,
                              dialers=dialers if dialers is not None else {},
                              request_id=request_id or no_request_id, rule_set_engine=rule_set_engine)
    api = web.Application(middlewares=[_error_shape])
    if FOREIGN_OPERATIONS not in app:
        app[FOREIGN_OPERATIONS] = []
    foreign: list[ForeignOperation] = app[FOREIGN_OPERATIONS]
    built: dict[str, dict] = {}

    async def openapi(_request: web.Request) -> web.Response:
        # Built on first use: areas set up after this call register their routes until start-up.
        if "document" not in built:
            built["document"] = build_openapi(ENDPOINTS, foreign=tuple(foreign))
        return web.json_response(built["document"])

    api.router.add_get("/openapi.json", openapi)
    for ep in ENDPOINTS:
        if ep.path.startswith(PREFIX + "/"):
            api.router.add_route(ep.method, ep.path.removeprefix(PREFIX), _catching(ep))
        else:
            app.router.add_route(ep.method, ep.path, _catching(ep))

    async def not_found(request: web.Request) -> web.Response:
        # The catch-all keeps unknown paths in the error shape; a known path with the wrong
        # method is a 405 naming the methods it has.
        allowed: set[str] = set()
        for resource in api.router.resources():
            if resource is catch_all:
                continue
            match, methods = await resource.resolve(request)
            if match is None:
                allowed |= methods
        if allowed:
            raise MethodNotAllowed(f"{request.method} is not allowed here",
                                   {"allowed": sorted(allowed)}, headers={"Allow": ", ".join(sorted(allowed))})
        raise NotFound("no such API path")

    catch_all = api.router.add_resource("/{tail:.*}")
    catch_all.add_route("*", not_found)
    app.add_subapp(PREFIX, api)
    app.on_shutdown.append(_stop_imports)
    app.cleanup_ctx.append(_housekeeping(pool, bus))
    app.on_shutdown.append(_flush_marks)


RELAY_EVERY_S = 15.0
PRUNE_EVERY_S = 3600.0


def _housekeeping(pool: Callable[[], asyncpg.Pool], bus: Callable[[], EventBus | None]):
    """Per node, in the background: re-send outbox events the bus missed (SKIP LOCKED makes
    that safe on many nodes) and forget day-old idempotency keys."""
    import asyncio
    import time

    from crm_core.api.idempotency import prune_idempotency_keys
    from crm_core.changes import relay_outbox

    async def loop() -> None:
        last_prune = 0.0
        while True:
            await asyncio.sleep(RELAY_EVERY_S)
            try:
                current_pool, current_bus = pool(), bus()
                if current_pool is None or current_bus is None:
                    continue
                await relay_outbox(current_pool, current_bus)
                if time.monotonic() - last_prune > PRUNE_EVERY_S:
                    await prune_idempotency_keys(current_pool)
                    last_prune = time.monotonic()
            except asyncio.CancelledError:
                raise
            except Exception:  # housekeeping retries on its next round
                log.warning("CRM API housekeeping failed; retrying in %.0f s", RELAY_EVERY_S, exc_info=True)

    async def ctx(_app: web.Application):
        task = asyncio.create_task(loop(), name="crm-api-housekeeping")
        yield
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    return ctx


async def _flush_marks(_app: web.Application) -> None:
    await flush_published_marks()


async def _stop_imports(_app: web.Application) -> None:
    import asyncio

    running = list(imports._JOBS)
    for task in running:
        task.cancel()
    if running:
        await asyncio.gather(*running, return_exceptions=True)
