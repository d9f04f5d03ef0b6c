"""Admission control for the CRM API: a bounded number of requests in flight, a bounded wait.

Without it an overloaded node accepts every request, each one waits longer
for the event loop, the database pool and the garbage collector, and
latency climbs until clients time out (the API bench saw p99 reach 30 s at
a load the machine could not carry). With it, at most
``COACHLINE_API_MAX_IN_FLIGHT`` API requests run at once; the next ones
wait up to ``COACHLINE_API_MAX_QUEUE_WAIT_MS`` for a slot and are then
answered ``503`` (``overloaded``, ``Retry-After: 1``) in the API's error
shape, so the ones admitted keep their latency and a load balancer or
client can go elsewhere. Calls, media and carrier webhooks are never
refused here: a live call matters more than a CRM page.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiohttp import web

from crm_core.api_errors import ApiError
from voice_server.rate_limits import Handler

API_PREFIXES = ("/api/", "/auth/")


class ApiAdmission:
    """Counts API requests in flight and admits one when a slot frees up in time."""

    def __init__(
        self,
        max_in_flight: int,
        max_wait_s: float,
        *,
        on_in_flight: Callable[[int], None] | None = None,
        on_shed: Callable[[], None] | None = None,
    ) -> None:
        if max_in_flight < 1 or max_wait_s < 0:
            raise ValueError("max_in_flight must be >= 1 and max_wait_s >= 0")
        self.max_in_flight = max_in_flight
        self.max_wait_s = max_wait_s
        self._slots = asyncio.Semaphore(max_in_flight)
        self._in_flight = 0
        self._on_in_flight = on_in_flight or (lambda n: None)
        self._on_shed = on_shed or (lambda: None)

    @property
    def in_flight(self) -> int:
        return self._in_flight

    async def admit(self) -> bool:
        """Take a slot (waiting at most ``max_wait_s``); False means shed the request."""
        if self._slots.locked():  # only a full node pays for wait_for's timer and task
            try:
                await asyncio.wait_for(self._slots.acquire(), self.max_wait_s)
            except TimeoutError:
                self._on_shed()
                return False
        else:
            await self._slots.acquire()
        self._in_flight += 1
        self._on_in_flight(self._in_flight)
        return True

    def release(self) -> None:
        self._in_flight -= 1
        self._on_in_flight(self._in_flight)
        self._slots.release()


class Overloaded(ApiError):
    status, code = 503, "overloaded"

    def __init__(self) -> None:
        super().__init__("this node is handling as many API requests as it can; retry shortly", {},
                         headers={"Retry-After": "1"})


def api_admission_middleware(admission: ApiAdmission):
    @web.middleware
    async def _admission(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith(API_PREFIXES):
            return await handler(request)
        if not await admission.admit():
            return Overloaded().response()
        try:
            return await handler(request)
        finally:
            admission.release()

    return _admission
