"""The CRM's background work on each node: events and webhooks out, lead re-scoring.

Every node runs all of them; none does anything twice across nodes (outbox
rows and webhook deliveries are claimed with ``SKIP LOCKED``, ``call.ended`` is
read by one consumer group, re-scoring holds a Redis lease).
``install_crm_jobs(app)`` must be called after the runtime's own start-up is
registered, so the pool and Redis are open when the jobs start.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from crm_core.changes import relay_outbox
from crm_core.outbox import CallCompletedEvents
from crm_core.rescoring import LeadRescoringJob, RescoringOptions
from crm_core.webhooks_out import WebhookDispatcher, WebhookOptions
from voice_server.app_keys import RUNTIME, SETTINGS

log = logging.getLogger(__name__)

_STOP_GRACE_S = 2.0
_RELAY_EVERY_S = 1.0


async def _relay_outbox(runtime, stop: asyncio.Event) -> None:
    """Publish outbox events the writer could not publish at once (bus down, crash)."""
    while not stop.is_set():
        try:
            await relay_outbox(runtime.pool, runtime.bus)
        except Exception:  # noqa: BLE001 - database or bus down: next round
            log.exception("outbox relay pass failed")
        try:
            await asyncio.wait_for(stop.wait(), _RELAY_EVERY_S)
        except asyncio.TimeoutError:
            pass


def install_crm_jobs(app: web.Application) -> None:
    async def _jobs(app: web.Application):
        runtime, settings = app[RUNTIME], app[SETTINGS]
        stop = asyncio.Event()
        tasks: list[asyncio.Task] = []
        tasks.append(asyncio.create_task(_relay_outbox(runtime, stop), name="crm:outbox-relay"))
        calls_completed = CallCompletedEvents(runtime.pool, runtime.bus)
        await calls_completed.start()
        dispatcher = None
        if settings.webhooks_enabled:
            dispatcher = WebhookDispatcher(runtime.pool, WebhookOptions(
                max_attempts=settings.webhooks_max_attempts,
                timeout_s=settings.webhooks_timeout_s,
                allow_private_urls=settings.webhooks_allow_private_urls,
            ))
            tasks.append(asyncio.create_task(dispatcher.run(stop), name="crm:webhooks-out"))
        rescoring = LeadRescoringJob(runtime.pool, runtime.redis,
                                     RescoringOptions(every_s=settings.lead_rescoring_every_s))
        tasks.append(asyncio.create_task(rescoring.run(stop), name="crm:lead-rescoring"))
        yield
        stop.set()
        _, pending = await asyncio.wait(tasks, timeout=_STOP_GRACE_S)
        for task in pending:  # an HTTP delivery in flight: its claim lapses and another node retries
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await calls_completed.close()
        if dispatcher is not None:
            await dispatcher.close()

    app.cleanup_ctx.append(_jobs)

