"""Twilio Media Streams end to end: real WAVs, real µ-law, the real app, a session observer."""

import asyncio
import base64
import json

import numpy as np
import pytest

from media.frames import Party
from media.g711 import ulaw_decode, ulaw_encode
from media.track_clock import ChunkOrder
from tests.polling import eventually
from voice_server.call_recovery import NODE_IDENTITY
from voice_server.simulator.carrier.media_players import TwilioStream, send_stream
from voice_server.simulator.carrier.wav import read_wav, sound
from voice_server.transports.twilio import track_party

CUSTOMER_WAV = "hello-world"
REP_WAV = "agent-loginok"


def _decoded(pcm: np.ndarray) -> np.ndarray:
    return ulaw_decode(ulaw_encode(pcm))


def _wav(name: str) -> np.ndarray:
    pcm, rate = read_wav(sound(name))
    assert rate == 8000
    return pcm


async def _stream(ca, stream: TwilioStream, messages=None, **kwargs):
    async with ca.media_socket("twilio") as ws:
        await send_stream(ws, messages if messages is not None else stream.messages(),
                          realtime=False, **kwargs)


def _contiguous(frames) -> bool:
    at = 0
    for f in frames:
        if f.timestamp_ms * 8 != at:
            return False
        at += len(f.pcm)
    return True


def test_tracks_map_to_parties_by_call_direction():
    assert track_party("inbound", "inbound") == Party.CUSTOMER
    assert track_party("inbound", "outbound") == Party.REP
    assert track_party("outbound", "inbound") == Party.REP
    assert track_party("outbound", "outbound") == Party.CUSTOMER


def test_chunk_order_reorders_within_its_window_and_gives_up_on_lost_chunks():
    order = ChunkOrder(window=2, first=1)
    assert order.add(2, "b").items == [] and order.add(1, "a").items == ["a", "b"]
    assert order.add(1, "a").stale
    assert order.add(4, "d").items == []
    assert order.add(5, "e").items == []
    late = order.add(6, "f")  # 3 never comes: with 3 held the window is exceeded
    assert (late.items, late.missing) == (["d", "e", "f"], 1)
    assert order.add(3, "c").stale
    assert order.add(10_000, "far").out_of_range  # a bogus number cannot skip the track ahead
    assert order.add(7, "g").items == ["g"]


async def test_inbound_call_keeps_two_wavs_apart_sample_for_sample_on_one_clock(carrier_app):
    ca = carrier_app
    customer, rep = _wav(CUSTOMER_WAV), _wav(REP_WAV)
    call_id = await ca.new_call("twilio", "inbound", "CA" + "a" * 32)
    stream = TwilioStream(ca.stream_params(call_id), "CA" + "a" * 32, inbound=customer, outbound=rep,
                          outbound_starts_ms=500, dtmf={10: "7"})
    await _stream(ca, stream)
    assert await ca.observer.ended(call_id) is False

    got_customer = ca.observer.pcm(call_id, Party.CUSTOMER)
    got_rep = ca.observer.pcm(call_id, Party.REP)
    assert np.array_equal(got_customer, _decoded(customer))
    # The rep's track starts 500 ms into the call: silence until then, then the rep's audio.
    assert np.array_equal(got_rep[:4000], np.zeros(4000, np.int16))
    assert np.array_equal(got_rep[4000:], _decoded(rep))
    for party in (Party.CUSTOMER, Party.REP):
        frames = ca.observer.party_frames(call_id, party)
        assert _contiguous(frames) and all(f.sample_rate == 8000 for f in frames)
    assert ca.observer.dtmf[call_id] == [("7", 200)]
    assert not ca.observer.party_frames(call_id, Party.MIXED)


async def test_outbound_call_puts_the_inbound_track_on_the_rep(carrier_app):
    ca = carrier_app
    rep, customer = _wav(REP_WAV), _wav(CUSTOMER_WAV)
    call_id = await ca.new_call("twilio", "outbound", "CA" + "b" * 32)
    await _stream(ca, TwilioStream(ca.stream_params(call_id), "CA" + "b" * 32, inbound=rep, outbound=customer))
    await ca.observer.ended(call_id)
    assert np.array_equal(ca.observer.pcm(call_id, Party.REP), _decoded(rep))
    assert np.array_equal(ca.observer.pcm(call_id, Party.CUSTOMER), _decoded(customer))


async def test_reordered_chunks_are_put_back_and_lost_ones_filled_with_silence(carrier_app):
    ca = carrier_app
    customer, rep = _wav(CUSTOMER_WAV)[:8000], _wav(REP_WAV)[:8000]
    call_id = await ca.new_call("twilio", "inbound", "CA" + "c" * 32)
    stream = TwilioStream(ca.stream_params(call_id), "CA" + "c" * 32, inbound=customer, outbound=rep)
    messages = stream.messages()

    def chunk_of(message):
        m = json.loads(message[1])
        return (m["media"]["track"], int(m["media"]["chunk"])) if m["event"] == "media" else None

    index = {chunk_of(m): i for i, m in enumerate(messages)}
    # inbound chunks 3 and 4 swap places; outbound chunk 6 never arrives.
    i3, i4 = index[("inbound", 3)], index[("inbound", 4)]
    messages[i3], messages[i4] = messages[i4], messages[i3]
    del messages[index[("outbound", 6)]]
    await _stream(ca, stream, messages)
    await ca.observer.ended(call_id)

    assert np.array_equal(ca.observer.pcm(call_id, Party.CUSTOMER), _decoded(customer))
    expected_rep = _decoded(rep).copy()
    expected_rep[5 * 160:6 * 160] = 0
    got_rep = ca.observer.pcm(call_id, Party.REP)
    assert np.array_equal(got_rep, expected_rep)
    assert _contiguous(ca.observer.party_frames(call_id, Party.REP))
    assert 'coachline_carrier_media_gaps_total{carrier="twilio",party="rep"} 1.0' in (
        await ca.metric("coachline_carrier_media_gaps_total"))
    assert "coachline_carrier_reordered_chunks_total{carrier=\"twilio\"} 1.0" in (
        await ca.metric("coachline_carrier_reordered_chunks_total"))


async def test_bad_messages_are_counted_and_skipped_and_other_calls_are_untouched(carrier_app):
    ca = carrier_app
    customer = _wav(CUSTOMER_WAV)[:4000]
    bad_id = await ca.new_call("twilio", "inbound", "CA" + "d" * 32)
    good_id = await ca.new_call("twilio", "inbound", "CA" + "e" * 32)
    bad = TwilioStream(ca.stream_params(bad_id), "CA" + "d" * 32, inbound=customer)
    good = TwilioStream(ca.stream_params(good_id), "CA" + "e" * 32, inbound=customer)
    media = json.loads(bad.messages()[2][1])
    garbage = [
        json.dumps({**media, "sequenceNumber": "0"}),  # media before start
        "{not json",
        "[1, 2, 3]",
        json.dumps({"event": "teleport"}),
    ]
    after_start = [
        json.dumps({**media, "media": {**media["media"], "payload": "!!not base64!!"}}),
        json.dumps({**media, "media": {**media["media"], "track": "sideways"}}),
        json.dumps({**media, "media": {**media["media"], "chunk": "x"}}),
        json.dumps({**media, "media": {**media["media"], "chunk": "2", "timestamp": str(10**12)}}),
        json.dumps({**media, "media": {**media["media"], "chunk": "900",
                                       "payload": base64.b64encode(b"\xff" * 5000).decode()}}),
        json.dumps({"event": "dtmf", "dtmf": {"digit": "Z"}}),
        b"\x00\x01binary",
    ]
    messages = bad.messages()
    sequence = [(0, g) for g in garbage] + messages[:2] + [(0, g) for g in after_start] + messages[2:]
    await asyncio.gather(_stream(ca, bad, sequence), _stream(ca, good))
    assert await ca.observer.ended(bad_id) is False
    assert await ca.observer.ended(good_id) is False
    assert np.array_equal(ca.observer.pcm(bad_id, Party.CUSTOMER), _decoded(customer))
    assert np.array_equal(ca.observer.pcm(good_id, Party.CUSTOMER), _decoded(customer))
    text = await ca.metric("coachline_carrier_rejected_messages_total")
    for reason in ("before_start", "malformed_json", "unknown_event", "bad_base64", "unknown_track",
                   "timestamp_out_of_range",
                   "malformed_media", "bad_frame_size", "malformed_dtmf", "binary_message"):
        assert f'reason="{reason}"' in text, reason
    assert 'reason="malformed_json"} 2.0' in text


async def test_a_stream_for_an_unknown_call_is_refused(carrier_app):
    ca = carrier_app
    call_id = await ca.new_call("twilio", "inbound", "CA" + "f" * 32)
    token = ca.stream_tokens[call_id]
    for params, sid in ((ca.stream_params(call_id), "CA" + "0" * 32),  # right call, wrong CallSid
                        ({"call_id": "not-a-uuid", "stream_token": token}, "CA" + "f" * 32),
                        ({}, "CA" + "f" * 32)):
        stream = TwilioStream(params, sid, inbound=np.zeros(800, np.int16))
        async with ca.media_socket("twilio") as ws:
            for _, message in stream.messages()[:2]:
                await ws.send_str(message)
            closing = await ws.receive(timeout=10)
            assert ws.close_code == 1008, closing
    assert call_id not in ca.observer.sessions
    assert 'reason="unknown_call"} 3.0' in await ca.metric("coachline_carrier_rejected_messages_total")


async def test_a_dropped_connection_ends_the_call_abnormally_keeping_what_arrived(carrier_app):
    ca = carrier_app
    customer = _wav(CUSTOMER_WAV)[:8000]
    call_id = await ca.new_call("twilio", "inbound", "CA" + "1" * 32)
    stream = TwilioStream(ca.stream_params(call_id), "CA" + "1" * 32, inbound=customer, stop=False)
    messages = stream.messages()[:2 + 20]  # connected, start, 20 chunks; then the line goes dead
    async with ca.media_socket("twilio") as ws:
        await send_stream(ws, messages, realtime=False, close=False)
        await eventually(lambda: len(ca.observer.pcm(call_id, Party.CUSTOMER)) >= 3200, 10,
                         what="the 20 chunks to reach the call")
        # the node that took the stream carries the call: if it dies, the call is ended for it
        assert (await ca.call_row(call_id))["node_id"] == ca.app[NODE_IDENTITY].node_id
        ws._response.connection.transport.abort()  # no stop, no close frame
    assert await ca.observer.ended(call_id) is True
    assert np.array_equal(ca.observer.pcm(call_id, Party.CUSTOMER), _decoded(customer[:3200]))
    for _ in range(100):  # the CRM writer marks the row from the call.ended event
        row = await ca.call_row(call_id)
        if row["ended_abnormally"]:
            break
        await asyncio.sleep(0.05)
    assert row["ended_abnormally"] and row["status"] == "failed"
    assert row["node_id"] is None  # ended: no node's to finish


@pytest.mark.parametrize("limit", [4096])
async def test_an_oversized_message_is_refused_and_the_call_keeps_its_audio(migrated_database, redis_url, limit):
    from tests.voice_server.carrier_app import start_carrier_app, stop_carrier_app

    ca = await start_carrier_app(migrated_database, redis_url, COACHLINE_MEDIA_MAX_MESSAGE_BYTES=str(limit))
    try:
        customer = _wav(CUSTOMER_WAV)[:1600]
        call_id = await ca.new_call("twilio", "inbound", "CA" + "2" * 32)
        stream = TwilioStream(ca.stream_params(call_id), "CA" + "2" * 32, inbound=customer, stop=False)
        async with ca.media_socket("twilio") as ws:
            await send_stream(ws, stream.messages(), realtime=False, close=False)
            await ws.send_str(json.dumps({"event": "media", "padding": "x" * (2 * limit)}))
            await ws.receive(timeout=10)
            assert ws.close_code == 1009
        assert await ca.observer.ended(call_id) is True
        assert np.array_equal(ca.observer.pcm(call_id, Party.CUSTOMER), _decoded(customer))
        assert 'reason="oversized"} 1.0' in await ca.metric("coachline_carrier_rejected_messages_total")
    finally:
        await stop_carrier_app(ca)


async def test_a_silent_stream_is_ended_after_the_idle_timeout(migrated_database, redis_url):
    from tests.voice_server.carrier_app import start_carrier_app, stop_carrier_app

    ca = await start_carrier_app(migrated_database, redis_url, COACHLINE_MEDIA_IDLE_TIMEOUT_S="0.5")
    try:
        customer = _wav(CUSTOMER_WAV)[:1600]
        call_id = await ca.new_call("twilio", "inbound", "CA" + "3" * 32)
        stream = TwilioStream(ca.stream_params(call_id), "CA" + "3" * 32, inbound=customer, stop=False)
        async with ca.media_socket("twilio") as ws:
            await send_stream(ws, stream.messages(), realtime=False, close=False)
            closing = await ws.receive(timeout=10)  # the server gives up on the silent line
            assert ws.close_code == 1001, closing
        assert await ca.observer.ended(call_id) is True
        assert np.array_equal(ca.observer.pcm(call_id, Party.CUSTOMER), _decoded(customer))
        assert 'outcome="media_timeout"} 1.0' in await ca.metric("coachline_carrier_streams_total")
    finally:
        await stop_carrier_app(ca)


async def test_the_websocket_handshake_must_carry_twilios_signature(carrier_app):
    import aiohttp
    from twilio.request_validator import RequestValidator

    from tests.voice_server.carrier_app import TWILIO_TOKEN

    ca = carrier_app
    url = "wss://coachline.example.com/media/twilio"
    forged = RequestValidator("not-the-token").compute_signature(url, {})
    for headers in ({"X-Twilio-Signature": forged}, {}, {"X-Twilio-Signature": ""}):
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await ca.client.ws_connect("/media/twilio", headers=headers)
        assert refused.value.status == 403
    customer = _wav(CUSTOMER_WAV)[:1600]
    call_id = await ca.new_call("twilio", "inbound", "CA" + "4" * 32)
    good = RequestValidator(TWILIO_TOKEN).compute_signature(url, {})
    async with ca.client.ws_connect("/media/twilio", headers={"X-Twilio-Signature": good}) as ws:
        await send_stream(ws, TwilioStream(ca.stream_params(call_id), "CA" + "4" * 32, inbound=customer).messages(),
                          realtime=False)
    assert await ca.observer.ended(call_id) is False
    assert np.array_equal(ca.observer.pcm(call_id, Party.CUSTOMER), _decoded(customer))


async def test_a_second_stream_for_a_live_call_is_refused_and_the_first_goes_on(carrier_app):
    ca = carrier_app
    customer = _wav(CUSTOMER_WAV)[:3200]
    call_id = await ca.new_call("twilio", "inbound", "CA" + "5" * 32)
    stream = TwilioStream(ca.stream_params(call_id), "CA" + "5" * 32, inbound=customer)
    messages = stream.messages()
    async with ca.media_socket("twilio") as first:
        await send_stream(first, messages[:5], realtime=False, close=False)
        async with ca.media_socket("twilio") as second:
            await send_stream(second, messages[:2], realtime=False, close=False)
            await second.receive(timeout=10)
            assert second.close_code == 1008
        await send_stream(first, messages[5:], realtime=False)
    assert await ca.observer.ended(call_id) is False
    assert np.array_equal(ca.observer.pcm(call_id, Party.CUSTOMER), _decoded(customer))
    assert (await ca.call_row(call_id))["answered_at"] is not None


def test_party_timeline_tolerates_jitter_fills_holes_and_jumps_past_long_ones():
    from media.track_clock import PartyTimeline

    timeline = PartyTimeline(Party.REP, 8000, max_fill_ms=100)
    chunk = np.ones(160, np.int16)
    assert [f.timestamp_ms for f in timeline.place(0, chunk)] == [0]
    assert [f.timestamp_ms for f in timeline.place(25, chunk)] == [20]  # 5 ms late: jitter, contiguous
    holes = list(timeline.place(80, chunk))  # 40 ms missing: two silent frames, then the audio
    assert [(f.timestamp_ms, int(f.pcm.any())) for f in holes] == [(40, 0), (60, 0), (80, 1)]
    jumped = list(timeline.place(1000, chunk))  # beyond max_fill: no silence, the clock still holds
    assert [f.timestamp_ms for f in jumped] == [1000]
    assert timeline.position_ms == 1020
