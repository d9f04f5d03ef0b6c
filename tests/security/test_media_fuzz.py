"""Fuzzing the Twilio and Vonage media message handling.

Property: whatever a socket sends (mutated or garbage JSON, wrong types, huge or broken
base64, odd-length binary frames, frames before ``start``), handling never raises, the
stream either goes on or ends with a clean refusal, and other calls are untouched.

Most examples drive the real stream handlers (``TwilioMediaStream``, ``VonageMediaStream``)
over a real ``CallSessions`` with the in-process bus, many per second; a few go through a
real socket of the real app, where the server must also stay healthy. ``--slow`` runs
many more examples.
"""

from __future__ import annotations

import asyncio
import base64
import json

import numpy as np
import pytest
import pytest_asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from media.frames import Party
from storage.event_bus_memory import InProcessEventBus
from tests.voice_server.carrier_app import start_carrier_app, stop_carrier_app
from voice_server.call_session import CallInfo, CallSessions
from voice_server.live_calls import LiveCalls
from voice_server.simulator.carrier.media_players import TwilioStream, VonageStream, send_stream
from voice_server.transports.carrier_metrics import CarrierMetrics
from voice_server.transports.twilio import TwilioMediaStream
from voice_server.transports.vonage import VonageMediaStream

CALL = "00000000-0000-4000-8000-00000000f022"

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
payloads = st.one_of(
    st.binary(max_size=2400).map(lambda b: base64.b64encode(b).decode()),
    st.text(max_size=80),
    st.just("A" * 40_000),
    st.binary(min_size=1, max_size=64).map(lambda b: base64.b64encode(b).decode()[:-1]),
    json_values,
)
numbers = st.one_of(
    st.integers(min_value=-5, max_value=10**15).map(str),
    st.integers(min_value=-5, max_value=400),
    json_values,
)


@st.composite
def twilio_messages(draw) -> str | bytes:
    event = draw(
        st.sampled_from(
            ["media", "media", "media", "start", "mark", "stop", "dtmf", "connected", "nonsense"]
        )
    )
    message: dict = {"event": event}
    if draw(st.booleans()):
        message["sequenceNumber"] = draw(numbers)
    if event == "media":
        media = {
            "track": draw(st.sampled_from(["inbound", "outbound", "both", ""]) | json_values),
            "chunk": draw(numbers),
            "timestamp": draw(numbers),
            "payload": draw(payloads),
        }
        for key in draw(st.sets(st.sampled_from(sorted(media)))):
            del media[key]
        message["media"] = draw(st.just(media) | json_values)
    elif event == "start":
        message["start"] = draw(
            st.fixed_dictionaries(
                {},
                optional={
                    "callSid": json_values,
                    "customParameters": json_values,
                    "mediaFormat": st.just(
                        {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}
                    )
                    | json_values,
                },
            )
        )
    elif event == "dtmf":
        message["dtmf"] = draw(
            st.fixed_dictionaries({"digit": st.sampled_from("0123#*AZ")}) | json_values
        )
    elif event == "mark":
        message["mark"] = draw(json_values)
    kind = draw(st.sampled_from(["json", "json", "json", "text", "binary", "top"]))
    if kind == "text":
        return draw(st.text(max_size=200))
    if kind == "binary":
        return draw(st.binary(max_size=700))
    if kind == "top":
        return json.dumps(draw(json_values))
    return json.dumps(message)


@st.composite
def vonage_messages(draw) -> str | bytes:
    kind = draw(st.sampled_from(["frame", "frame", "frame", "odd", "event", "text", "top"]))
    if kind == "frame":
        return bytes(draw(st.sampled_from([320, 640, 960])))
    if kind == "odd":
        return draw(st.binary(max_size=1500))
    if kind == "text":
        return draw(st.text(max_size=200))
    if kind == "top":
        return json.dumps(draw(json_values))
    event = draw(
        st.sampled_from(
            ["websocket:dtmf", "websocket:connected", "websocket:notify", "websocket:teleport"]
        )
        | json_values
    )
    extra = draw(
        st.dictionaries(
            st.sampled_from(
                ["digit", "duration", "content-type", "headers", "call_id", "stream_token"]
            ),
            json_values,
            max_size=3,
        )
    )
    return json.dumps({"event": event, **extra})


def _budget(slow: bool, fast: int) -> settings:
    return settings(
        max_examples=fast * 25 if slow else fast,
        deadline=None,
        derandomize=not slow,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


class _Heard:
    def __init__(self) -> None:
        self.frames = 0
        self.closed: bool | None = None

    def __call__(self, session):
        return self

    def on_audio(self, frame) -> None:
        self.frames += 1

    def on_dtmf(self, digit, at_ms, duration_ms) -> None:
        pass

    async def close(self, abnormal: bool) -> None:
        self.closed = abnormal


async def _drive(stream_type, messages, *, started: bool, content_type=None) -> tuple:
    """Feed ``messages`` to a stream handler: (handler, what the call's consumers heard)."""
    metrics = CarrierMetrics(CollectorRegistry())
    bus = InProcessEventBus()
    sessions = CallSessions(lambda: bus, LiveCalls())
    heard = _Heard()
    sessions.consumer_factories.append(heard)
    stream = stream_type(None, sessions, metrics)  # no pool: a start must never reach one
    if started:
        stream.session = await sessions.open(CallInfo(CALL, CALL, stream.carrier, "inbound"))
        if isinstance(stream, TwilioMediaStream):
            stream._tracks = {t: _track(t, metrics) for t in ("inbound", "outbound")}
        else:
            _vonage_started(stream, content_type)
    for message in messages:
        if stream.done:
            break
        if isinstance(message, bytes):
            await stream.on_binary(message, 0.0)
        else:
            await stream.on_text(message, 0.0)
    await stream.finish("completed" if stream.done else "closed")
    return stream, heard


def _track(track, metrics):
    from voice_server.transports.twilio import _Track, track_party

    return _Track(track_party("inbound", track), metrics)


def _vonage_started(stream, content_type) -> None:
    from media.track_clock import PartyTimeline

    stream.sample_rate = {"audio/l16;rate=8000": 8000}.get(content_type, 16000)
    stream.frame_bytes = stream.sample_rate // 50 * 2
    stream.timeline = PartyTimeline(Party.MIXED, stream.sample_rate, 20)


def _twilio_starts_safe(messages) -> list:
    """Starts whose ids are all strings would look the call up in the database: the socket
    tests below send those; here they are turned into a rejection before the lookup."""
    safe = []
    for message in messages:
        try:
            decoded = json.loads(message) if isinstance(message, str) else None
        except ValueError:
            decoded = None
        start = decoded.get("start") if isinstance(decoded, dict) else None
        if isinstance(start, dict) and isinstance(start.get("callSid"), str):
            start["callSid"] = 0
            message = json.dumps(decoded)
        safe.append(message)
    return safe


@pytest.mark.parametrize("started", [False, True], ids=["before-start", "after-start"])
def test_twilio_messages_never_raise(started, slow_mode):
    @_budget(slow_mode, 60)
    @given(st.lists(twilio_messages(), max_size=12))
    def check(messages):
        stream, heard = asyncio.run(
            _drive(TwilioMediaStream, _twilio_starts_safe(messages), started=started)
        )
        assert stream.close_code in (1000, 1003, 1008)
        assert (heard.closed is not None) == started  # a started call always ends
        assert started or heard.frames == 0  # nothing is heard before a stream is admitted

    check()


@pytest.mark.parametrize("started", [False, True], ids=["before-connected", "after-connected"])
def test_vonage_messages_never_raise(started, slow_mode):
    @_budget(slow_mode, 60)
    @given(
        st.lists(vonage_messages(), max_size=12),
        st.sampled_from(["audio/l16;rate=16000", "audio/l16;rate=8000"]),
    )
    def check(messages, content_type):
        if not started:  # a connected message naming a call would look it up: see the socket test
            messages = [
                m
                for m in messages
                if not (isinstance(m, str) and "call_id" in m and "stream_token" in m)
            ]
        stream, heard = asyncio.run(
            _drive(VonageMediaStream, messages, started=started, content_type=content_type)
        )
        assert stream.close_code in (1000, 1003, 1008)
        assert started or heard.frames == 0
        if started:
            whole = sum(
                1 for m in messages if isinstance(m, bytes) and len(m) == stream.frame_bytes
            )
            assert heard.frames == whole and heard.closed is not None

    check()


SOCKET_GARBAGE = [
    json.dumps(
        {
            "event": "start",
            "start": {
                "callSid": "CA1",
                "customParameters": {"call_id": CALL, "stream_token": "x" * 300},
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            },
        }
    ),
    json.dumps(
        {
            "event": "start",
            "start": {
                "callSid": "CA1",
                "customParameters": {
                    "call_id": "'; DROP TABLE calls; --",
                    "stream_token": "\udcff",
                },
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            },
        }
    ),
    json.dumps({"event": "media", "media": {"payload": "A" * 50_000}}),
    "\x00" * 100,
    b"\xff" * 333,
]


@pytest_asyncio.fixture(loop_scope="session")
async def app(migrated_database, redis_url):
    ca = await start_carrier_app(migrated_database, redis_url)
    try:
        yield ca
    finally:
        await stop_carrier_app(ca)


async def test_garbage_on_real_sockets_leaves_other_calls_and_the_server_healthy(app):
    ca = app
    good_id = await ca.new_call("twilio", "inbound", "CA" + "9" * 32)
    customer = np.full(3200, 700, np.int16)
    good = TwilioStream(ca.stream_params(good_id), "CA" + "9" * 32, inbound=customer).messages()
    vonage_id = await ca.new_call("vonage", "inbound", None)

    async def garbage(carrier: str, messages, call_id: str | None = None) -> int:
        async with ca.media_socket(carrier, call_id) as ws:
            for message in messages:
                if ws.closed:
                    break
                if isinstance(message, bytes):
                    await ws.send_bytes(message)
                else:
                    await ws.send_str(message)
            await ws.close()
            return ws.close_code

    vonage_first = json.dumps(
        {
            "event": "websocket:connected",
            "content-type": "audio/l16;rate=16000",
            "headers": {"call_id": vonage_id, "stream_token": ["not", "text"]},
        }
    )
    codes = await asyncio.gather(
        send_stream_closing(ca, good),
        *(garbage("twilio", [m]) for m in SOCKET_GARBAGE),
        garbage("vonage", [b"\x01" * 641, vonage_first, "{", b"\x00" * 7], vonage_id),
        garbage("vonage", [json.dumps({"event": "websocket:connected", "content-type": ["x"]})],
                vonage_id),
    )
    assert all(code in (1000, 1003, 1008, 1009) for code in codes), codes
    assert await ca.observer.ended(good_id) is False
    assert len(ca.observer.pcm(good_id, Party.CUSTOMER)) == len(customer)
    assert vonage_id not in ca.observer.sessions
    assert 'reason="internal_error"' not in await ca.metric(
        "coachline_carrier_rejected_messages_total"
    )
    assert (await ca.client.get("/ready")).status == 200
    # The Vonage call's admission was not spent by the garbage: its real stream still gets in.
    stream = VonageStream(ca.stream_params(vonage_id), np.zeros(640, np.int16)).messages()
    async with ca.media_socket("vonage", vonage_id) as ws:
        await send_stream(ws, stream, realtime=False)
    assert await ca.observer.ended(vonage_id) is False


async def send_stream_closing(ca, messages) -> int:
    async with ca.media_socket("twilio") as ws:
        await send_stream(ws, messages, realtime=False)
        return ws.close_code
