"""Start the speech model once per server and attach ``CallIntelligence`` to every call."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from coaching.sentiment import default_model as default_sentiment_model
from media.speakers.encoder import SpeakerEncoder, SpeakerModelError
from media.stt.pool import SpeechModelPool
from voice_server.app_keys import CALL_SESSIONS, METRICS, RUNTIME, SETTINGS
from voice_server.call_intelligence import CallIntelligence
from voice_server.call_session import CallSession
from voice_server.coaching_profiles import OrgCoachingProfiles
from voice_server.rep_voiceprints import RepVoiceprints
from voice_server.speech_pools import open_speech_pool, pool_parallelism

log = logging.getLogger(__name__)


def _speaker_encoder() -> SpeakerEncoder | None:
    """The voice encoder for mixed-channel calls; without it they are transcribed unlabelled."""
    try:
        return SpeakerEncoder()
    except (SpeakerModelError, OSError) as exc:
        log.warning("speaker attribution off for mixed-channel calls: %s", exc)
        return None

SPEECH_POOL = web.AppKey("speech_pool", SpeechModelPool)


async def live_intelligence_ctx(app: web.Application):
    """aiohttp cleanup context: load the model, register the consumer, close on shutdown."""
    settings = app[SETTINGS]
    loop = asyncio.get_running_loop()
    workers, threads = pool_parallelism(settings)
    # COACHLINE_STT_REMOTE: this node's own model, speech workers over Redis, or both
    pool = await open_speech_pool(settings, app[RUNTIME].redis,
                                  app[CALL_SESSIONS].node_id or settings.node_id)
    app[SPEECH_POOL] = pool
    speaker_encoder = await loop.run_in_executor(None, _speaker_encoder)
    # the sentiment model (MiniLM, ~1 s to build; VADER when it cannot) loads once, here
    sentiment = await loop.run_in_executor(None, default_sentiment_model)
    profiles = OrgCoachingProfiles(lambda: app[RUNTIME].pool)
    # reps' voices learnt on two-track calls, enrolled on mixed-channel ones
    voiceprints = (RepVoiceprints(speaker_encoder, lambda: app[RUNTIME].pool)
                   if speaker_encoder is not None else None)
    log.info("speech model %s loaded (%d decode workers x %d threads, speech workers: %s); "
             "live transcription on", settings.stt_model, workers, threads, settings.stt_remote)
    log.info("sentiment model %s loaded", sentiment.name)

    async def attach(session: CallSession) -> CallIntelligence:
        org = await profiles.for_org(session.info.org_id)
        rep_print = (await voiceprints.load(session.info.org_id, session.info.rep_id)
                     if voiceprints is not None else None)
        intelligence = CallIntelligence(session, pool, org.profile, keep_raw_text=org.keep_raw_text,
                                        speaker_encoder=speaker_encoder,
                                        rep_voiceprint=rep_print.embedding if rep_print else None,
                                        profile_source=lambda: profiles.profile(session.info.org_id))
        def silence_in_recording(spans) -> None:
            # Card numbers spoken on the call are silenced in its recording too (PCI).
            if session.recorder is not None:
                session.recorder.silence_redacted(spans)

        intelligence.redaction.listeners.append(silence_in_recording)
        return intelligence

    app[CALL_SESSIONS].consumer_factories.append(attach)
    if voiceprints is not None:
        app[CALL_SESSIONS].consumer_factories.append(voiceprints.learner)

    async def export_stats() -> None:
        while True:
            try:
                app[METRICS].observe_speech_pool(pool.stats())
            except Exception:  # metrics must never take the node down
                log.exception("could not export speech pool stats")
            await asyncio.sleep(1.0)

    exporter = asyncio.create_task(export_stats(), name="stt-metrics")
    yield
    exporter.cancel()
    await asyncio.gather(exporter, return_exceptions=True)
    if voiceprints is not None:
        await voiceprints.drain()
    await pool.close()
