"""SIP calls from the real sipp (Debian sip-tester) into a Coachline node on loopback."""

from __future__ import annotations

import asyncio
from itertools import pairwise

import numpy as np
import pytest

from media.frames import Party
from media.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from media.rtp import RtpPacket
from tests.voice_server.sip_node import REP_DIALLED, sip_node
from tests.voice_server.sipp_harness import (
    PCAPS,
    SIPP,
    read_rtp_payloads,
    run_sipp,
    scenario,
    write_rtp_pcap,
)
from voice_server.call_recovery import NODE_IDENTITY

pytestmark = pytest.mark.skipif(SIPP is None, reason="sipp (sip-tester) not installed")


def _audio_of(frames, party):
    mine = sorted((f for f in frames if f.party == party), key=lambda f: f.timestamp_ms)
    return np.concatenate([f.pcm for f in mine]) if mine else np.zeros(0, np.int16)


async def test_pcma_call_from_a_real_capture_arrives_sample_exact_with_its_digit(
        migrated_database, redis_url, tmp_path):
    capture = PCAPS / "g711a.pcap"
    sent = [RtpPacket.parse(p) for p in read_rtp_payloads(capture)]
    expected = np.concatenate([alaw_decode(p.payload) for p in sent])
    async with sip_node(migrated_database, redis_url) as node:
        sipp = asyncio.create_task(run_sipp(node.port, scenario(
            tmp_path, "call.xml", PT=8, CODEC="PCMA", PCAP=capture, PAUSE_MS=7300,
            DTMF_PCAP=PCAPS / "dtmf_2833_1.pcap"), service=REP_DIALLED))

        async def carried():  # while the call lasts, it names the node carrying it
            rows = await node.call_rows()
            return rows if rows and rows[0]["node_id"] == node.app[NODE_IDENTITY].node_id else None

        try:
            await node.eventually(carried)
        finally:
            result = await sipp
        assert result.returncode == 0, result.stdout + result.errors
        [log] = node.logs
        await log.closed.wait()
        assert log.abnormal is False
        customer = _audio_of(log.frames, Party.CUSTOMER)
        assert len(customer) == len(expected) == 236 * 240
        assert np.array_equal(customer, expected)
        assert {f.party for f in log.frames} == {Party.CUSTOMER}
        assert all(f.sample_rate == 8000 for f in log.frames)
        stamps = [f.timestamp_ms for f in log.frames]
        assert all(b - a == 20 for a, b in pairwise(stamps))  # 30 ms packets, 20 ms frames
        assert [d for d, _at, _dur in log.digits] == ["1"]
        assert log.digits[0][1] >= stamps[-1]  # the digit came after the speech

        async def ended():
            rows = await node.call_rows()
            return rows if rows and rows[0]["ended_at"] is not None else None

        [row] = await node.eventually(ended)
        assert (row["carrier"], row["direction"], row["status"]) == ("sip", "inbound", "completed")
        assert str(row["rep_id"]) == node.rep_id and row["to_number"] == REP_DIALLED
        assert row["answered_at"] is not None and not row["ended_abnormally"]
        assert row["node_id"] is None


async def test_pcmu_call_of_our_own_audio_is_sample_exact(migrated_database, redis_url, tmp_path):
    rng = np.random.default_rng(7)
    tone = (8000 * np.sin(np.arange(8000 * 2) * 2 * np.pi * 440 / 8000)).astype(np.int16)
    tone += rng.integers(-300, 300, len(tone)).astype(np.int16)
    packets = [RtpPacket(0, (1000 + i) & 0xFFFF, 0xFFFFFF00 + 160 * i & 0xFFFFFFFF, 0x1234,
                         payload=ulaw_encode(tone[i * 160:(i + 1) * 160]), marker=i == 0).build()
               for i in range(len(tone) // 160)]  # the timestamp wraps mid-call
    capture = write_rtp_pcap(tmp_path / "tone-ulaw.pcap", packets)
    expected = ulaw_decode(ulaw_encode(tone))
    async with sip_node(migrated_database, redis_url) as node:
        result = await run_sipp(node.port, scenario(
            tmp_path, "call.xml", PT=0, CODEC="PCMU", PCAP=capture, PAUSE_MS=2300,
            DTMF_PCAP=PCAPS / "dtmf_2833_9.pcap"), service=REP_DIALLED)
        assert result.returncode == 0, result.stdout + result.errors
        [log] = node.logs
        await log.closed.wait()
        assert np.array_equal(_audio_of(log.frames, Party.CUSTOMER), expected)
        stamps = [f.timestamp_ms for f in log.frames]
        assert all(b - a == 20 for a, b in pairwise(stamps))  # no jump at the wrap
        assert [d for d, _at, _dur in log.digits] == ["9"]


async def test_cancel_before_the_answer(migrated_database, redis_url, tmp_path):
    async with sip_node(migrated_database, redis_url, COACHLINE_DB_POOL_MIN="1",
                        COACHLINE_DB_POOL_MAX="1") as node:
        # Hold the only database connection so the INVITE waits in admission
        # while sipp cancels it: the race is decided, not timed.
        conn = await node.runtime.pool.acquire()
        try:
            result = await run_sipp(node.port, scenario(tmp_path, "cancel.xml"),
                                    service=REP_DIALLED, timeout_s=20)
        finally:
            await node.runtime.pool.release(conn)
        assert result.returncode == 0, result.stdout + result.errors

        async def canceled():
            rows = await node.call_rows()
            return rows if rows and rows[0]["status"] == "canceled" else None

        [row] = await node.eventually(canceled)
        assert row["answered_at"] is None
        assert node.logs == []  # never answered: no session, no audio
        assert len(node.edge.calls) == 0 and len(node.edge.uas) == 0


@pytest.mark.parametrize("draining, status", [(False, 200), (True, 503)])
async def test_options_keepalive(migrated_database, redis_url, tmp_path, draining, status):
    from voice_server.app import start_draining

    async with sip_node(migrated_database, redis_url) as node:
        if draining:
            start_draining(node.app)
        result = await run_sipp(node.port, scenario(tmp_path, "options.xml", STATUS=status),
                                timeout_s=15)
        assert result.returncode == 0, result.stdout + result.errors


async def test_unknown_number_gets_404_and_no_call(migrated_database, redis_url, tmp_path):
    async with sip_node(migrated_database, redis_url) as node:
        result = await run_sipp(node.port, scenario(tmp_path, "rejected.xml", STATUS=404),
                                service="19990000000", timeout_s=15)
        assert result.returncode == 0, result.stdout + result.errors
        assert await node.call_rows() == []


async def test_forbidden_peer_gets_403_when_the_policy_is_reject(
        migrated_database, redis_url, tmp_path):
    async with sip_node(migrated_database, redis_url, COACHLINE_SIP_PEERS="192.0.2.1",
                        COACHLINE_SIP_NON_PEER_POLICY="reject") as node:
        result = await run_sipp(node.port, scenario(tmp_path, "rejected.xml", STATUS=403),
                                service=REP_DIALLED, timeout_s=15)
        assert result.returncode == 0, result.stdout + result.errors
        assert await node.call_rows() == []


async def test_digest_challenge_then_call(migrated_database, redis_url, tmp_path):
    capture = write_rtp_pcap(tmp_path / "short.pcap", [
        RtpPacket(8, i, 160 * i, 7, payload=alaw_encode(np.full(160, 100 * i, np.int16))).build()
        for i in range(10)])
    async with sip_node(migrated_database, redis_url,
                        COACHLINE_SIP_PEERS="pbx:s3cret@127.0.0.1") as node:
        result = await run_sipp(node.port, scenario(tmp_path, "auth_call.xml", PCAP=capture),
                                service=REP_DIALLED, extra=["-au", "pbx", "-ap", "s3cret"])
        assert result.returncode == 0, result.stdout + result.errors
        [log] = node.logs
        await log.closed.wait()
        assert len(_audio_of(log.frames, Party.CUSTOMER)) == 1600

        wrong = await run_sipp(node.port, scenario(tmp_path, "auth_refused.xml"),
                               service=REP_DIALLED, extra=["-au", "pbx", "-ap", "guess"])
        assert wrong.returncode == 0, wrong.stdout + wrong.errors
        assert len(node.logs) == 1


def _tone_packets(pt, encode, freq, seconds, ssrc, interval_samples=160):
    n = int(8000 * seconds)
    pcm = (6000 * np.sin(np.arange(n) * 2 * np.pi * freq / 8000)).astype(np.int16)
    packets = [RtpPacket(pt, i, interval_samples * i, ssrc,
                         payload=encode(pcm[i * interval_samples:(i + 1) * interval_samples])).build()
               for i in range(n // interval_samples)]
    return pcm, packets


async def test_siprec_invite_gives_two_parties_by_participant(
        migrated_database, redis_url, tmp_path):
    import asyncio
    import socket

    customer_pcm, customer_packets = _tone_packets(8, alaw_encode, 300, 1.0, 0xC0FFEE)
    rep_pcm, rep_packets = _tone_packets(0, ulaw_encode, 700, 1.0, 0xBEEF)
    capture = write_rtp_pcap(tmp_path / "customer.pcap", customer_packets)
    async with sip_node(migrated_database, redis_url) as node:
        sipp = asyncio.create_task(run_sipp(node.port, scenario(
            tmp_path, "siprec.xml", PCAP=capture, PAUSE_MS=2500, SECOND_PORT=41002),
            service="srs"))

        async def answered():
            return [m for m in node.edge.calls.values() if m.session is not None]

        [media] = await node.eventually(answered)
        assert [s.party for s in media.streams] == [Party.CUSTOMER, Party.REP]
        # sipp plays one capture (the first stream); the rep's stream comes from here.
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sender.sendto(b"\x00garbage", ("127.0.0.1", media.streams[1].port))
            # The network's usual mischief: pairs swapped, one packet twice.
            shuffled = list(rep_packets)
            for i in range(1, len(shuffled) - 1, 7):
                shuffled[i], shuffled[i + 1] = shuffled[i + 1], shuffled[i]
            shuffled.insert(20, shuffled[10])
            for packet in shuffled:
                sender.sendto(packet, ("127.0.0.1", media.streams[1].port))
                await asyncio.sleep(0.005)
        finally:
            sender.close()
        result = await sipp
        assert result.returncode == 0, result.stdout + result.errors
        [log] = node.logs
        await log.closed.wait()
        assert np.array_equal(_audio_of(log.frames, Party.CUSTOMER), alaw_decode(alaw_encode(customer_pcm)))
        assert np.array_equal(_audio_of(log.frames, Party.REP), ulaw_decode(ulaw_encode(rep_pcm)))
        [row] = await node.call_rows()
        assert str(row["rep_id"]) == node.rep_id and row["metadata"]


async def test_hold_by_reinvite_suspends_the_media_timeout(migrated_database, redis_url, tmp_path):
    _pcm, packets = _tone_packets(8, alaw_encode, 300, 0.4, 0x51)
    capture = write_rtp_pcap(tmp_path / "short.pcap", packets)
    async with sip_node(migrated_database, redis_url, COACHLINE_RTP_TIMEOUT_S="1") as node:
        result = await run_sipp(node.port, scenario(tmp_path, "hold.xml", PCAP=capture,
                                                    HELD_MS=2500), service=REP_DIALLED)
        assert result.returncode == 0, result.stdout + result.errors
        [log] = node.logs
        await log.closed.wait()
        assert log.abnormal is False  # held past the timeout, yet ended by the caller's BYE
        assert len(_audio_of(log.frames, Party.CUSTOMER)) == 2 * 8000 * 0.4
        stamps = [f.timestamp_ms for f in log.frames]
        half = len(log.frames) // 2
        assert stamps[half] - stamps[half - 1] > 2000  # resumed after the hold


async def test_rtp_timeout_hangs_up_and_ends_the_call_abnormally(
        migrated_database, redis_url, tmp_path):
    async with sip_node(migrated_database, redis_url, COACHLINE_RTP_TIMEOUT_S="1") as node:
        result = await run_sipp(node.port, scenario(tmp_path, "timeout.xml"),
                                service=REP_DIALLED, timeout_s=25)
        assert result.returncode == 0, result.stdout + result.errors  # sipp got our BYE
        [log] = node.logs
        await log.closed.wait()
        assert log.abnormal is True

        async def ended():
            rows = await node.call_rows()
            return rows if rows and rows[0]["ended_at"] is not None else None

        [row] = await node.eventually(ended)
        assert row["ended_abnormally"] and row["status"] == "failed"


async def test_database_unavailable_gives_503_not_500(migrated_database, redis_url, tmp_path,
                                                      monkeypatch):
    from voice_server.transports import sip as sip_transport

    monkeypatch.setattr(sip_transport, "DB_TIMEOUT_S", 0.5)
    async with sip_node(migrated_database, redis_url, COACHLINE_DB_POOL_MIN="1",
                        COACHLINE_DB_POOL_MAX="1") as node:
        conn = await node.runtime.pool.acquire()  # no connection left for the INVITE
        try:
            result = await run_sipp(node.port, scenario(tmp_path, "rejected.xml", STATUS=503),
                                    service=REP_DIALLED, timeout_s=15)
        finally:
            await node.runtime.pool.release(conn)
        assert result.returncode == 0, result.stdout + result.errors
        assert await node.call_rows() == []
