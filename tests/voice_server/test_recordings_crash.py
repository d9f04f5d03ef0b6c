"""SIGKILL a real ``coachline serve`` mid-call: the recording must survive up to its last chunk.

Audio goes in the way a carrier sends it: a Twilio Media Streams WebSocket
(``/media/twilio``) with µ-law chunks on both tracks.
"""

import asyncio
import base64
import io
import os
import signal
import socket
import subprocess
import sys
import uuid
import wave

import aiohttp
import numpy as np

from crm_core.api.recordings import wav_header
from crm_core.calls.records import NewCall, create_call
from crm_core.calls.stream_admissions import issue_stream_admission
from media.g711 import ulaw_decode, ulaw_encode
from storage.keys import new_master_key, parse_key_spec
from storage.recording_store import LocalRecordingStore
from tests.voice_server.recording_world import db, make_world, recording_env  # noqa: F401
from voice_server.simulator.carrier.signing import twilio_socket_headers

TWILIO_TOKEN = "crash-test-auth-token"
PUBLIC_URL = "https://coachline.example.com"
CHUNK_BYTES = 16000  # 0.5 s of 8 kHz stereo PCM16 (COACHLINE_RECORDING_CHUNK_S=0.5)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _wait_ready(proc, session: aiohttp.ClientSession, log_path) -> str:
    port = None
    for _ in range(1200):
        if proc.poll() is not None:
            raise AssertionError(f"server exited: {open(log_path).read()[-3000:]}")
        port = port or _port_of(proc)
        try:
            async with session.get(f"http://127.0.0.1:{port}/ready") as resp:
                if resp.status == 200:
                    return f"127.0.0.1:{port}"
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    raise AssertionError(f"server not ready: {open(log_path).read()[-3000:]}")


def _port_of(proc) -> int:
    return int(proc.args_env_port)


def _pcm(party: int, ts_ms: int) -> np.ndarray:
    return np.full(160, (ts_ms // 20) % 1000 + (1000 if party else 0), np.int16)


def _media(stream_sid: str, track: str, chunk: int, ts_ms: int, pcm: np.ndarray) -> dict:
    payload = base64.b64encode(ulaw_encode(pcm)).decode()
    return {
        "event": "media",
        "streamSid": stream_sid,
        "sequenceNumber": str(chunk),
        "media": {"track": track, "chunk": str(chunk), "timestamp": str(ts_ms), "payload": payload},
    }


async def _poll(predicate, timeout_s: float, what: str, log_path=None):
    for _ in range(int(timeout_s / 0.1)):
        value = await predicate()
        if value:
            return value
        await asyncio.sleep(0.1)
    tail = open(log_path).read()[-4000:] if log_path else ""
    raise AssertionError(f"timed out waiting for {what}; server log:\n{tail}")


async def test_sigkill_mid_call_leaves_a_playable_recording_and_an_abnormal_call(
    db, migrated_database, redis_url, tmp_path
):
    world = await make_world(db)
    call_sid, stream_sid = f"CA{uuid.uuid4().hex}", f"MZ{uuid.uuid4().hex}"
    call = await create_call(
        db,
        NewCall(
            world.org_id,
            "twilio",
            "outbound",
            external_id=call_sid,
            rep_id=world.rep,
            status="ringing",
        ),
    )
    call_uuid = call["id"]
    # What the TwiML for this call would have carried to Twilio.
    stream_token = await issue_stream_admission(db, str(call_uuid), "twilio")
    key = f"k1:{new_master_key()}"
    env = recording_env(
        migrated_database,
        redis_url,
        tmp_path / "data",
        COACHLINE_RECORDING_KEY=key,
        COACHLINE_RECORDING_STALL_S="2",
        COACHLINE_NODE_ID="crash-node",  # like a pod name: the same after the restart
        COACHLINE_TWILIO_AUTH_TOKEN=TWILIO_TOKEN,
        COACHLINE_PUBLIC_URL=PUBLIC_URL,
    )
    log_path = tmp_path / "server.log"
    async with aiohttp.ClientSession() as http:
        first = _start(env, log_path)
        try:
            host = await _wait_ready(first, http, log_path)
            ws = await http.ws_connect(
                f"ws://{host}/media/twilio",
                headers=twilio_socket_headers(TWILIO_TOKEN, "wss://coachline.example.com/media/twilio"),
            )
            await ws.send_json({"event": "connected", "protocol": "Call", "version": "1.0.0"})
            await ws.send_json(
                {
                    "event": "start",
                    "sequenceNumber": "1",
                    "streamSid": stream_sid,
                    "start": {
                        "streamSid": stream_sid,
                        "callSid": call_sid,
                        "tracks": ["inbound", "outbound"],
                        "customParameters": {
                            "call_id": str(call_uuid),
                            "stream_token": stream_token,
                        },
                        "mediaFormat": {
                            "encoding": "audio/x-mulaw",
                            "sampleRate": 8000,
                            "channels": 1,
                        },
                    },
                }
            )
            # 3.3 s of both parties: six full chunks and part of a seventh. On an outbound
            # call the inbound track is the rep, the outbound track the customer.
            for i in range(165):
                await ws.send_json(_media(stream_sid, "inbound", i + 1, i * 20, _pcm(0, i * 20)))
                await ws.send_json(_media(stream_sid, "outbound", i + 1, i * 20, _pcm(1, i * 20)))

            # Then the call goes quiet: after the stall allowance (2 s) the silent time is
            # written too, so the seventh chunk (3.0-3.5 s) reaches the disk without new frames.
            async def seven_chunks_durable():
                return await db.fetchval(
                    "SELECT byte_length FROM recordings WHERE call_id = $1 AND byte_length >= $2",
                    call_uuid,
                    7 * CHUNK_BYTES,
                )

            await _poll(seven_chunks_durable, 60, "the chunks to be written", log_path)
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=30)
        finally:
            if first.poll() is None:
                first.kill()
        row = await db.fetchrow("SELECT * FROM recordings WHERE call_id = $1", call_uuid)
        assert row["status"] == "recording", open(log_path).read()[-4000:]  # the process is gone

        # The restarted node finds what its previous process left at once, by its node id:
        # with a heartbeat staleness of 5 minutes, nothing else could recover it in time.
        second = _start({**env, "COACHLINE_RECORDING_STALE_S": "300"}, log_path)
        try:
            await _wait_ready(second, http, log_path)

            async def recovered():
                return await db.fetchrow(
                    "SELECT * FROM recordings WHERE call_id = $1 AND status = 'incomplete'",
                    call_uuid,
                )

            row = await _poll(recovered, 90, "recovery of the recording", log_path)
            call = await db.fetchrow("SELECT * FROM calls WHERE id = $1", call_uuid)
            assert call["ended_abnormally"] is True and call["ended_at"] is not None
        finally:
            second.send_signal(signal.SIGTERM)
            try:
                second.wait(timeout=30)
            except subprocess.TimeoutExpired:
                second.kill()

    # Everything up to the last completed chunk survives: all 3.3 s of speech, then silence.
    length = row["byte_length"]
    assert length >= 7 * CHUNK_BYTES and length % CHUNK_BYTES == 0
    store = LocalRecordingStore(tmp_path / "data" / "recordings", parse_key_spec(key))
    with store.open(row["id"]) as reader:
        pcm = np.frombuffer(reader.read_all(), "<i2")
        audio = reader.audio
    assert len(pcm) * 2 == length
    # µ-law on the way in: compare with what G.711 makes of the same samples.
    expected_rep = ulaw_decode(ulaw_encode(np.concatenate([_pcm(0, i * 20) for i in range(165)])))
    expected_cust = ulaw_decode(ulaw_encode(np.concatenate([_pcm(1, i * 20) for i in range(165)])))
    rep, cust = pcm[0::2], pcm[1::2]
    assert (rep[:26400] == expected_rep).all() and (cust[:26400] == expected_cust).all()
    assert (pcm[2 * 26400 :] == 0).all()
    # It plays: a WAV reader accepts it as 8 kHz stereo of the recovered length.
    with wave.open(io.BytesIO(wav_header(audio, length) + pcm.tobytes())) as wav:
        assert (wav.getnchannels(), wav.getframerate(), wav.getnframes()) == (2, 8000, length // 4)


def _start(env, log_path) -> subprocess.Popen:
    port = _free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("COACHLINE_")}
    clean.update(env, COACHLINE_PORT=str(port))
    proc = subprocess.Popen(
        [sys.executable, "-m", "voice_server.cli", "serve"],
        env=clean,
        stdout=open(log_path, "ab"),
        stderr=subprocess.STDOUT,
    )
    proc.args_env_port = port
    return proc
