"""Vonage's websocket end to end: one mixed L16 channel from real WAVs into a session."""

import json

import numpy as np

from media.frames import Party
from media.resample import resample
from tests.polling import eventually
from voice_server.simulator.carrier.media_players import VonageStream, send_stream
from voice_server.simulator.carrier.wav import read_wav, sound

UUID = "5b7c1f0e-8d0a-4a56-9b0e-0c1d2e3f4a5b"


def _mixed_16k() -> np.ndarray:
    """Both people on one channel, as the Vonage websocket leg hears the conversation."""
    a, _ = read_wav(sound("hello-world"))
    b, _ = read_wav(sound("agent-loginok"))
    n = max(len(a), len(b))
    mix = np.zeros(n, np.int32)
    mix[:len(a)] += a
    mix[:len(b)] += b
    return resample(np.clip(mix, -32768, 32767).astype(np.int16), 8000, 16000)


def _padded(pcm: np.ndarray, frame: int = 320) -> np.ndarray:
    return np.concatenate([pcm, np.zeros(-len(pcm) % frame, np.int16)])


async def test_mixed_l16_stream_arrives_sample_for_sample_as_the_mixed_party(carrier_app):
    ca = carrier_app
    pcm = _mixed_16k()
    call_id = await ca.new_call("vonage", "inbound", UUID)
    stream = VonageStream(ca.stream_params(call_id, vonage_uuid=UUID), pcm, dtmf={25: "3"})
    async with ca.media_socket("vonage", call_id) as ws:
        await send_stream(ws, stream.messages(), realtime=False)
    assert await ca.observer.ended(call_id) is False  # Vonage ends a call by closing cleanly
    frames = ca.observer.party_frames(call_id, Party.MIXED)
    assert frames and all(f.sample_rate == 16000 and len(f.pcm) == 320 for f in frames)
    assert [f.timestamp_ms for f in frames] == [20 * i for i in range(len(frames))]
    assert np.array_equal(ca.observer.pcm(call_id, Party.MIXED), _padded(pcm))
    assert not ca.observer.party_frames(call_id, Party.REP)
    assert ca.observer.dtmf[call_id] == [("3", 520)]


async def test_an_8khz_stream_uses_320_byte_frames(carrier_app):
    ca = carrier_app
    pcm, _ = read_wav(sound("hello-world"))
    call_id = await ca.new_call("vonage", "outbound", None)  # outbound: the uuid comes later
    stream = VonageStream(ca.stream_params(call_id), pcm, sample_rate=8000)
    async with ca.media_socket("vonage", call_id) as ws:
        await send_stream(ws, stream.messages(), realtime=False)
    await ca.observer.ended(call_id)
    assert np.array_equal(ca.observer.pcm(call_id, Party.MIXED), _padded(pcm, 160))


async def test_bad_frames_and_events_are_counted_and_the_call_goes_on(carrier_app):
    ca = carrier_app
    pcm = _mixed_16k()[:16000]
    call_id = await ca.new_call("vonage", "inbound", UUID)
    messages = VonageStream(ca.stream_params(call_id, vonage_uuid=UUID), pcm).messages()
    bad = [(0, b"\x00" * 640)]  # audio before the connected message
    after = [(0, b"\x00" * 100), (0, "{nope"), (0, json.dumps({"event": "websocket:teleport"})),
             (0, json.dumps({"event": "websocket:dtmf", "digit": "Q"})), (0, "[]")]
    await _send(ca, call_id, bad + messages[:1] + after + messages[1:])
    assert await ca.observer.ended(call_id) is False
    assert np.array_equal(ca.observer.pcm(call_id, Party.MIXED), pcm)
    text = await ca.metric("coachline_carrier_rejected_messages_total")
    for reason in ("before_start", "bad_frame_size", "malformed_json", "unknown_event", "malformed_dtmf"):
        assert f'carrier="vonage",reason="{reason}"' in text, reason


async def _send(ca, call_id, messages, **kwargs):
    async with ca.media_socket("vonage", call_id) as ws:
        await send_stream(ws, messages, realtime=False, **kwargs)


async def test_unknown_calls_and_formats_are_refused(carrier_app):
    ca = carrier_app
    call_id = await ca.new_call("vonage", "inbound", UUID)
    token = ca.stream_tokens[call_id]
    for first in ({"event": "websocket:connected", "content-type": "audio/l16;rate=16000",
                   "call_id": call_id, "vonage_uuid": "someone-else", "stream_token": token},
                  {"event": "websocket:connected", "content-type": "audio/l16;rate=16000"},
                  {"event": "websocket:connected", "content-type": "audio/opus",
                   "call_id": call_id, "vonage_uuid": UUID, "stream_token": token}):
        async with ca.media_socket("vonage", call_id) as ws:
            await ws.send_str(json.dumps(first))
            await ws.receive(timeout=10)
            assert ws.close_code in (1003, 1008)
    assert call_id not in ca.observer.sessions


async def test_a_dropped_websocket_ends_the_call_abnormally_keeping_its_audio(carrier_app):
    ca = carrier_app
    pcm = _mixed_16k()[:6400]
    call_id = await ca.new_call("vonage", "inbound", UUID)
    messages = VonageStream(ca.stream_params(call_id, vonage_uuid=UUID), pcm).messages()
    async with ca.media_socket("vonage", call_id) as ws:
        await send_stream(ws, messages, realtime=False, close=False)
        await eventually(lambda: len(ca.observer.pcm(call_id, Party.MIXED)) >= len(pcm), 10,
                         what="the whole stream to reach the call")
        ws._response.connection.transport.abort()
    assert await ca.observer.ended(call_id) is True
    assert np.array_equal(ca.observer.pcm(call_id, Party.MIXED), pcm)
