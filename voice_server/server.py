"""Run the app until SIGTERM/SIGINT, then drain live calls and shut down cleanly."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal

from aiohttp import web

from crm_core.calls.events import PERSISTING_GROUPS
from voice_server.app import create_app, start_draining
from voice_server.app_keys import CALL_SESSIONS, LIVE_CALLS, RUNTIME
from voice_server.settings import Settings

log = logging.getLogger(__name__)

# How long a stopping node waits for the CRM to persist the events of the calls it ended.
_PERSIST_WAIT_S = 30.0


async def serve(settings: Settings, *, stop: asyncio.Event | None = None) -> None:
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    app = create_app(settings)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=5.0)
    try:
        # Opens the runtime (local servers, pool, migrations), then the rest of the app; if
        # any part fails, cleanup still closes what had opened (no server is left running).
        await runner.setup()
        site = web.TCPSite(runner, settings.host, settings.port, reuse_address=True)
        await site.start()
        log.info("Coachline listening on http://%s:%d", settings.host, settings.port)
        _freeze_startup_heap()
        await stop.wait()
        log.info("shutdown requested")
        start_draining(app)
        drain_position = await _bus_position(app)
        live = app[LIVE_CALLS]
        if len(live):
            if await live.wait_empty(settings.shutdown_grace_s):
                log.info("all live calls ended")
            else:
                log.warning("%d call(s) still live after %.0f s; closing them",
                            len(live), settings.shutdown_grace_s)
                await app[CALL_SESSIONS].close_all("node shutting down")
        await _wait_events_persisted(app, drain_position)
    finally:
        await runner.cleanup()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        log.info("Coachline stopped")


def _freeze_startup_heap() -> None:
    """Keep the objects of startup (modules, models, the app) out of every later collection.

    A full (generation 2) collection walks every tracked object; with the libraries a
    node imports that took up to 244 ms on the 2-core machine, stalling every request in
    flight (scripts/bench/api.py, server_gc). Frozen objects are never scanned nor freed: fine for
    what lives as long as the process.
    """
    gc.collect()
    gc.freeze()


async def _bus_position(app: web.Application) -> str | None:
    position = getattr(app[RUNTIME].bus, "position", None)
    if position is None:
        return None
    try:
        return await position()
    except Exception as exc:  # noqa: BLE001 - Redis down: wait on everything instead
        log.warning("could not read the event bus position: %s", exc)
        return None


async def _wait_events_persisted(app: web.Application, since: str | None) -> None:
    """Let the CRM's consumers (on any node) persist the last calls' transcripts and endings.

    The events are safe in Redis either way; waiting means they are in PostgreSQL
    before this process is gone, even when no other node is running.
    """
    wait_consumed = getattr(app[RUNTIME].bus, "wait_consumed", None)
    if wait_consumed is None:  # in-process bus: its consumers are closed with the app
        return
    try:
        if await wait_consumed(PERSISTING_GROUPS, _PERSIST_WAIT_S, after=since):
            log.info("call events persisted")
        else:
            log.warning("call events not yet persisted after %.0f s; another node will",
                        _PERSIST_WAIT_S)
    except Exception as exc:  # noqa: BLE001 - Redis down: the events wait in Redis
        log.warning("could not check that call events were persisted: %s", exc)
