"""Start the speech model once per server and attach ``CallIntelligence`` to every call."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from media.stt.pool import SpeechModelPool
from voice_server.app_keys import CALL_SESSIONS, METRICS, RUNTIME, SETTINGS
from voice_server.call_intelligence import CallIntelligence
from voice_server.call_session import CallSession
from voice_server.coaching_profiles import OrgCoachingProfiles

log = logging.getLogger(__name__)

SPEECH_POOL = web.AppKey("speech_pool", SpeechModelPool)


async def live_intelligence_ctx(app: web.Application):
    """aiohttp cleanup context: load the model, register the consumer, close on shutdown."""
    settings = app[SETTINGS]
    loop = asyncio.get_running_loop()
    # Loading reads ~75 MB from disk: keep it off the event loop.
    pool = await loop.run_in_executor(None, SpeechModelPool.from_model, settings.stt_model)
    app[SPEECH_POOL] = pool
    profiles = OrgCoachingProfiles(lambda: app[RUNTIME].pool)
    log.info("speech model %s loaded; live transcription on", settings.stt_model)

    async def attach(session: CallSession) -> CallIntelligence:
        org = await profiles.for_org(session.info.org_id)
        return CallIntelligence(session, pool, org.profile, keep_raw_text=org.keep_raw_text)

    app[CALL_SESSIONS].consumer_factories.append(attach)

    async def export_stats() -> None:
        while True:
            app[METRICS].observe_speech_pool(pool.stats())
            await asyncio.sleep(1.0)

    exporter = asyncio.create_task(export_stats(), name="stt-metrics")
    yield
    exporter.cancel()
    await asyncio.gather(exporter, return_exceptions=True)
    await pool.close()
