"""A simulated Twilio call through the whole live path: carrier media in, per-party transcripts out."""

import asyncio

from tests.voice_server.carrier_app import (
    OUR_NUMBER,
    PUBLIC_URL,
    TWILIO_TOKEN,
    start_carrier_app,
    stop_carrier_app,
)
from voice_server.app_keys import RUNTIME
from voice_server.simulator.carrier.call import SimulatedCall, simulate_call
from voice_server.simulator.carrier.wav import sound


async def test_a_twilio_call_is_transcribed_per_party(migrated_database, redis_url):
    ca = await start_carrier_app(migrated_database, redis_url, COACHLINE_STT_ENABLED="true")
    try:
        sub = await ca.app[RUNTIME].bus.subscribe("transcript.final")
        finals: list[dict] = []

        async def watch():
            async for delivery in sub:
                finals.append(delivery.event.payload)

        watcher = asyncio.create_task(watch())
        report = await simulate_call(SimulatedCall(
            carrier="twilio", server=str(ca.client.make_url("")).rstrip("/"), public_url=PUBLIC_URL,
            rep_wav=sound("agent-loginok"), customer_wav=sound("hello-world"), to_number=OUR_NUMBER,
            twilio_auth_token=TWILIO_TOKEN, rep_starts_ms=2000, realtime=True))
        for _ in range(600):
            parties = {f["party"] for f in finals if f["call_id"] == report.call_id}
            if {"customer", "rep"} <= parties:
                break
            await asyncio.sleep(0.1)
        await sub.close()
        watcher.cancel()
        ours = [f for f in finals if f["call_id"] == report.call_id]
        customer = " ".join(f["text"] for f in ours if f["party"] == "customer").lower()
        rep = " ".join(f["text"] for f in ours if f["party"] == "rep").lower()
        assert "hello" in customer and "hello" not in rep
        assert rep.strip() and "agent" in rep
        # The rep spoke from 2 s into the call: their words sit there on the call clock.
        assert min(f["start_ms"] for f in ours if f["party"] == "rep") >= 1900
    finally:
        await stop_carrier_app(ca)
