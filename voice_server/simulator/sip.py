"""Simulate a PBX forking a call to Coachline over SIPREC: two WAVs in, two parties out.

    python -m voice_server.simulator.sip --server 127.0.0.1:5060 --to 15551230001 \\
        --rep-wav rep.wav --customer-wav customer.wav [--codec PCMA] [--fast] \\
        [--user pbx --password secret]

One INVITE (RFC 7866: multipart SDP + rs-metadata) with two audio streams,
the rep's (participant AOR ``sip:<to>@…``, so Coachline routes it to the
rep with that number) and the customer's; each WAV (8 kHz mono 16-bit) is
sent as 20 ms G.711 RTP packets at real-time pace (``--fast``: as fast as
the server takes them), then BYE. Answers a digest challenge when given
credentials. Prints one JSON line. ``simulate_sip_call`` is the same for
other tools (``coachline simulate-call --carrier sip``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from media.g711 import alaw_encode, ulaw_encode
from media.resample import resample
from media.rtp import RtpPacket
from voice_server.sip.addresses import NameAddr
from voice_server.sip.digest import digest_response, parse_digest
from voice_server.sip.message import SipResponse, parse_message
from voice_server.sip.sdp import parse_sdp

_ENCODE = {"PCMU": (0, ulaw_encode), "PCMA": (8, alaw_encode)}
_BOUNDARY = "coachline-sim"


class SimulationError(RuntimeError):
    pass


@dataclass(frozen=True)
class SimulatedSipCall:
    server: tuple[str, int]
    to: str
    rep_wav: Path
    customer_wav: Path
    from_number: str = "15550009999"
    codec: str = "PCMA"
    realtime: bool = True
    username: str | None = None
    password: str | None = None


@dataclass(frozen=True)
class SipSimReport:
    sip_call_id: str
    status: int
    rep_packets: int
    customer_packets: int
    bye_status: int | None


def read_wav_8k(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as wav:
        if wav.getsampwidth() != 2:
            raise SimulationError(f"{path}: 16-bit PCM WAV expected")
        pcm = np.frombuffer(wav.readframes(wav.getnframes()), "<i2").astype(np.int16)
        if wav.getnchannels() > 1:
            pcm = pcm.reshape(-1, wav.getnchannels())[:, 0].copy()
        rate = wav.getframerate()
    return pcm if rate == 8000 else resample(pcm, rate, 8000)


class _Inbox(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[SipResponse] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr) -> None:
        try:
            message = parse_message(data)
        except ValueError:
            return
        if isinstance(message, SipResponse):
            self.queue.put_nowait(message)


def _metadata(to: str, from_number: str, host: str) -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\r\n'
        '<recording xmlns="urn:ietf:params:xml:ns:recording:1">'
        "<datamode>complete</datamode>"
        '<session session_id="s1"><sipSessionID>sim</sipSessionID></session>'
        f'<participant participant_id="rep"><nameID aor="sip:{to}@{host}"/></participant>'
        f'<participant participant_id="cust"><nameID aor="sip:{from_number}@{host}"/></participant>'
        '<stream stream_id="st-rep" session_id="s1"><label>1</label></stream>'
        '<stream stream_id="st-cust" session_id="s1"><label>2</label></stream>'
        '<participantstreamassoc participant_id="rep"><send>st-rep</send></participantstreamassoc>'
        '<participantstreamassoc participant_id="cust"><send>st-cust</send>'
        "</participantstreamassoc></recording>"
    )


def _request(method: str, call: SimulatedSipCall, *, local: tuple[str, int], call_id: str,
             from_tag: str, cseq: int, to_tag: str | None = None, body: str = "",
             content_type: str | None = None, extra: list[str] | None = None,
             branch: str | None = None) -> bytes:
    host, port = call.server
    branch = branch or f"z9hG4bK{secrets.token_hex(8)}"
    uri = f"sip:{call.to}@{host}:{port}"
    lines = [
        f"{method} {uri} SIP/2.0",
        f"Via: SIP/2.0/UDP {local[0]}:{local[1]};branch={branch};rport",
        "Max-Forwards: 70",
        f"From: <sip:src@{local[0]}:{local[1]}>;tag={from_tag}",
        f"To: <{uri}>" + (f";tag={to_tag}" if to_tag else ""),
        f"Call-ID: {call_id}", f"CSeq: {cseq} {method}",
        f"Contact: <sip:src@{local[0]}:{local[1]}>;+sip.src",
        *(extra or []),
    ]
    if content_type:
        lines.append(f"Content-Type: {content_type}")
    lines.append(f"Content-Length: {len(body.encode())}")
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


async def _final(inbox: _Inbox, cseq: int, timeout: float = 10.0) -> SipResponse:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise SimulationError(f"no final response to CSeq {cseq}")
        response = await asyncio.wait_for(inbox.queue.get(), remaining)
        if response.status >= 200 and response.cseq.number == cseq:
            return response


async def simulate_sip_call(call: SimulatedSipCall) -> SipSimReport:
    loop = asyncio.get_running_loop()
    sip, inbox = await loop.create_datagram_endpoint(_Inbox, local_addr=("127.0.0.1", 0),
                                                     remote_addr=call.server)
    rtp = [(await loop.create_datagram_endpoint(asyncio.DatagramProtocol,
                                                 local_addr=("127.0.0.1", 0)))[0]
           for _ in range(2)]
    try:
        local = sip.get_extra_info("sockname")[:2]
        pt, encode = _ENCODE[call.codec]
        ports = [t.get_extra_info("sockname")[1] for t in rtp]
        sdp = "\r\n".join([
            "v=0", f"o=sim 1 1 IN IP4 {local[0]}", "s=siprec", f"c=IN IP4 {local[0]}", "t=0 0",
            *[line for label, port in (("1", ports[0]), ("2", ports[1])) for line in (
                f"m=audio {port} RTP/AVP {pt}", f"a=rtpmap:{pt} {call.codec}/8000",
                f"a=label:{label}", "a=sendonly")],
        ]) + "\r\n"
        body = (f"--{_BOUNDARY}\r\nContent-Type: application/sdp\r\n\r\n{sdp}\r\n"
                f"--{_BOUNDARY}\r\nContent-Type: application/rs-metadata+xml\r\n"
                "Content-Disposition: recording-session\r\n\r\n"
                f"{_metadata(call.to, call.from_number, call.server[0])}\r\n--{_BOUNDARY}--\r\n")
        call_id, from_tag, cseq = secrets.token_hex(12), secrets.token_hex(6), 1
        ctype = f"multipart/mixed;boundary={_BOUNDARY}"
        extra = ["Require: siprec"]
        branch = f"z9hG4bK{secrets.token_hex(8)}"
        sip.sendto(_request("INVITE", call, local=local, call_id=call_id, from_tag=from_tag,
                            cseq=cseq, body=body, content_type=ctype, extra=extra, branch=branch))
        answer = await _final(inbox, cseq)
        if answer.status == 401 and call.username and call.password:
            # The ACK of a non-2xx belongs to the INVITE's transaction (same branch).
            sip.sendto(_request("ACK", call, local=local, call_id=call_id, from_tag=from_tag,
                                cseq=cseq, branch=branch,
                                to_tag=NameAddr.parse(answer.headers.get("To") or "").tag))
            challenge = parse_digest(answer.headers.get("WWW-Authenticate") or "") or {}
            cseq += 1
            uri = f"sip:{call.to}@{call.server[0]}:{call.server[1]}"
            response = digest_response(
                algorithm=challenge.get("algorithm", "MD5"), username=call.username,
                realm=challenge.get("realm", ""), password=call.password, method="INVITE",
                uri=uri, nonce=challenge.get("nonce", ""), qop="auth", nc="00000001",
                cnonce="sim")
            authorization = (
                f'Authorization: Digest username="{call.username}", realm="{challenge.get("realm")}"'
                f', nonce="{challenge.get("nonce")}", uri="{uri}", response="{response}", '
                f'algorithm={challenge.get("algorithm", "MD5")}, qop=auth, nc=00000001, '
                'cnonce="sim"')
            extra = [*extra, authorization]
            sip.sendto(_request("INVITE", call, local=local, call_id=call_id, from_tag=from_tag,
                                cseq=cseq, body=body, content_type=ctype, extra=extra))
            answer = await _final(inbox, cseq)
        if answer.status != 200:
            return SipSimReport(call_id, answer.status, 0, 0, None)
        to_tag = NameAddr.parse(answer.headers.get("To") or "").tag
        sip.sendto(_request("ACK", call, local=local, call_id=call_id, from_tag=from_tag,
                            cseq=cseq, to_tag=to_tag))
        offer_answer = parse_sdp(answer.body)
        targets = {m.label: (offer_answer.connection_for(m), m.port) for m in offer_answer.media}
        counts = await _play(rtp, [targets.get("1"), targets.get("2")],
                             [read_wav_8k(call.rep_wav), read_wav_8k(call.customer_wav)],
                             pt, encode, call.realtime)
        cseq += 1
        sip.sendto(_request("BYE", call, local=local, call_id=call_id, from_tag=from_tag,
                            cseq=cseq, to_tag=to_tag))
        bye = await _final(inbox, cseq)
        return SipSimReport(call_id, 200, counts[0], counts[1], bye.status)
    finally:
        sip.close()
        for t in rtp:
            t.close()


async def _play(transports, targets, tracks, pt, encode, realtime) -> list[int]:
    loop = asyncio.get_running_loop()
    start = loop.time()
    ssrcs = [secrets.randbits(32) for _ in tracks]
    frames = max(len(t) for t in tracks) // 160
    counts = [0, 0]
    for i in range(frames):
        for k, (transport, target, pcm) in enumerate(zip(transports, targets, tracks)):
            chunk = pcm[i * 160:(i + 1) * 160]
            if target is None or target[1] == 0 or len(chunk) < 160:
                continue
            packet = RtpPacket(pt, i & 0xFFFF, (160 * i) & 0xFFFFFFFF, ssrcs[k],
                               marker=i == 0, payload=encode(chunk)).build()
            transport.sendto(packet, target)
            counts[k] += 1
        delay = start + (i + 1) * 0.02 - loop.time() if realtime else 0.0005
        await asyncio.sleep(max(0.0, delay))
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m voice_server.simulator.sip", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--server", required=True, help="host:port of Coachline's SIP socket")
    parser.add_argument("--to", required=True, help="the rep's number or SIP user")
    parser.add_argument("--rep-wav", type=Path, required=True)
    parser.add_argument("--customer-wav", type=Path, required=True)
    parser.add_argument("--codec", choices=sorted(_ENCODE), default="PCMA")
    parser.add_argument("--fast", action="store_true", help="do not pace at real time")
    parser.add_argument("--user")
    parser.add_argument("--password")
    args = parser.parse_args()
    host, _, port = args.server.rpartition(":")
    report = asyncio.run(simulate_sip_call(SimulatedSipCall(
        (host, int(port)), args.to, args.rep_wav, args.customer_wav, codec=args.codec,
        realtime=not args.fast, username=args.user, password=args.password)))
    print(json.dumps(report.__dict__))


if __name__ == "__main__":
    main()
