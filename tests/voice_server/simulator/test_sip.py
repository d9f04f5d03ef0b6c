"""The SIPREC call simulator (voice_server/simulator/sip.py) against a node that wants digest."""

from __future__ import annotations

import wave

import numpy as np

from media.frames import Party
from media.g711 import alaw_decode, alaw_encode
from tests.voice_server.sip_node import REP_DIALLED, sip_node
from voice_server.simulator.sip import SimulatedSipCall, simulate_sip_call


def _wav(path, freq, seconds):
    pcm = (5000 * np.cos(2 * np.pi * freq * np.arange(int(8000 * seconds)) / 8000)).astype(np.int16)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(pcm.tobytes())
    return pcm


async def test_two_wavs_become_two_parties_sample_exact(migrated_database, redis_url, tmp_path):
    rep = _wav(tmp_path / "rep.wav", 500, 1.2)
    customer = _wav(tmp_path / "customer.wav", 900, 2.0)
    async with sip_node(migrated_database, redis_url,
                        COACHLINE_SIP_PEERS="pbx:pw@127.0.0.1") as node:
        report = await simulate_sip_call(SimulatedSipCall(
            ("127.0.0.1", node.port), REP_DIALLED, tmp_path / "rep.wav",
            tmp_path / "customer.wav", realtime=False, username="pbx", password="pw"))
        assert (report.status, report.bye_status) == (200, 200)
        assert (report.rep_packets, report.customer_packets) == (60, 100)
        [log] = node.logs
        await log.closed.wait()
        for party, pcm in ((Party.REP, rep), (Party.CUSTOMER, customer)):
            got = np.concatenate([f.pcm for f in sorted(
                (f for f in log.frames if f.party == party), key=lambda f: f.timestamp_ms)])
            assert np.array_equal(got, alaw_decode(alaw_encode(pcm)))

        refused = await simulate_sip_call(SimulatedSipCall(
            ("127.0.0.1", node.port), REP_DIALLED, tmp_path / "rep.wav",
            tmp_path / "customer.wav", realtime=False, username="pbx", password="nope"))
        assert refused.status == 401
