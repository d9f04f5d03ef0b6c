"""The speech pool a node decodes with: its own model, speech workers over Redis, or both."""

from __future__ import annotations

import asyncio
import os
import re
import socket

import redis.asyncio as aioredis

from media.stt.decoder import DecoderOptions
from media.stt.pool import PoolOptions, SpeechModelPool, cpu_parallelism
from voice_server.remote_speech_pool import RemoteSpeechPool
from voice_server.settings import Settings


def pool_parallelism(settings: Settings) -> tuple[int, int]:
    """(decode workers, threads per worker) from the COACHLINE_STT_* settings."""
    if settings.stt_device != "cuda":
        return cpu_parallelism(os.cpu_count() or 1, settings.stt_workers, settings.stt_threads)
    return settings.stt_workers or 1, settings.stt_threads  # a GPU runs one batch at a time well


def load_local_pool(settings: Settings) -> SpeechModelPool:
    """Load the model (~1 s, reads ~75 MB: call it off the event loop)."""
    workers, threads = pool_parallelism(settings)
    return SpeechModelPool.from_model(
        settings.stt_model,
        decoder_options=DecoderOptions(
            device=settings.stt_device, compute_type=settings.stt_compute_type, cpu_threads=threads
        ),
        options=PoolOptions(workers=workers, max_batch=settings.stt_max_batch),
    )


def wire_node_id(node_id: str | None) -> str:
    """The node id as a Redis key part (any configured id works)."""
    node_id = node_id or f"{socket.gethostname()}-{os.getpid()}"
    return re.sub(r"[^A-Za-z0-9._:-]", "_", node_id)[:128] or "node"


async def open_speech_pool(
    settings: Settings, redis: aioredis.Redis | None, node_id: str | None
) -> SpeechModelPool | RemoteSpeechPool:
    loop = asyncio.get_running_loop()
    if settings.stt_remote == "off" or redis is None:
        return await loop.run_in_executor(None, load_local_pool, settings)
    local = None
    if settings.stt_remote == "auto":
        local = await loop.run_in_executor(None, load_local_pool, settings)
    pool = RemoteSpeechPool(
        redis,
        wire_node_id(node_id),
        local,
        mode=settings.stt_remote,
        final_timeout_s=settings.stt_remote_timeout_s,
    )
    return await pool.start()
