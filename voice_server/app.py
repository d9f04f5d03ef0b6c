"""The aiohttp application factory."""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable

import asyncpg
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from crm_core.admin.carrier_numbers import seed_numbers
from crm_core.api.routes import add_api_routes
from crm_core.api_context import ApiOptions
from crm_core.api_errors import ApiError, Unauthenticated, unavailable_error
from crm_core.auth import authenticate
from crm_core.auth.accounts import active_user_profile
from crm_core.calls.events import CallEventWriter
from voice_server import health
from voice_server.api_admission import ApiAdmission, api_admission_middleware
from voice_server.app_keys import (
    CALL_SESSIONS,
    DRAINING,
    LIVE_CALLS,
    LIVE_FEED,
    METRICS,
    RUNTIME,
    SETTINGS,
)
from voice_server.call_recovery import setup_call_recovery
from voice_server.call_session import CallSessions
from voice_server.crm_jobs import install_crm_jobs
from voice_server.drain_gate import refuse_new_calls_while_draining
from voice_server.feed_access import CrmFeedAccess
from voice_server.live_calls import LiveCalls
from voice_server.live_feed import LiveFeedHub
from voice_server.live_intelligence import live_intelligence_ctx
from voice_server.logs import request_id_var
from voice_server.metrics import NodeMetrics
from voice_server.rate_limits import api_rate_limits
from voice_server.recordings import setup_recordings
from voice_server.rule_set_engine import CoachingRuleSets
from voice_server.runtime import Runtime
from voice_server.settings import Settings
from voice_server.web import SignedInUser, add_api_docs_routes, add_page_routes

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def _route_label(request: web.Request) -> str:
    # The route template, never the raw path: ids in paths would explode the metric's labels.
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def _request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    incoming = request.headers.get("X-Request-ID", "")
    request_id = incoming if _REQUEST_ID_RE.match(incoming) else uuid.uuid4().hex
    token = request_id_var.set(request_id)
    metrics = request.app[METRICS]
    route = _route_label(request)
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
    except web.HTTPException as exc:
        status = exc.status
        exc.headers["X-Request-ID"] = request_id
        raise
    except asyncio.CancelledError:
        status = 499  # the client went away
        raise
    except Exception as exc:
        unavailable = unavailable_error(exc)
        if unavailable is not None:
            # PostgreSQL, Redis or the disk cannot serve now: the caller may retry (carriers
            # do), and a traceback per request would bury the one line that says why.
            log.warning("%s %s: 503, a dependency is unavailable: %s: %s",
                        request.method, request.path, type(exc).__name__, exc)
            status = 503
            response = unavailable.response()
        else:
            log.exception("unhandled error in %s %s", request.method, request.path)
            response = web.json_response(
                {"error": {"code": "internal_error", "message": "internal server error",
                           "request_id": request_id}},
                status=500,
            )
    finally:
        metrics.http_requests.labels(request.method, route, str(status)).inc()
        metrics.http_latency.labels(route).observe(time.perf_counter() - started)
        request_id_var.reset(token)
    if not response.prepared:
        response.headers["X-Request-ID"] = request_id
    return response


async def _metrics(request: web.Request) -> web.Response:
    token = request.app[SETTINGS].metrics_token
    if token is not None and not _bearer_matches(request, token.get_secret_value()):
        # The one error shape, without saying whether a token was configured wrong or missing.
        return Unauthenticated("this endpoint needs the metrics bearer token").response()
    body = generate_latest(request.app[METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def _bearer_matches(request: web.Request, expected: str) -> bool:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), expected.encode()
    )


def _bus_of(app: web.Application):
    bus = app[RUNTIME].bus
    if bus is None:
        raise RuntimeError("the event bus is not open yet")
    return bus


def create_app(settings: Settings, runtime: Runtime | None = None) -> web.Application:
    """Build the application.

    Without ``runtime`` the app opens one on startup (starting local servers
    if needed) and closes it on cleanup; a runtime passed in stays the caller's.
    """
    # a draining node refuses new calls (voice_server/drain_gate.py)
    app = web.Application(middlewares=[_request_context, refuse_new_calls_while_draining],
                          client_max_size=2 * 1024 * 1024)
    metrics = NodeMetrics()
    app[SETTINGS] = settings
    app[METRICS] = metrics
    app[LIVE_CALLS] = LiveCalls(on_change=metrics.live_calls.set)
    app[DRAINING] = asyncio.Event()
    app[RUNTIME] = runtime if runtime is not None else Runtime(settings)
    app[CALL_SESSIONS] = CallSessions(lambda: _bus_of(app), app[LIVE_CALLS])
    # an overloaded node sheds API requests (503) instead of letting every latency grow
    app.middlewares.append(api_admission_middleware(ApiAdmission(
        settings.api_max_in_flight, settings.api_max_queue_wait_ms / 1000,
        on_in_flight=metrics.api_in_flight.set, on_shed=metrics.api_shed.inc,
    )))

    if runtime is None:
        async def _own_runtime(app: web.Application):
            await app[RUNTIME].start()
            yield
            await app[RUNTIME].close()

        app.cleanup_ctx.append(_own_runtime)

    async def _persist_call_events(app: web.Application):
        writer = CallEventWriter(lambda: app[RUNTIME].pool, _bus_of(app))
        await writer.start()
        yield
        await writer.close()

    app.cleanup_ctx.append(_persist_call_events)

    if settings.carrier_numbers:
        async def _seed_carrier_numbers(app: web.Application):
            # COACHLINE_CARRIER_NUMBERS bootstraps the routing table admins edit (docs/operations.md)
            try:
                async with app[RUNTIME].pool.acquire() as conn:
                    added = await seed_numbers(conn, dict(settings.carrier_numbers))
                if added:
                    log.info("carrier numbers: %d copied from COACHLINE_CARRIER_NUMBERS", added)
            except (asyncpg.PostgresError, OSError) as exc:
                log.warning("carrier numbers not copied from COACHLINE_CARRIER_NUMBERS: %s", exc)
            yield

        app.cleanup_ctx.append(_seed_carrier_numbers)
    # the node id, and the calls a dead node left open ended: before anything takes a call
    setup_call_recovery(app)
    if settings.stt_enabled:
        app.cleanup_ctx.append(live_intelligence_ctx)

    # the CRM REST API (/api/v1, /auth/token, /auth/logout)
    add_api_routes(
        app,
        pool=lambda: app[RUNTIME].pool,
        bus=lambda: app[RUNTIME].bus,
        options=ApiOptions(secure_cookies=settings.cookie_secure, session_ttl_s=settings.session_ttl_s,
                           webhooks_allow_private_urls=settings.webhooks_allow_private_urls,
                           public_url=settings.public_url, csv_export_max_rows=settings.csv_export_max_rows),
        # per-organisation limits after authentication, per-IP/account limits on sign-in attempts,
        # per-IP limits on unauthenticated requests
        rate_limits=api_rate_limits(settings, lambda: app[RUNTIME].redis),
        request_id=lambda: request_id_var.get(None),
        rule_set_engine=CoachingRuleSets(),
    )

    async def _live_feed(app: web.Application):
        hub = LiveFeedHub(_bus_of(app), CrmFeedAccess(lambda: app[RUNTIME].pool))
        app[LIVE_FEED] = hub
        await hub.start()
        yield
        await hub.close()

    app.cleanup_ctx.append(_live_feed)

    async def _handle_own_calls(request: web.Request) -> web.StreamResponse:
        return await request.app[LIVE_FEED].handle_own_calls(request)

    async def _handle_one_call(request: web.Request) -> web.StreamResponse:
        return await request.app[LIVE_FEED].handle_one_call(request)

    async def _handle_floor(request: web.Request) -> web.StreamResponse:
        return await request.app[LIVE_FEED].handle_floor(request)

    app.router.add_get("/ws/live", _handle_own_calls)
    app.router.add_get("/ws/floor", _handle_floor)
    app.router.add_get("/ws/calls/{call_id}", _handle_one_call)
    # The product design's name for the per-call feed; the same socket.
    app.router.add_get("/feeds/calls/{call_id}", _handle_one_call)
    add_page_routes(app, lambda request: _signed_in_user(request))
    add_api_docs_routes(app)
    # SIP/RTP edge: its own UDP sockets, started only when enabled.
    if settings.sip_enabled:
        from voice_server.app_keys import SIP_EDGE
        from voice_server.transports.sip import SipEdge, SipEdgeOptions

        async def _sip_edge(app: web.Application):
            edge = SipEdge(SipEdgeOptions.from_settings(settings), app[CALL_SESSIONS],
                           lambda: app[RUNTIME].pool, draining=app[DRAINING], metrics=metrics)
            app[SIP_EDGE] = edge
            await edge.start()
            yield
            await edge.close()

        app.cleanup_ctx.append(_sip_edge)

    # recorder on every call, recovery/retention jobs, recording review and GDPR routes
    setup_recordings(app)

    # webhooks out and lead re-scoring in the background (once across nodes)
    install_crm_jobs(app)

    app.router.add_get("/live", health.live)
    app.router.add_get("/ready", health.ready)
    app.router.add_get("/metrics", _metrics)

    # Twilio/Vonage webhooks and media WebSockets, outbound dialers
    from voice_server.transports.carriers import setup_carriers

    setup_carriers(app)
    return app


async def _signed_in_user(request: web.Request) -> SignedInUser | None:
    """The browser's user for the HTML pages: only a session cookie counts."""
    try:
        principal = await authenticate(request)
    except ApiError:
        return None
    if principal.via != "cookie":
        return None
    row = await active_user_profile(request.app[RUNTIME].pool, principal.user_id, principal.org_id)
    if row is None:
        return None
    return SignedInUser(principal.user_id, principal.org_id, principal.role, row["name"], row["email"])


def start_draining(app: web.Application) -> None:
    """Stop taking new calls: /ready answers 503 so load balancers move traffic away."""
    if not app[DRAINING].is_set():
        log.info("draining: refusing new calls, %d live", len(app[LIVE_CALLS]))
        app[DRAINING].set()
        app[METRICS].draining.set(1)
