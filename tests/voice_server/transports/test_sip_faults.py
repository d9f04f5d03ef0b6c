"""Bad SIP on the wire and retransmissions: answered or dropped, never a crash, calls go on."""

from __future__ import annotations

import asyncio
import socket

from tests.voice_server.sip_node import REP_DIALLED, sip_node
from tests.voice_server.sipp_harness import (
    PCAPS,
    run_sipp,
    scenario,
)
from voice_server.app_keys import METRICS
from voice_server.sip.addresses import NameAddr
from voice_server.sip.message import SipResponse, parse_message


class Peer:
    """A bare UDP socket that speaks SIP by hand, for what sipp will not send."""

    def __init__(self, server_port: int) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]
        self.server = ("127.0.0.1", server_port)

    def send(self, data: bytes) -> None:
        self.sock.sendto(data, self.server)

    async def recv(self, timeout: float = 5.0) -> SipResponse | None:
        loop = asyncio.get_running_loop()
        try:
            data = await asyncio.wait_for(loop.sock_recv(self.sock, 65535), timeout)
        except TimeoutError:
            return None
        return parse_message(data)

    def close(self) -> None:
        self.sock.close()


def _request(peer: Peer, method: str, *, call_id: str = "c1", branch: str = "z9hG4bKa1",
             cseq: int = 1, to_tag: str = "", body: str = "", length: int | None = None,
             drop: tuple[str, ...] = ()) -> bytes:
    headers = [
        ("Via", f"SIP/2.0/UDP 127.0.0.1:{peer.port};branch={branch};rport"),
        ("From", f"<sip:15550009999@127.0.0.1:{peer.port}>;tag=f1"),
        ("To", f"<sip:{REP_DIALLED}@127.0.0.1>" + (f";tag={to_tag}" if to_tag else "")),
        ("Call-ID", call_id), ("CSeq", f"{cseq} {method}"), ("Max-Forwards", "70"),
        ("Contact", f"<sip:caller@127.0.0.1:{peer.port}>"),
    ]
    if body:
        headers.append(("Content-Type", "application/sdp"))
    headers.append(("Content-Length", str(len(body.encode()) if length is None else length)))
    lines = [f"{method} sip:{REP_DIALLED}@127.0.0.1 SIP/2.0"]
    lines += [f"{k}: {v}" for k, v in headers if k not in drop]
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


SDP = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
       "m=audio 41000 RTP/AVP 0\r\n")


async def test_malformed_sip_is_answered_400_or_dropped_and_calls_go_on(
        migrated_database, redis_url, tmp_path):
    async with sip_node(migrated_database, redis_url) as node:
        peer = Peer(node.port)
        try:
            peer.send(b"\x16\x03\x01 not sip at all \xff\xfe")
            assert await peer.recv(timeout=0.5) is None  # nothing to answer to: dropped, logged
            peer.send(_request(peer, "INVITE", body=SDP, branch="z9hG4bKt").split(b"\r\n\r\n")[0])
            assert (await peer.recv()).status == 400  # truncated, but its Via says where to
            cases = {
                "huge length": _request(peer, "INVITE", body=SDP, length=10**8, branch="z9hG4bKb1"),
                "no CSeq": _request(peer, "INVITE", body=SDP, drop=("CSeq",), branch="z9hG4bKb2"),
                "no Call-ID": _request(peer, "OPTIONS", drop=("Call-ID",), branch="z9hG4bKb3"),
                "bad SDP": _request(peer, "INVITE", body="v=1\r\nnonsense\r\n", call_id="c4",
                                    branch="z9hG4bKb4"),
                "header garbage": _request(peer, "OPTIONS", branch="z9hG4bKb5").replace(
                    b"Max-Forwards: 70", b"Max Forwards 70"),
            }
            statuses = {}
            for name, data in cases.items():
                peer.send(data)
                while True:
                    response = await peer.recv()
                    assert response is not None, f"no answer to {name}"
                    if response.status >= 200:
                        break
                statuses[name] = response.status
            assert statuses == {name: 400 for name in cases}
            unsupported = _request(peer, "INVITE", call_id="c6", branch="z9hG4bKb6",
                                   body=SDP.replace("RTP/AVP 0", "RTP/AVP 18"))
            peer.send(unsupported)
            statuses = [r.status for r in [await peer.recv(), await peer.recv()]]
            assert statuses[-1] == 488
            peer.send(_request(peer, "BYE", call_id="nope", to_tag="x", branch="z9hG4bKb7"))
            assert (await peer.recv()).status == 481
            peer.send(_request(peer, "REGISTER", branch="z9hG4bKb8"))
            assert (await peer.recv()).status == 405
        finally:
            peer.close()
        assert node.app[METRICS].sip_rejected._value.get() >= 6

        # The node still takes a real call.
        result = await run_sipp(node.port, scenario(
            tmp_path, "call.xml", PT=8, CODEC="PCMA", PCAP=PCAPS / "dtmf_2833_1.pcap",
            PAUSE_MS=300, DTMF_PCAP=PCAPS / "dtmf_2833_2.pcap"), service=REP_DIALLED)
        assert result.returncode == 0, result.stdout + result.errors
        [log] = node.logs
        await log.closed.wait()
        assert [d for d, *_ in log.digits] == ["1", "2"]
        assert log.abnormal is False


async def test_retransmitted_invite_is_absorbed_and_200_repeats_until_ack(
        migrated_database, redis_url):
    async with sip_node(migrated_database, redis_url) as node:
        peer = Peer(node.port)
        try:
            invite = _request(peer, "INVITE", body=SDP, call_id="rt1", branch="z9hG4bKrt")
            peer.send(invite)
            peer.send(invite)  # a retransmission: the same transaction
            oks = []
            while len(oks) < 2:  # the 200 comes again while we hold back the ACK
                response = await peer.recv()
                assert response is not None
                if response.status == 200:
                    oks.append(response)
            peer.send(invite)  # even after the 2xx, the INVITE gets the same 200 again
            while (response := await peer.recv()).status != 200:
                pass
            to_tag = NameAddr.parse(oks[0].headers.get("To")).tag
            assert all(NameAddr.parse(r.headers.get("To")).tag == to_tag for r in oks)
            assert len(await node.call_rows()) == 1 and len(node.logs) == 1
            peer.send(_request(peer, "ACK", call_id="rt1", to_tag=to_tag, branch="z9hG4bKack"))
            await asyncio.sleep(0)
            hold = _request(peer, "INVITE", call_id="rt1", to_tag=to_tag, cseq=2,
                            branch="z9hG4bKhold", body=SDP + "a=inactive\r\n")
            peer.send(hold)
            held = await _final(peer, cseq=2)
            peer.send(hold)  # retransmitted re-INVITE: the same 200, not a new offer
            again = await _final(peer, cseq=2)
            assert held.status == again.status == 200 and held.body == again.body
            assert b"a=inactive" in held.body
            assert next(iter(node.edge.calls.values())).on_hold
            peer.send(_request(peer, "ACK", call_id="rt1", to_tag=to_tag, cseq=2,
                               branch="z9hG4bKack2"))
            await asyncio.sleep(0)
            info = _request(peer, "INFO", call_id="rt1", to_tag=to_tag, cseq=3,
                            branch="z9hG4bKinfo", body="Signal=7\r\nDuration=160\r\n").replace(
                b"application/sdp", b"application/dtmf-relay")
            peer.send(info)
            assert (await _final(peer, cseq=3)).status == 200
            peer.send(_request(peer, "BYE", call_id="rt1", to_tag=to_tag, cseq=4,
                               branch="z9hG4bKbye"))
            while (response := await peer.recv()).status == 200 and \
                    response.cseq.method == "INVITE":
                pass
            assert response.cseq.method == "BYE" and response.status == 200
            stale = _request(peer, "BYE", call_id="rt1", to_tag=to_tag, cseq=5,
                             branch="z9hG4bKbye2")
            peer.send(stale)
            assert (await peer.recv()).status == 481  # the dialog is gone
        finally:
            peer.close()
        await node.logs[0].closed.wait()
        assert node.logs[0].abnormal is False
        assert [(d, dur) for d, _at, dur in node.logs[0].digits] == [("7", 160)]


async def _final(peer: Peer, cseq: int | None = None) -> SipResponse:
    """The next final response (to CSeq ``cseq``; retransmissions of others are skipped)."""
    while True:
        response = await peer.recv()
        assert response is not None, "no final response"
        if response.status >= 200 and cseq in (None, response.cseq.number):
            return response


async def test_unsupported_body_and_extension_are_refused(migrated_database, redis_url):
    async with sip_node(migrated_database, redis_url) as node:
        peer = Peer(node.port)
        try:
            text = _request(peer, "INVITE", body=SDP, call_id="u1", branch="z9hG4bKu1").replace(
                b"Content-Type: application/sdp", b"Content-Type: text/plain")
            peer.send(text)
            response = await _final(peer)
            assert response.status == 415
            assert "application/sdp" in response.headers.get("Accept")

            prack = _request(peer, "INVITE", body=SDP, call_id="u2", branch="z9hG4bKu2").replace(
                b"Max-Forwards: 70", b"Max-Forwards: 70\r\nRequire: 100rel")
            peer.send(prack)
            response = await _final(peer)
            assert (response.status, response.headers.get("Unsupported")) == (420, "100rel")

            peer.send(_request(peer, "INVITE", call_id="u3", branch="z9hG4bKu3"))  # no offer
            assert (await _final(peer)).status == 488
        finally:
            peer.close()
        assert await node.call_rows() == []


async def test_a_full_node_answers_503_and_keeps_its_calls(migrated_database, redis_url):
    async with sip_node(migrated_database, redis_url, COACHLINE_SIP_MAX_CALLS="1") as node:
        peer = Peer(node.port)
        try:
            peer.send(_request(peer, "INVITE", body=SDP, call_id="m1", branch="z9hG4bKm1"))
            first = await _final(peer, cseq=1)
            assert first.status == 200
            peer.send(_request(peer, "INVITE", body=SDP, call_id="m2", branch="z9hG4bKm2"))
            while (second := await _final(peer)).call_id != "m2":
                pass  # the first call's 200 may come again before our ACK
            assert second.status == 503 and second.headers.get("Retry-After")
            assert len(node.edge.calls) == 1
            to_tag = NameAddr.parse(first.headers.get("To")).tag
            peer.send(_request(peer, "ACK", call_id="m1", to_tag=to_tag, branch="z9hG4bKm1a"))
            peer.send(_request(peer, "BYE", call_id="m1", to_tag=to_tag, cseq=2,
                               branch="z9hG4bKm1b"))
            assert (await _final(peer, cseq=2)).status == 200
        finally:
            peer.close()
        await node.logs[0].closed.wait()
        assert node.logs[0].abnormal is False
