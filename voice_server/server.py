"""Run the app until SIGTERM/SIGINT, then drain live calls and shut down cleanly."""

from __future__ import annotations

import asyncio
import logging
import signal

from aiohttp import web

from voice_server.app import create_app, start_draining
from voice_server.app_keys import CALL_SESSIONS, LIVE_CALLS
from voice_server.settings import Settings

log = logging.getLogger(__name__)


async def serve(settings: Settings, *, stop: asyncio.Event | None = None) -> None:
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    app = create_app(settings)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=5.0)
    await runner.setup()  # opens the runtime: local servers, pool, migrations
    try:
        site = web.TCPSite(runner, settings.host, settings.port, reuse_address=True)
        await site.start()
        log.info("Coachline listening on http://%s:%d", settings.host, settings.port)
        await stop.wait()
        log.info("shutdown requested")
        start_draining(app)
        live = app[LIVE_CALLS]
        if len(live):
            if await live.wait_empty(settings.shutdown_grace_s):
                log.info("all live calls ended")
            else:
                log.warning("%d call(s) still live after %.0f s; closing them",
                            len(live), settings.shutdown_grace_s)
                await app[CALL_SESSIONS].close_all("node shutting down")
    finally:
        await runner.cleanup()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        log.info("Coachline stopped")
