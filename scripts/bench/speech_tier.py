"""Speech tier benchmark: what the hop through Redis to a speech worker adds to a decode.

    python scripts/bench/speech_tier.py [--requests 100] [--concurrency 1] [--redis-url URL]

Starts a local Redis (unless --redis-url), one ``coachline speech-worker`` process
(COACHLINE_STT_* as set; tiny.en by default) and one media node's remote pool, then
sends real telephone speech (asterisk prompts) as finals and partials. For each reply:

    hop = round trip on the node (submit -> result) - the worker's own time (queue + decode)

i.e. serialising, XADD, the worker's XREADGROUP, the reply's XADD and the node's XREAD.
Reported: hop p50/p95/max, round trip p50/p95, worker time p50, and the 1-minute load
average before and after (the machine may be shared: a busy one inflates every figure).
The last line of output is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import redis.asyncio as aioredis

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from media.stt import DecodeRequest
from storage.local_servers import LocalRedis
from tests.media.speech_corpus import load_clip
from voice_server import speech_wire as wire
from voice_server.remote_speech_pool import RemoteSpeechPool

CLIPS = ["vm-prev", "vm-forward", "hours", "demo-nomatch", "conf-getpin", "vm-messages"]


def _q(values: list[float], q: float) -> float:
    values = sorted(values)
    return round(values[min(len(values) - 1, int(q * len(values)))], 2) if values else 0.0


def start_worker(redis_url: str) -> subprocess.Popen:
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "COACHLINE_LOG_FORMAT": "text",
        "PYTHONPATH": str(ROOT),
        "COACHLINE_DATA_DIR": tempfile.mkdtemp(prefix="speech-tier-"),
    }
    command = [sys.executable, "-m", "voice_server.cli", "speech-worker", "--id", "bench"]
    return subprocess.Popen(command, env=env, cwd=ROOT)


async def run(args, redis_url: str, worker: subprocess.Popen) -> dict:
    redis = aioredis.from_url(redis_url)
    try:
        deadline = time.monotonic() + 120
        while not await redis.exists(wire.WORKER_PREFIX + "bench"):
            if worker.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the speech worker did not start")
            await asyncio.sleep(0.1)
        node = await RemoteSpeechPool(
            redis, "bench-node", None, mode="required", final_timeout_s=60
        ).start()
        audio = [np.repeat(load_clip(c), 2).astype(np.float32) / 32768.0 for c in CLIPS]
        trips: list[float] = []
        sem = asyncio.Semaphore(args.concurrency)

        async def one(i: int) -> None:
            async with sem:
                t = time.monotonic()
                result = await node.submit(
                    f"s{i % args.concurrency}", DecodeRequest(audio[i % len(audio)]), final=True
                )
                assert result is not None and result.text
                trips.append(1000 * (time.monotonic() - t))

        await asyncio.gather(*(one(i) for i in range(8)))  # warm-up, not counted
        warm = len(node.hop_samples_ms())
        trips.clear()
        await asyncio.gather(*(one(i) for i in range(args.requests)))
        hops = node.hop_samples_ms()[warm:]
        worker_ms = node.worker_samples_ms()[warm:]
        await node.close()
        return {
            "hop_p50_ms": _q(hops, 0.5),
            "hop_p95_ms": _q(hops, 0.95),
            "hop_max_ms": _q(hops, 1.0),
            "round_trip_p50_ms": _q(trips, 0.5),
            "round_trip_p95_ms": _q(trips, 0.95),
            "worker_p50_ms": _q(worker_ms, 0.5),
            "requests": len(hops),
        }
    finally:
        await redis.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument(
        "--concurrency",
        type=int,
        default=1,
        help="requests in flight at once (1: the hop alone; more: the hop while the worker decodes)",
    )
    parser.add_argument("--redis-url", help="an existing Redis (default: a local one of its own)")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    local = None
    if args.redis_url is None:
        local = LocalRedis(Path(tempfile.mkdtemp(prefix="speech-tier-redis-")))
        local.start()
    redis_url = args.redis_url or local.url
    worker = start_worker(redis_url)
    try:
        figures = asyncio.run(run(args, redis_url, worker))
    finally:
        worker.terminate()
        worker.wait(30)
        if local is not None:
            local.stop()
    figures.update(
        goal_hop_p95_ms=20,
        meets_goal=figures["hop_p95_ms"] <= 20,
        concurrency=args.concurrency,
        model=os.environ.get("COACHLINE_STT_MODEL", "tiny.en"),
        load_avg_1m_before=round(load_before, 2),
        load_avg_1m_after=round(os.getloadavg()[0], 2),
        cpus=os.cpu_count(),
        python=platform.python_version(),
    )
    for key, value in figures.items():
        print(f"{key:>22}: {value}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
