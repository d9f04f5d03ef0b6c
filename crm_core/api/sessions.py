"""POST /auth/token and POST /auth/logout: browser sign-in and short-lived bearer tokens.

* ``POST /auth/token {email, password}`` (``application/json``, same-origin) signs in: it sets the HttpOnly
  ``coachline_session`` cookie (SameSite=Lax; Secure when configured) and the
  script-readable ``coachline_csrf`` cookie, and returns a short-lived bearer
  token for API calls.
* ``POST /auth/token`` with no body, from a signed-in browser (cookie +
  ``X-CSRF-Token``), returns a fresh bearer token.
* ``POST /auth/logout`` revokes the session and its bearer tokens and clears
  the cookies.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from crm_core.api.endpoint import Endpoint, parse_body, read_limited
from crm_core.api.reply import Call, Reply
from crm_core.api.schemas.auth import TokenRequest, TokenResponse
from crm_core.api.sign_in_limits import SIGN_IN_LIMITS, SignInCharge
from crm_core.api_errors import BadRequest, Unauthenticated, Unprocessable, validation_details
from crm_core.auth.accounts import user_for_password
from crm_core.auth.http import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    authenticate,
    check_csrf,
    check_sign_in_origin,
)
from crm_core.auth.tokens import create_access_token, create_browser_session, session_by_token

ACCESS_TOKEN_TTL_S = 15 * 60


def _cookie_attrs(call: Call, *, http_only: bool, max_age: int) -> dict[str, Any]:
    return {"path": "/", "httponly": http_only, "samesite": "Lax", "max_age": max_age,
            "secure": call.context.options.secure_cookies}


def parse_sign_in(raw: bytes) -> TokenRequest:
    """The one reading of a sign-in body: what the account lookup, the password check and the
    attempt limit all see."""
    value = parse_body(raw)  # hostile or malformed text: 400 (or 422 for unstorable text)
    try:
        return TokenRequest.model_validate(value)
    except ValidationError as exc:
        raise Unprocessable("the body failed validation", validation_details(exc)) from None


async def issue_token(call: Call) -> Reply:
    raw = await read_limited(call.request, 16 * 1024)
    ttl = call.context.options.session_ttl_s
    if raw.strip():
        check_sign_in_origin(call.request, call.context.options.public_url)
        body = parse_sign_in(raw)
        limits = call.request.config_dict.get(SIGN_IN_LIMITS)

        async def admit(account_keys: list[str]) -> SignInCharge:
            if limits is None:
                return SignInCharge()
            return await limits.charge(call.request, account_keys)

        async with call.pool.acquire() as conn:
            # bodies are not trimmed (the document's limits hold as sent); a typed email may carry blanks
            user = await user_for_password(conn, body.email, body.password, body.organization, admit=admit)
            if user is None:
                raise Unauthenticated("wrong email or password")
            async with conn.transaction():
                session = await create_browser_session(conn, user, ttl)
                access = await create_access_token(conn, org_id=str(user["org_id"]), user_id=str(user["id"]),
                                                   parent_id=session.session_id, ttl_s=ACCESS_TOKEN_TTL_S)
        reply = Reply(TokenResponse(token=access.token, expires_in=access.expires_in))
        reply.cookies.append((SESSION_COOKIE, session.token, _cookie_attrs(call, http_only=True, max_age=ttl)))
        reply.cookies.append((CSRF_COOKIE, session.csrf_token or "",
                              _cookie_attrs(call, http_only=False, max_age=ttl)))
        reply.headers["Cache-Control"] = "no-store"
        return reply

    cookie = call.request.cookies.get(SESSION_COOKIE)
    if not cookie:
        raise Unauthenticated("sign in with email and password")
    async with call.pool.acquire() as conn:
        row = await session_by_token(conn, cookie, "browser")
        if row is None:
            raise Unauthenticated("the session has expired; sign in again")
        check_csrf(call.request, row["csrf_token"])
        access = await create_access_token(conn, org_id=str(row["org_id"]), user_id=str(row["id"]),
                                           parent_id=str(row["session_id"]), ttl_s=ACCESS_TOKEN_TTL_S)
    return Reply(TokenResponse(token=access.token, expires_in=access.expires_in),
                 headers={"Cache-Control": "no-store"})


async def logout(call: Call) -> Reply:
    from crm_core.auth.tokens import revoke_session

    principal = await authenticate(call.request)
    if principal.session_id is None:
        raise BadRequest("API tokens are revoked through /api/v1/api-tokens, not logout", code="not_a_session")
    async with call.pool.acquire() as conn:
        await revoke_session(conn, principal.session_id)
    return Reply(None, 204, delete_cookies=[SESSION_COOKIE, CSRF_COOKIE])


ENDPOINTS = (
    Endpoint("POST", "/auth/token", issue_token, "Sign in (email + password) or refresh the bearer token "
             "of a signed-in browser", "auth", body=None, response=TokenResponse, public=True,
             raw_body="application/json", raw_body_model=TokenRequest,
             errors=(400, 401, 403, 413, 415, 422),
             operation_id="issue_token"),
    Endpoint("POST", "/auth/logout", logout, "Sign out: revoke the session and its tokens", "auth",
             status=204, public=True, errors=(400, 401, 403)),
)
