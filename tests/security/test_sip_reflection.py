"""SIP reflection: a source that is not a configured peer can never use the node as an amplifier.

Every "spoofed" source here is a real UDP socket on its own loopback address (127.0.0.N, which
Linux routes without privileges), so the node sees distinct source addresses exactly as it
would on the internet; only 127.0.0.1 is a peer. The stack's own timers are shortened so the
whole Timer G/H window (64*T1) fits in well under a second.
"""

from __future__ import annotations

import asyncio
import socket

from tests.voice_server.sip_node import REP_DIALLED, sip_node
from tests.voice_server.sipp_harness import PCAPS, run_sipp, scenario
from voice_server.sip.message import SipResponse, parse_message
from voice_server.sip.source_limits import SourceBudget
from voice_server.sip.transactions import TimerConfig

FAST = TimerConfig(t1=0.01, t2=0.04, t4=0.05)
# Long enough for every retransmission the old stack would make (Timer G up to Timer H).
WINDOW_S = FAST.timeout + 4 * FAST.t2
SDP = (
    "v=0\r\no=- 1 1 IN IP4 127.0.0.2\r\ns=-\r\nc=IN IP4 127.0.0.2\r\nt=0 0\r\n"
    "m=audio 41000 RTP/AVP 0\r\n"
)


class Source:
    """A UDP socket on one loopback address, counting what it sends and receives."""

    def __init__(self, ip: str, server_port: int) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((ip, 0))
        self.sock.setblocking(False)
        self.ip = ip
        self.port = self.sock.getsockname()[1]
        self.server = ("127.0.0.1", server_port)
        self.sent_bytes = 0
        self.received: list[bytes] = []

    def send(self, data: bytes) -> None:
        self.sent_bytes += len(data)
        self.sock.sendto(data, self.server)

    async def collect(self, seconds: float) -> list[bytes]:
        """Everything that arrives within ``seconds`` (the node's window of retransmissions)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while (left := deadline - loop.time()) > 0:
            try:
                self.received.append(await asyncio.wait_for(loop.sock_recv(self.sock, 65535), left))
            except TimeoutError:
                break
        return self.received

    def close(self) -> None:
        self.sock.close()


def invite(source: Source, n: int, *, body: str = SDP, method: str = "INVITE") -> bytes:
    lines = [
        f"{method} sip:{REP_DIALLED}@127.0.0.1 SIP/2.0",
        f"Via: SIP/2.0/UDP {source.ip}:{source.port};branch=z9hG4bK{source.ip}-{n};rport",
        f"From: <sip:15550009999@{source.ip}>;tag=f{n}",
        f"To: <sip:{REP_DIALLED}@127.0.0.1>",
        f"Call-ID: flood-{source.ip}-{n}",
        f"CSeq: 1 {method}",
        "Max-Forwards: 70",
        f"Contact: <sip:x@{source.ip}:{source.port}>",
    ]
    if body:
        lines.append("Content-Type: application/sdp")
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


def fast_timers(node) -> None:
    node.edge.uas.transactions.timers = FAST


def statuses(datagrams: list[bytes]) -> list[int]:
    out = []
    for data in datagrams:
        message = parse_message(data)
        assert isinstance(message, SipResponse)
        out.append(message.status)
    return out


async def test_one_invite_from_a_non_peer_gets_one_403_never_retransmitted(
    migrated_database, redis_url
):
    async with sip_node(
        migrated_database,
        redis_url,
        COACHLINE_SIP_PEERS="127.0.0.1/32",
        COACHLINE_SIP_NON_PEER_POLICY="reject",
    ) as node:
        fast_timers(node)
        stranger = Source("127.0.0.2", node.port)
        try:
            stranger.send(invite(stranger, 1))
            got = await stranger.collect(WINDOW_S)
            assert statuses(got) == [403]
            assert len(got[0]) <= stranger.sent_bytes
            assert len(node.edge.uas.transactions) == 0
        finally:
            stranger.close()


async def test_by_default_a_non_peer_hears_nothing_and_leaves_no_state(
    migrated_database, redis_url
):
    async with sip_node(migrated_database, redis_url, COACHLINE_SIP_PEERS="127.0.0.1/32") as node:
        fast_timers(node)
        stranger = Source("127.0.0.3", node.port)
        try:
            stranger.send(invite(stranger, 1))
            stranger.send(invite(stranger, 2, body="", method="OPTIONS"))
            stranger.send(invite(stranger, 3).split(b"\r\n\r\n")[0])  # truncated, but has a Via
            assert await stranger.collect(WINDOW_S) == []
            assert len(node.edge.uas.transactions) == 0
        finally:
            stranger.close()


async def test_non_peer_garbage_and_small_requests_draw_no_bigger_answer(
    migrated_database, redis_url
):
    async with sip_node(
        migrated_database,
        redis_url,
        COACHLINE_SIP_PEERS="127.0.0.1/32",
        COACHLINE_SIP_NON_PEER_POLICY="reject",
        COACHLINE_SIP_NON_PEER_BURST="50",
    ) as node:
        fast_timers(node)
        stranger = Source("127.0.0.4", node.port)
        try:
            # Malformed: a peer would get 400, a stranger gets nothing.
            stranger.send(invite(stranger, 1).split(b"\r\n\r\n")[0])
            stranger.send(invite(stranger, 2).replace(b"CSeq: 1 INVITE", b"CSeq: x"))
            # The smallest request the parser takes, in compact form: its 403 would echo the
            # headers in long form plus received=, rport=, a To tag and Content-Length, so it
            # would be bigger than the request. It must not be answered at all.
            tiny = (
                f"OPTIONS sip:a SIP/2.0\r\nv:SIP/2.0/UDP {stranger.ip};rport\r\n"
                "f:<sip:b>;tag=1\r\nt:<sip:a>\r\ni:1\r\nCSeq:1 OPTIONS\r\n\r\n"
            ).encode()
            stranger.send(tiny)
            got = await stranger.collect(WINDOW_S)
            assert got == []
        finally:
            stranger.close()


async def test_a_spoofed_flood_draws_at_most_the_budget_and_keeps_no_state(
    migrated_database, redis_url, tmp_path
):
    burst, flood = 3, 150
    async with sip_node(
        migrated_database,
        redis_url,
        COACHLINE_SIP_PEERS="127.0.0.1/32",
        COACHLINE_SIP_NON_PEER_POLICY="reject",
        COACHLINE_SIP_NON_PEER_BURST=str(burst),
        COACHLINE_SIP_NON_PEER_PER_S="0.01",
        COACHLINE_SIP_NON_PEER_TOTAL_PER_S="10",
    ) as node:
        fast_timers(node)
        uas = node.edge.uas
        # One source, many requests (each a new transaction, as a spoofing flood would be).
        one = Source("127.0.0.5", node.port)
        # Many sources, a few requests each: the total budget holds where each source's would not.
        many = [Source(f"127.0.0.{i}", node.port) for i in range(10, 40)]
        try:
            for n in range(flood):
                one.send(invite(one, n))
            for n in range(burst):
                for source in many:
                    source.send(invite(source, n))
            await one.collect(WINDOW_S)
            await asyncio.gather(*(s.collect(0.05) for s in many))
            assert len(uas.transactions) == 0 and len(uas) == 0

            assert 1 <= len(one.received) <= burst
            assert set(statuses(one.received)) == {403}
            assert sum(map(len, one.received)) <= one.sent_bytes
            answered_many = sum(len(s.received) for s in many)
            assert 1 <= answered_many <= 12 < burst * len(many)  # ~10/s, a second at most
            for source in many:
                assert len(source.received) <= burst
                assert sum(map(len, source.received)) <= source.sent_bytes
            assert len(uas.non_peers) <= uas.non_peers.max_sources
        finally:
            for source in [one, *many]:
                source.close()

        # The peer's calls are untouched by all of it.
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
        [log] = node.logs
        await log.closed.wait()
        assert log.abnormal is False


async def test_digest_challenges_are_stateless_and_never_retransmitted(
    migrated_database, redis_url
):
    # A peer entry that must authenticate: anyone in the network is challenged, so a
    # challenge is as reachable by spoofing as a 403 and must cost as little.
    async with sip_node(
        migrated_database, redis_url, COACHLINE_SIP_PEERS="pbx:s3cret@127.0.0.0/8"
    ) as node:
        fast_timers(node)
        caller = Source("127.0.0.6", node.port)
        try:
            caller.send(invite(caller, 1))
            got = await caller.collect(WINDOW_S)
            assert statuses(got) == [401]
            assert len(node.edge.uas.transactions) == 0
        finally:
            caller.close()


def test_source_budget_refills_bounds_the_total_and_forgets_the_oldest_sources():
    budget = SourceBudget(burst=2, per_s=1.0, total_per_s=3.0, max_sources=4)
    assert [budget.allow("a", 0.0) for _ in range(3)] == [True, True, False]
    assert budget.allow("a", 1.0)  # refilled one a second
    assert not budget.allow("a", 1.0)
    # The total: 3 a second for everyone, however many sources there are.
    later = 10.0
    assert sum(budget.allow(f"s{i}", later) for i in range(20)) == 3
    assert len(budget) <= 4
    assert sum(budget.allow(f"s{i}", later + 1.0) for i in range(20)) == 3
    # A source whose bucket is full again is not remembered at all.
    fresh = SourceBudget(burst=1, per_s=1.0, total_per_s=100.0)
    assert fresh.allow("x", 0.0) and len(fresh) == 1
    assert fresh.allow("x", 5.0) and len(fresh) == 1
