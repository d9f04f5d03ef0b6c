"""The speech tier: a real `coachline speech-worker` process serving media nodes over real Redis."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import redis.asyncio as aioredis

from media.eval.wer import word_errors
from media.frames import AudioFrame, Party
from media.stt import DecodeRequest, SpeechModelPool, StreamingTranscriber
from tests.media.speech_corpus import load_clip, reference_texts, requires_corpus
from tests.polling import eventually
from voice_server import speech_wire as wire
from voice_server.remote_speech_pool import RemoteSpeechPool

pytestmark = requires_corpus
REPO = Path(__file__).resolve().parents[2]


def _float16k(name: str) -> np.ndarray:
    return np.repeat(load_clip(name), 2).astype(np.float32) / 32768.0


def _start_worker(redis_url: str, data_dir: Path, worker_id: str) -> subprocess.Popen:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "REDIS_URL": redis_url,
        "COACHLINE_DATA_DIR": str(data_dir),
        "COACHLINE_STT_MODEL": "tiny.en",
        "COACHLINE_STT_WORKERS": "1",
        "COACHLINE_LOG_FORMAT": "text",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "voice_server.cli", "speech-worker", "--id", worker_id],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def _stop(proc: subprocess.Popen) -> str:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.stdout.read().decode(errors="replace") if proc.stdout else ""


@pytest.fixture(scope="module")
async def local_pools():
    """Each media node's own model (two nodes), shared by this module's tests."""
    pools = [SpeechModelPool.from_model("tiny.en") for _ in range(2)]
    yield pools
    for pool in pools:
        await pool.close()


@pytest.fixture
async def redis(redis_url):
    client = aioredis.from_url(redis_url)
    await client.delete(wire.ALIVE, wire.REQUESTS)
    yield client
    await client.aclose()


async def _alive(redis, worker_id: str) -> bool:
    return bool(await redis.exists(wire.WORKER_PREFIX + worker_id))


async def _transcribe_call(pool, names: list[str]) -> str:
    """One party saying ``names`` with pauses between, through an unchanged StreamingTranscriber."""
    transcriber = StreamingTranscriber(Party.CUSTOMER, pool, stream_id="call-1/customer")
    finals: list[str] = []

    async def collect():
        async for segment in transcriber:
            if segment.is_final:
                finals.append(segment.text)

    reader = asyncio.create_task(collect())
    silence = np.zeros(8000, dtype=np.int16)  # 1 s: ends each utterance
    pcm = np.concatenate([x for n in names for x in (load_clip(n), silence)])
    for n, i in enumerate(range(0, len(pcm), 160)):
        transcriber.push(AudioFrame(pcm[i : i + 160], 8000, Party.CUSTOMER, i // 8))
        if n % 10 == 0:
            await asyncio.sleep(0.02)
    await transcriber.close()
    await reader
    return " ".join(finals)


async def test_no_worker_with_auto_decodes_on_the_node(redis, local_pools):
    node = await RemoteSpeechPool(redis, "node-solo", local_pools[0], mode="auto").start()
    before = local_pools[0].stats().finals_decoded
    result = await node.submit("s1", DecodeRequest(_float16k("vm-prev")), final=True)
    assert word_errors(reference_texts()["vm-prev"], result.text).wer <= 0.2, result.text
    assert local_pools[0].stats().finals_decoded == before + 1
    stats = node.remote_stats()
    assert (stats.sent, stats.local_direct, stats.worker_alive) == (0, 1, False)
    node.local = None  # the module's pools outlive this node
    await node.close()


async def test_two_media_nodes_share_one_worker_then_it_dies(
    redis, redis_url, local_pools, tmp_path
):
    texts = reference_texts()
    worker = _start_worker(redis_url, tmp_path, "w1")
    nodes = []
    try:
        await eventually(lambda: _alive(redis, "w1"), 90, what="the speech worker's heartbeat")
        nodes = [
            await RemoteSpeechPool(
                redis, f"node-{i}", local_pools[i], mode="auto", final_timeout_s=30
            ).start()
            for i in range(2)
        ]
        await eventually(lambda: all(n.worker_alive for n in nodes), 5, what="nodes see the worker")
        local_before = [p.stats().finals_decoded for p in local_pools]

        # node 0 carries a call through an unchanged StreamingTranscriber; node 1 submits finals
        names = ["vm-forward", "hours"]
        call, direct = await asyncio.gather(
            _transcribe_call(nodes[0], names),
            asyncio.gather(
                *(
                    nodes[1].submit(f"s-{n}", DecodeRequest(_float16k(n)), final=True)
                    for n in ["demo-nomatch", "vm-prev"]
                )
            ),
        )
        assert word_errors(" ".join(texts[n] for n in names), call).wer <= 0.2, call
        for name, result in zip(["demo-nomatch", "vm-prev"], direct):
            assert word_errors(texts[name], result.text).wer <= 0.2, result.text
        # every final came from the worker: neither node's own model decoded one
        assert [p.stats().finals_decoded for p in local_pools] == local_before
        assert all(n.remote_stats().replies >= 2 for n in nodes)
        assert all(n.remote_stats().local_fallbacks == 0 for n in nodes)

        # the worker dies while it holds finals: the node decodes them itself, none is lost.
        # Three finals of one stream: the worker's pool decodes a stream's finals one at a time,
        # so when all three are taken the last is certainly still unanswered.
        long_audio = np.concatenate([_float16k(n) for n in ["vm-forward", "hours", "vm-prev"]])
        pending = [
            nodes[0].submit("s-long", DecodeRequest(long_audio), final=True) for _ in range(3)
        ]

        async def taken() -> bool:
            info = await redis.xpending(wire.REQUESTS, wire.GROUP)
            return info["pending"] >= 3

        await eventually(taken, 10, interval_s=0.005, what="the worker taking the requests")
        worker.kill()
        worker.wait()
        results = await asyncio.wait_for(asyncio.gather(*pending), 30)
        reference = " ".join(texts[n] for n in ["vm-forward", "hours", "vm-prev"])
        for result in results:
            assert word_errors(reference, result.text).wer <= 0.2, result.text
        fallbacks = nodes[0].remote_stats().local_fallbacks
        assert fallbacks >= 1
        assert local_pools[0].stats().finals_decoded == local_before[0] + fallbacks
        # and once the heartbeat has expired, new requests go to the node's own pool directly
        await eventually(lambda: not nodes[0].worker_alive, 10, what="the node noticing")
        again = await nodes[0].submit("s-again", DecodeRequest(_float16k("vm-prev")), final=True)
        assert word_errors(texts["vm-prev"], again.text).wer <= 0.2
        assert nodes[0].remote_stats().local_direct >= 1
    finally:
        output = _stop(worker)
        for node in nodes:
            node.local = None
            await node.close()
    password = redis_url.split("@")[0].rsplit(":", 1)[1]
    assert len(password) >= 8 and password not in output, "the Redis password was logged"


async def test_worker_drops_malformed_requests_and_writes_only_the_askers_reply_stream(
    redis, local_pools
):
    """Anything on the request stream is untrusted: a bad one is acknowledged and dropped."""
    from voice_server.speech_worker import SpeechWorker

    good = wire.encode_request(
        wire.WireRequest("r-good", "node-x", "s1", True, 0, DecodeRequest(_float16k("vm-prev")))
    )
    hostile = [
        {"meta": "not json", "audio": b""},
        {**good, "meta": good["meta"].replace('"node-x"', '"../other key"')},
        {**good, "meta": good["meta"].replace('"node-x"', '"' + "x" * 200 + '"')},
        {**good, "meta": good["meta"].replace('"node-x"', '"node-x\\n"')},
        {**good, "audio": b"\x00\x01\x02"},  # odd length: not int16
        {**good, "meta": good["meta"].replace('"r-good"', "42")},
        {"audio": good["audio"]},
    ]
    await redis.delete(wire.REQUESTS)
    for fields in hostile:
        await redis.xadd(wire.REQUESTS, fields)
    await redis.xadd(wire.REQUESTS, good)
    stop = asyncio.Event()
    worker = SpeechWorker(redis, local_pools[1], worker_id="in-process")
    running = asyncio.create_task(worker.run(stop))
    try:
        replies = await eventually(
            lambda: redis.xrange(wire.replies_key("node-x")), 60, what="the good request's reply"
        )
        reply = wire.decode_reply(replies[0][1])
        assert reply.request_id == "r-good" and reply.error is None
        assert word_errors(reference_texts()["vm-prev"], reply.result.text).wer <= 0.2
        # every request, hostile ones too, was acknowledged and removed; no other stream written
        await eventually(lambda: _count_pending(redis), 10, what="nothing left pending")
        assert await redis.xlen(wire.REQUESTS) == 0
        keys = {k.decode() async for k in redis.scan_iter(wire.REPLIES_PREFIX + "*")}
        assert keys == {wire.replies_key("node-x")}
        assert worker.served == 1
    finally:
        stop.set()
        await running
        await redis.delete(wire.replies_key("node-x"))


async def _count_pending(redis) -> bool:
    return (await redis.xpending(wire.REQUESTS, wire.GROUP))["pending"] == 0


def test_required_mode_needs_a_shared_redis():
    from voice_server.settings import SettingsError, load_settings

    with pytest.raises(SettingsError, match="COACHLINE_STT_REMOTE=required needs REDIS_URL"):
        load_settings({"COACHLINE_STT_REMOTE": "required"})
    settings = load_settings(
        {"COACHLINE_STT_REMOTE": "required", "REDIS_URL": "redis://:pw@bus:6379"}
    )
    assert settings.stt_remote == "required"


async def test_a_server_with_required_workers_transcribes_a_call_through_one(
    migrated_database, redis_url, redis, tmp_path
):
    """The whole live path (Twilio media in, transcript events out) with no model on the node."""
    from tests.voice_server.carrier_app import (
        OUR_NUMBER,
        PUBLIC_URL,
        TWILIO_TOKEN,
        start_carrier_app,
        stop_carrier_app,
    )
    from voice_server.app_keys import RUNTIME
    from voice_server.live_intelligence import SPEECH_POOL
    from voice_server.simulator.carrier.call import SimulatedCall, simulate_call
    from voice_server.simulator.carrier.wav import sound

    worker = _start_worker(redis_url, tmp_path, "w-call")
    ca = None
    try:
        await eventually(lambda: _alive(redis, "w-call"), 90, what="the speech worker's heartbeat")
        ca = await start_carrier_app(
            migrated_database,
            redis_url,
            COACHLINE_STT_ENABLED="true",
            COACHLINE_STT_REMOTE="required",
            COACHLINE_NODE_ID="media-a",
        )
        pool = ca.app[SPEECH_POOL]
        assert isinstance(pool, RemoteSpeechPool) and pool.local is None
        sub = await ca.app[RUNTIME].bus.subscribe("transcript.final")
        finals: list[dict] = []

        async def watch():
            async for delivery in sub:
                finals.append(delivery.event.payload)

        watcher = asyncio.create_task(watch())
        report = await simulate_call(
            SimulatedCall(
                carrier="twilio",
                server=str(ca.client.make_url("")).rstrip("/"),
                public_url=PUBLIC_URL,
                rep_wav=sound("agent-loginok"),
                customer_wav=sound("hello-world"),
                to_number=OUR_NUMBER,
                twilio_auth_token=TWILIO_TOKEN,
                rep_starts_ms=2000,
                realtime=True,
            )
        )

        def both_parties() -> bool:
            return {"customer", "rep"} <= {
                f["party"] for f in finals if f["call_id"] == report.call_id
            }

        await eventually(both_parties, 60, what="finals of both parties")
        await sub.close()
        watcher.cancel()
        customer = " ".join(f["text"] for f in finals if f["party"] == "customer").lower()
        assert "hello" in customer
        assert pool.remote_stats().replies >= 2
    finally:
        if ca is not None:
            await stop_carrier_app(ca)
        _stop(worker)


async def test_required_mode_fails_a_final_no_worker_answers_instead_of_hanging_the_call(redis):
    from voice_server.remote_speech_pool import SpeechWorkersUnavailable

    await redis.delete(wire.ALIVE)
    node = await RemoteSpeechPool(
        redis, "node-r", None, mode="required", final_timeout_s=0.05
    ).start()
    try:
        future = node.submit("s1", DecodeRequest(np.zeros(16000, np.float32)), final=True)
        with pytest.raises(SpeechWorkersUnavailable):
            await asyncio.wait_for(future, 10)
        partial = node.submit("s1", DecodeRequest(np.zeros(16000, np.float32)), final=False)
        assert await asyncio.wait_for(partial, 10) is None  # partial_timeout_s: dropped
    finally:
        await node.close()
        await redis.delete(wire.REQUESTS)
