"""The REST API's one error shape: ``{"error": {"code", "message", "details"}}``.

Handlers and the auth layer raise an ``ApiError`` subclass; the API's
middleware renders it. Handlers on the root app (recording review, GDPR) and
other areas that call ``crm_core.auth.authenticate`` (the live feed) render one
with ``error.response()``.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from storage.errors import is_unavailable


class ApiError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, details: Any = None, *, code: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        self.headers = headers or {}
        if code is not None:
            self.code = code

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}

    def response(self) -> web.Response:
        return web.json_response(self.body(), status=self.status, headers=self.headers)


class BadRequest(ApiError):
    status, code = 400, "bad_request"


class Unauthenticated(ApiError):
    status, code = 401, "unauthenticated"

    def __init__(self, message: str = "missing or invalid credentials", details: Any = None) -> None:
        super().__init__(message, details, headers={"WWW-Authenticate": 'Bearer realm="coachline"'})


class Forbidden(ApiError):
    status, code = 403, "forbidden"


class NotFound(ApiError):
    status, code = 404, "not_found"


class MethodNotAllowed(ApiError):
    status, code = 405, "method_not_allowed"


class Conflict(ApiError):
    status, code = 409, "conflict"


class PreconditionFailed(ApiError):
    status, code = 412, "precondition_failed"


class PayloadTooLarge(ApiError):
    status, code = 413, "payload_too_large"


class Unprocessable(ApiError):
    status, code = 422, "validation_failed"


class UnsupportedMediaType(ApiError):
    status, code = 415, "unsupported_media_type"


class ServerError(ApiError):
    status, code = 500, "internal_error"


# Seconds a client should wait before trying again after a 503 for an unavailable dependency:
# a PostgreSQL or Redis restart is usually over in a few seconds.
RETRY_AFTER_S = 2


class ServiceUnavailable(ApiError):
    status, code = 503, "service_unavailable"

    def __init__(self, message: str = "a service this request needs is unavailable; try again",
                 details: Any = None, *, code: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message, details, code=code,
                         headers={"Retry-After": str(RETRY_AFTER_S), **(headers or {})})


def unavailable_error(exc: BaseException) -> ServiceUnavailable | None:
    """The 503 for ``exc`` when it means PostgreSQL, Redis or the disk cannot serve now
    (``storage.errors.is_unavailable``); None for anything else (a bug stays a 500).

    The reply names no server and carries no error text: that is for the log.
    """
    if not is_unavailable(exc):
        return None
    return ServiceUnavailable()


def validation_details(exc: Any) -> list[dict[str, Any]]:
    """pydantic's errors as plain JSON: where, what and why (never the whole input)."""
    return [
        {"loc": [str(p) for p in err.get("loc", ())], "type": err.get("type"), "message": err.get("msg")}
        for err in exc.errors(include_url=False, include_input=False)
    ]
