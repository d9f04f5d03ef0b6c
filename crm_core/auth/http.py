"""Authentication of HTTP requests: Bearer tokens for API clients, cookies for the browser.

``authenticate(request)`` is the one entry point; other areas (live feed,
recordings) call it too. Accepted credentials, in order:

* ``Authorization: Bearer cl_…`` (API token) or ``Bearer cla_…`` (a browser's
  short-lived access token from ``POST /auth/token``);
* with ``allow_query_token=True`` (WebSockets, <audio> sources, which cannot
  send headers), on GET/HEAD only: ``?access_token=cla_…`` (or ``?token=``) — access
  tokens only (a URL ends up in logs and history; no write may be authorised by one);
* the ``coachline_session`` HttpOnly cookie. Cookie-authenticated requests
  that change state must echo the ``coachline_csrf`` cookie in an
  ``X-CSRF-Token`` header (double submit, also checked against the session).

Signing in has no session to check a CSRF token against, so ``check_sign_in_origin`` refuses
what a cross-site page could send without a CORS preflight: a body that is not
``application/json`` (an HTML form, ``text/plain``) and a request whose ``Origin`` (or
``Sec-Fetch-Site``) says it comes from another site. Without it a page elsewhere could sign a
visitor's browser into the attacker's account.
"""

from __future__ import annotations

import hmac
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from crm_core.api_context import api_context
from crm_core.api_errors import Forbidden, Unauthenticated, UnsupportedMediaType
from crm_core.auth.principal import Principal, principal_for_user, verb_of
from crm_core.auth.tokens import (
    ACCESS_TOKEN_MARK,
    API_TOKEN_MARK,
    principal_from_api_token,
    session_by_token,
)

SESSION_COOKIE = "coachline_session"
CSRF_COOKIE = "coachline_csrf"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Requests that may carry ?access_token= (media and WebSocket upgrades, which cannot send headers).
QUERY_TOKEN_METHODS = frozenset({"GET", "HEAD"})
# aiohttp >= 3.13 has typed request keys; older ones take strings.
_PRINCIPAL_KEY: Any = (web.RequestKey("crm_core.principal", Principal) if hasattr(web, "RequestKey")
                       else "crm_core.principal")


class CsrfRejected(Forbidden):
    code = "csrf_failed"


async def authenticate(
    request: web.Request, *, allow_query_token: bool = False, resource: str | None = None
) -> Principal:
    """The principal behind ``request``; raises ``Unauthenticated`` (401) or ``Forbidden`` (403).

    ``resource`` names what the route reads (GET) or changes (the rest), for the API token's
    scopes (``Principal.may``); without it only an all-resource scope passes. The principal is
    cached on the request, so calling it twice costs one lookup; the scope is checked each time.
    """
    principal = request.get(_PRINCIPAL_KEY)
    if principal is None:
        principal = await _resolve(request, allow_query_token)
        request[_PRINCIPAL_KEY] = principal
    require_scope(principal, request.method, resource)
    return principal


def require_scope(principal: Principal, method: str, resource: str | None) -> None:
    """403 ``insufficient_scope`` unless the principal's scopes allow ``method`` on ``resource``."""
    verb = verb_of(method)
    if not principal.may(verb, resource):
        wanted = [verb] if resource is None else [verb, f"{resource}:{verb}"]
        raise Forbidden(f"this API token lacks the {' or '.join(repr(w) for w in wanted)} scope",
                        {"scopes": wanted}, code="insufficient_scope")


async def _resolve(request: web.Request, allow_query_token: bool) -> Principal:
    pool = api_context(request).pool()
    token: str | None = None
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated("Authorization must be 'Bearer <token>'")
    elif (allow_query_token and request.method in QUERY_TOKEN_METHODS
          and (request.query.get("access_token") or request.query.get("token"))):
        token = request.query.get("access_token") or request.query["token"]
        if not token.startswith(ACCESS_TOKEN_MARK):
            raise Unauthenticated("only short-lived access tokens may travel in the URL")

    if token is not None:
        async with pool.acquire() as conn:
            if token.startswith(ACCESS_TOKEN_MARK):
                row = await session_by_token(conn, token, "access")
                if row is not None:
                    return principal_for_user(
                        dict(row), via="session", session_id=str(row["browser_session_id"])
                    )
            elif token.startswith(API_TOKEN_MARK):
                principal = await principal_from_api_token(conn, token)
                if principal is not None:
                    return principal
        raise Unauthenticated("the token is unknown, expired or revoked")

    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        raise Unauthenticated()
    async with pool.acquire() as conn:
        row = await session_by_token(conn, cookie, "browser")
    if row is None:
        raise Unauthenticated("the session has expired; sign in again")
    if request.method not in SAFE_METHODS:
        check_csrf(request, row["csrf_token"])
    return principal_for_user(dict(row), via="cookie", session_id=str(row["session_id"]))


def check_csrf(request: web.Request, expected: str | None) -> None:
    sent = request.headers.get(CSRF_HEADER, "")
    cookie_value = request.cookies.get(CSRF_COOKIE, "")
    if not (sent and expected and hmac.compare_digest(sent, cookie_value)
            and hmac.compare_digest(sent, expected)):
        raise CsrfRejected(
            f"cookie-authenticated writes need the {CSRF_HEADER} header matching the {CSRF_COOKIE} cookie"
        )


def check_sign_in_origin(request: web.Request, public_url: str | None = None) -> None:
    """Refuse a sign-in a cross-site page could send: 415 unless the body is JSON, 403 when the
    browser says the request comes from another origin than this server (its ``Host``) or
    ``public_url``."""
    if request.content_type != "application/json":
        raise UnsupportedMediaType("sign in with an application/json body")
    if request.headers.get("Sec-Fetch-Site", "").lower() == "cross-site":
        raise CsrfRejected("cross-site sign-in requests are refused")
    origin = request.headers.get("Origin")
    if origin is None:
        return  # not a browser, or a same-origin GET-like request: the content type rule holds
    allowed = {request.host.lower()}
    if public_url:
        allowed.add(urlsplit(public_url).netloc.lower())
    parts = urlsplit(origin.strip())
    if parts.scheme not in ("http", "https") or parts.netloc.lower() not in allowed:
        raise CsrfRejected("cross-origin sign-in requests are refused", {"origin": origin[:200]})
