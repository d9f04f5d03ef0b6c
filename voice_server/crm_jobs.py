"""The CRM's background work on each node: webhooks out and lead re-scoring.

Every node runs both; neither does anything twice across nodes (webhook
deliveries are claimed with ``SKIP LOCKED``, re-scoring holds a Redis lease).
The outbox relay to the bus is the CRM API's housekeeping.
``install_crm_jobs(app)`` must be called after the runtime's own start-up is
registered, so the pool and Redis are open when the jobs start.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from crm_core.scoring.rescoring import LeadRescoringJob, RescoringOptions
from crm_core.webhooks.delivery import WebhookDispatcher, WebhookOptions
from voice_server.app_keys import RUNTIME, SETTINGS

log = logging.getLogger(__name__)

_STOP_GRACE_S = 2.0


def install_crm_jobs(app: web.Application) -> None:
    async def _jobs(app: web.Application):
        runtime, settings = app[RUNTIME], app[SETTINGS]
        stop = asyncio.Event()
        tasks: list[asyncio.Task] = []
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
        if dispatcher is not None:
            await dispatcher.close()

    app.cleanup_ctx.append(_jobs)

