"""Fuzzed datagrams on a real node's SIP and RTP sockets: it keeps serving a valid peer call.

The bursts are drawn by hypothesis (derandomized, from the strategies the parser fuzzing uses)
and sent from a trusted peer, a peer that owes a digest and a stranger, each on its own
loopback address. Property: no datagram ends in an unhandled exception or a 500, and a real
call (sipp, or a hand-made one carrying fuzzed RTP and RFC 4733 among its audio) goes through.
"""

from __future__ import annotations

import asyncio
import logging
import socket

import numpy as np
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from media.g711 import ulaw_encode
from media.rtp import RtpPacket
from tests.security.sip_fuzz_inputs import (
    SIP_BYTES,
    request,
    rtp_datagrams,
    telephone_events,
)
from tests.voice_server.sip_node import REP_DIALLED, sip_node
from tests.voice_server.sipp_harness import PCAPS, run_sipp, scenario
from voice_server.sip.addresses import NameAddr
from voice_server.sip.message import SipResponse, parse_message
from voice_server.sip.sdp import parse_sdp


def drawn(strategy, count: int) -> list:
    """``count`` values of ``strategy``, the same ones every run."""
    out: list = []

    @settings(
        max_examples=count, derandomize=True, database=None, deadline=None, phases=[Phase.generate]
    )
    @given(strategy)
    def collect(value) -> None:
        out.append(value)

    collect()
    return out


class Endpoint:
    def __init__(self, ip: str, server: tuple[str, int]) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((ip, 0))
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]
        self.server = server
        self.received: list[bytes] = []

    def send(self, data: bytes, to: tuple[str, int] | None = None) -> None:
        try:
            self.sock.sendto(data, to or self.server)
        except OSError:
            pass  # a datagram too big for UDP never leaves: nothing to test

    async def recv(self, timeout: float) -> bytes | None:
        loop = asyncio.get_running_loop()
        try:
            data = await asyncio.wait_for(loop.sock_recv(self.sock, 65535), timeout)
        except TimeoutError:
            return None
        self.received.append(data)
        return data

    async def drain(self, quiet_s: float = 0.2) -> None:
        while await self.recv(quiet_s) is not None:
            pass

    def close(self) -> None:
        self.sock.close()


def _errors(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def _no_500(datagrams: list[bytes]) -> None:
    for data in datagrams:
        message = parse_message(data)
        if isinstance(message, SipResponse):
            assert message.status != 500 or message.reason == "CSeq out of order", data[:200]


async def test_a_burst_of_fuzzed_sip_then_a_real_call(
    migrated_database, redis_url, tmp_path, slow_mode, caplog
):
    count = 3000 if slow_mode else 150
    burst = drawn(
        st.tuples(st.sampled_from(["127.0.0.1", "127.0.0.2", "127.0.0.3"]), SIP_BYTES), count
    )
    caplog.set_level(logging.WARNING)
    async with sip_node(
        migrated_database,
        redis_url,
        COACHLINE_SIP_PEERS="127.0.0.1/32,pbx:s3cret@127.0.0.2/32",
        COACHLINE_SIP_NON_PEER_POLICY="reject",
    ) as node:
        server = ("127.0.0.1", node.port)
        sources = {ip: Endpoint(ip, server) for ip in ("127.0.0.1", "127.0.0.2", "127.0.0.3")}
        try:
            for i, (ip, data) in enumerate(burst):
                sources[ip].send(data)
                if i % 25 == 0:
                    await asyncio.sleep(0)  # let the node read (its socket buffer is finite)
            await asyncio.gather(*(s.drain() for s in sources.values()))
            for source in sources.values():
                _no_500(source.received)
            stranger = sources["127.0.0.3"]
            sent_by_stranger = sum(len(d) for ip, d in burst if ip == "127.0.0.3")
            assert sum(map(len, stranger.received)) <= sent_by_stranger
        finally:
            for source in sources.values():
                source.close()

        result = await run_sipp(
            node.port,
            scenario(
                tmp_path,
                "call.xml",
                PT=8,
                CODEC="PCMA",
                PCAP=PCAPS / "dtmf_2833_1.pcap",
                PAUSE_MS=300,
                DTMF_PCAP=PCAPS / "dtmf_2833_2.pcap",
            ),
            service=REP_DIALLED,
        )
        assert result.returncode == 0, result.stdout + result.errors
    assert _errors(caplog) == []


async def test_a_call_survives_fuzzed_rtp_and_telephone_events(
    migrated_database, redis_url, slow_mode, caplog
):
    count = 2000 if slow_mode else 120
    junk = drawn(
        rtp_datagrams() | telephone_events().map(RtpPacket.build) | st.binary(max_size=1600), count
    )
    caplog.set_level(logging.WARNING)
    async with sip_node(migrated_database, redis_url) as node:
        sip = Endpoint("127.0.0.1", ("127.0.0.1", node.port))
        rtp = Endpoint("127.0.0.1", ("127.0.0.1", 0))
        try:
            sdp = (
                "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                f"m=audio {rtp.port} RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n"
            )
            invite = request(body=sdp).replace(b"5070", str(sip.port).encode())
            sip.send(invite)
            while True:
                ok = parse_message(await sip.recv(5.0))
                if ok.status >= 200:
                    break
            assert ok.status == 200
            to_tag = NameAddr.parse(ok.headers.get("To")).tag
            media_port = parse_sdp(ok.body).media[0].port
            in_dialog = (
                request("ACK")
                .replace(b"5070", str(sip.port).encode())
                .replace(
                    f"<sip:{REP_DIALLED}@127.0.0.1>".encode(),
                    f"<sip:{REP_DIALLED}@127.0.0.1>;tag={to_tag}".encode(),
                    1,
                )
            )
            sip.send(in_dialog)

            tone = ulaw_encode((3000 * np.sin(np.arange(160 * 50) / 5)).astype(np.int16))
            to = ("127.0.0.1", media_port)
            # The first packet is valid so the stream latches on our address; junk follows
            # from the same address, between the audio packets.
            step = max(1, len(junk) // 49)
            for n in range(50):
                rtp.send(
                    RtpPacket(0, n, 160 * n, 42, payload=tone[160 * n : 160 * (n + 1)]).build(), to
                )
                for data in junk[n * step : (n + 1) * step]:
                    rtp.send(data, to)
                await asyncio.sleep(0)
            for data in junk[50 * step :]:
                rtp.send(data, to)
            [log] = node.logs
            await node.eventually(lambda: _async(len(log.frames) > 0))

            bye = (
                in_dialog.replace(b"ACK sip", b"BYE sip")
                .replace(b"1 ACK", b"2 BYE")
                .replace(b"z9hG4bKpin", b"z9hG4bKbye")
            )
            sip.send(bye)
            while True:
                answer = parse_message(await sip.recv(5.0))
                if answer.cseq.method == "BYE":
                    break
            assert answer.status == 200
            await asyncio.wait_for(log.closed.wait(), 10)
            assert log.abnormal is False
        finally:
            sip.close()
            rtp.close()
    assert _errors(caplog) == []


async def _async(value):
    return value
