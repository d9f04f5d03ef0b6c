"""Probes: /live (the process answers) and /ready (it can serve: dependencies up, not draining)."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from coaching.sentiment import sentiment_status
from storage.database import ping as ping_postgres
from voice_server.app_keys import DRAINING, RUNTIME

log = logging.getLogger(__name__)

_PROBE_TIMEOUT_S = 1.0


async def live(_request: web.Request) -> web.Response:
    return web.json_response({"status": "live"})


async def ready(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    if request.app[DRAINING].is_set():
        return web.json_response({"status": "draining", "failing": []}, status=503)

    async def check_postgres() -> str | None:
        if runtime.pool is None:
            return "not connected"
        for attempt in range(2):
            # After a database restart the pool's idle connections are dead;
            # the second attempt gets a fresh one.
            try:
                await ping_postgres(runtime.pool, _PROBE_TIMEOUT_S)
                return None
            except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
                error = f"{type(exc).__name__}: {exc}"
        return error

    async def check_redis() -> str | None:
        if runtime.redis is None:
            return "not connected"
        try:
            await asyncio.wait_for(runtime.redis.ping(), _PROBE_TIMEOUT_S)
            return None
        except Exception as exc:  # noqa: BLE001
            return f"{type(exc).__name__}: {exc}"

    pg_error, redis_error = await asyncio.gather(check_postgres(), check_redis())
    failing = {name: err for name, err in (("postgres", pg_error), ("redis", redis_error)) if err}
    if failing:
        log.warning("not ready: %s", failing)
        return web.json_response(
            {"status": "unavailable", "failing": sorted(failing), "detail": failing}, status=503
        )
    # Not a failure (calls are still coached), but an operator must see that sentiment fell
    # back to VADER, near chance, because the MiniLM model could not load.
    return web.json_response({"status": "ready", "failing": [], "sentiment": sentiment_status()})
