"""What the CRM API needs from the node that serves it, stored on the root app.

Kept on the root application (not the /api/v1 sub-application) so that other
areas' handlers can call ``crm_core.auth.authenticate(request)`` too.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import asyncpg
from aiohttp import web

from crm_core.calls.dialing import Dialer
from storage.events import EventBus


@dataclass(frozen=True, slots=True)
class ApiOptions:
    # Secure flag on cookies: set when the node is served over TLS or behind a TLS proxy.
    secure_cookies: bool = False
    session_ttl_s: int = 8 * 3600
    max_json_bytes: int = 256 * 1024
    max_import_bytes: int = 10 * 1024 * 1024
    max_import_rows: int = 50_000
    page_size_default: int = 50
    page_size_max: int = 200
    # Most rows one CSV export of a list streams (it says so in its X-Export-Row-Cap header).
    csv_export_max_rows: int = 100_000
    # webhook URLs may point at private/loopback addresses (tests, on-premises installs)
    webhooks_allow_private_urls: bool = False
    # The node's public URL: its origin is accepted on sign-in besides the request's Host.
    public_url: str | None = None


def no_request_id() -> str | None:
    return None


@dataclass(frozen=True, slots=True)
class ApiContext:
    pool: Callable[[], asyncpg.Pool]
    bus: Callable[[], EventBus | None]
    options: ApiOptions
    # Called with (request, principal) once a request is authenticated, before its handler:
    # the per-organization rate limit (crm_core.api.rate_limits). It may raise an HTTP error.
    after_authenticate: Callable[[web.Request, object], Awaitable[None]] | None = None
    # The id of the request being served, for audit rows (the node's logging context keeps it).
    request_id: Callable[[], str | None] = no_request_id
    # Carrier name -> Dialer. The node's carrier edge fills this registry (crm_core never
    # imports the edge); POST /calls/outbound looks the carrier up in it per request.
    dialers: dict[str, Dialer] = field(default_factory=dict)
    # The coaching engine that checks and previews rule sets (crm_core.admin.rule_sets.RuleSetEngine);
    # the node hands it in, as crm_core does not import the engine. None: those operations answer 503.
    rule_set_engine: object | None = None


CRM_API = web.AppKey("crm_api", ApiContext)


def api_context(request: web.Request) -> ApiContext:
    return request.config_dict[CRM_API]
