"""The carrier simulator plays whole calls (signed webhooks + media) into the real app."""

import numpy as np

from media.frames import Party
from media.g711 import ulaw_decode, ulaw_encode
from tests.voice_server.carrier_app import (  # noqa: F401  (fixture)
    OUR_NUMBER,
    PUBLIC_URL,
    TWILIO_TOKEN,
    VONAGE_SECRET,
    carrier_app,
)
from voice_server.simulator.carrier.call import SimulatedCall, simulate_call
from voice_server.simulator.carrier.wav import read_wav, sound


def _call(ca, carrier, **kwargs) -> SimulatedCall:
    return SimulatedCall(
        carrier=carrier, server=str(ca.client.make_url("")).rstrip("/"), public_url=PUBLIC_URL,
        rep_wav=sound("agent-loginok"), customer_wav=sound("hello-world"), to_number=OUR_NUMBER,
        twilio_auth_token=TWILIO_TOKEN, vonage_signature_secret=VONAGE_SECRET, **kwargs)


async def test_a_real_time_twilio_call_from_webhook_to_status_callback(carrier_app):
    ca = carrier_app
    report = await simulate_call(_call(ca, "twilio", rep_starts_ms=300, realtime=True))
    assert await ca.observer.ended(report.call_id) is False
    customer, _ = read_wav(sound("hello-world"))
    rep, _ = read_wav(sound("agent-loginok"))
    assert np.array_equal(ca.observer.pcm(report.call_id, Party.CUSTOMER), ulaw_decode(ulaw_encode(customer)))
    got_rep = ca.observer.pcm(report.call_id, Party.REP)
    assert not got_rep[:2400].any()
    assert np.array_equal(got_rep[2400:], ulaw_decode(ulaw_encode(rep)))
    row = await ca.call_row(report.call_id)
    assert (row["status"], row["external_id"]) == ("completed", report.external_id)
    assert row["duration_s"] >= 1


async def test_a_vonage_call_from_answer_to_completed_event(carrier_app):
    ca = carrier_app
    report = await simulate_call(_call(ca, "vonage", realtime=False))
    assert await ca.observer.ended(report.call_id) is False
    mixed = ca.observer.pcm(report.call_id, Party.MIXED)
    assert len(mixed) > 16000 and np.abs(mixed.astype(np.int32)).max() > 1000
    row = await ca.call_row(report.call_id)
    assert (row["status"], row["carrier"]) == ("completed", "vonage")
