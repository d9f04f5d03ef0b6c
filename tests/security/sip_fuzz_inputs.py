"""Hypothesis strategies for what arrives on the SIP and RTP ports: near-valid SIP requests
(start lines, compact and folded headers, Content-Length that lies, huge headers, NULs,
non-UTF-8), SDP offers, SIPREC multipart bodies with rs-metadata XML, RTP and RFC 4733."""

from __future__ import annotations

from hypothesis import strategies as st

from media.rtp import RtpExtension, RtpPacket

REP = "15551230001"
SDP = (
    "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio 41000 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\n"
)
METADATA = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<recording xmlns="urn:ietf:params:xml:ns:recording:1">'
    '<participant participant_id="p1"><nameID aor="sip:15551230001@pbx"/></participant>'
    '<participant participant_id="p2"><nameID aor="sip:15550009999@pbx"/></participant>'
    '<stream stream_id="s1"><label>1</label></stream>'
    '<stream stream_id="s2"><label>2</label></stream>'
    '<participantstreamassoc participant_id="p1"><send>s1</send></participantstreamassoc>'
    '<participantstreamassoc participant_id="p2"><send>s2</send></participantstreamassoc>'
    "</recording>"
)
SIPREC_SDP = (
    "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio 41000 RTP/AVP 0\r\na=label:1\r\nm=audio 41002 RTP/AVP 0\r\na=label:2\r\n"
)


def multipart(boundary: str, parts: list[tuple[str, str]]) -> str:
    out = "".join(f"--{boundary}\r\nContent-Type: {ct}\r\n\r\n{body}\r\n" for ct, body in parts)
    return out + f"--{boundary}--\r\n"


SIPREC_BODY = multipart(
    "xx", [("application/sdp", SIPREC_SDP), ("application/rs-metadata+xml", METADATA)]
)
# Entity expansion and external entities, as bytes the metadata part may carry.
HOSTILE_XML = [
    (
        b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
        b"<recording>&b;</recording>"
    ),
    b'<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><recording>&x;</recording>',
    # The same declarations in UTF-16: no ASCII "<!DOCTYPE" in the bytes at all.
    METADATA.replace("?>", '?><!DOCTYPE recording [<!ENTITY one "1">]>', 1)
    .replace("<label>1</label>", "<label>&one;</label>")
    .replace('encoding="UTF-8"', 'encoding="UTF-16"')
    .encode("utf-16"),
    '<!DOCTYPE r SYSTEM "http://192.0.2.1/x.dtd"><recording/>'.encode("utf-16-be"),
    b"<recording>&undefined;</recording>",
    b'<?xml version="1.0" encoding="x-unknown"?><recording/>',
    b"\xff\xfe\x00",
]

_line_end = st.sampled_from(["\r\n", "\r\n", "\n"])
_weird_text = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs",)) | st.sampled_from('\x00\r\n\t:;<>"@,'),
    max_size=40,
)
START_LINES = st.one_of(
    st.sampled_from(
        [
            f"INVITE sip:{REP}@127.0.0.1 SIP/2.0",
            f"OPTIONS sip:{REP}@127.0.0.1 SIP/2.0",
            f"BYE sip:{REP}@127.0.0.1 SIP/2.0",
            f"ACK sip:{REP}@127.0.0.1 SIP/2.0",
            f"CANCEL sip:{REP}@127.0.0.1 SIP/2.0",
            f"INFO sip:{REP}@127.0.0.1 SIP/2.0",
            "REGISTER sip:x SIP/2.0",
            "FOO sip:x SIP/2.0",
            "SIP/2.0 200 OK",
            "SIP/2.0 487 x",
            "INVITE sip:x SIP/3.0",
            "INVITE  sip:x SIP/2.0",
            "invite sip:x SIP/2.0",
        ]
    ),
    _weird_text,
)
HEADER_NAMES = st.sampled_from(
    [
        "Via",
        "v",
        "From",
        "f",
        "To",
        "t",
        "Call-ID",
        "i",
        "CSeq",
        "Content-Length",
        "l",
        "Content-Type",
        "c",
        "Max-Forwards",
        "Contact",
        "m",
        "Require",
        "Authorization",
        "Record-Route",
        "Route",
        "X-Junk",
        "",
        " Via",
        "Via ",
    ]
) | st.text(max_size=8)
HEADER_VALUES = st.one_of(
    st.sampled_from(
        [
            "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKfuzz;rport",
            "SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKa, SIP/2.0/UDP [::1]:5;branch=x",
            "SIP/2.0/UDP host:99999;branch=",
            "SIP/2.0/UDP 127.0.0.1;rport=;received",
            f"<sip:{REP}@127.0.0.1>",
            "<sip:15550009999@127.0.0.1>;tag=f1",
            "<sip:a@b>;tag=t1",
            '"quoted \\" name" <sip:a@b>;tag=1',
            "<sip:a@b",
            "sip:a@[::1]:5060;tag=x",
            "tel:+1555",
            "1 INVITE",
            "2 BYE",
            "1 ACK",
            "99999999999 INVITE",
            "x INVITE",
            "1",
            "0",
            "10",
            "-1",
            "application/sdp",
            "multipart/mixed;boundary=xx",
            "multipart/mixed",
            "text/plain",
            "application/dtmf-relay",
            "70",
            "256",
            "100rel",
            "siprec",
            'Digest username="pbx", realm="coachline", nonce="1.abc", uri="sip:x", response="0"',
            'Digest username="pbx", qop=auth, nc=00000001, cnonce="c", algorithm=SHA-256',
            "Digest ,,,,",
            "Basic cGJ4OnMzY3JldA==",
            "\u00b2",
            "\u00b2 INVITE",
            "\u0661\u0662",
            "1\u00b2",  # digits int() refuses or reads
        ]
    ),
    _weird_text,
)


@st.composite
def header_lines(draw) -> str:
    name = draw(HEADER_NAMES)
    sep = draw(st.sampled_from([": ", ":", " : ", " ", ""]))
    value = draw(HEADER_VALUES)
    line = f"{name}{sep}{value}"
    if draw(st.booleans()) and draw(st.booleans()):  # folded continuation
        line += draw(_line_end) + draw(st.sampled_from([" ", "\t"])) + draw(HEADER_VALUES)
    return line


@st.composite
def sip_datagrams(draw) -> bytes:
    """A request-shaped datagram, often valid, often wrong in one or two ways."""
    start = draw(START_LINES)
    method = start.split(" ")[0].upper() if start[:1].isalpha() else "INVITE"
    base = [
        "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK" + draw(st.text("abc123", max_size=6)),
        "From: <sip:15550009999@127.0.0.1>;tag=f1",
        f"To: <sip:{REP}@127.0.0.1>" + draw(st.sampled_from(["", ";tag=t1", ";tag="])),
        "Call-ID: fuzz-" + draw(st.text("abc123", max_size=6)),
        f"CSeq: 1 {method}",
        "Max-Forwards: 70",
        "Contact: <sip:peer@127.0.0.1:5070>",
    ]
    lines = draw(st.permutations(base)) if draw(st.booleans()) else base
    lines = [ln for ln in lines if draw(st.integers(0, 9)) > 0]  # sometimes one is missing
    lines += draw(st.lists(header_lines(), max_size=6))
    body = draw(
        st.one_of(
            st.just(""),
            st.just(SDP),
            st.just(SIPREC_BODY),
            _weird_text,
            st.builds(
                lambda b: multipart(
                    "xx", [("application/sdp", SIPREC_SDP), ("application/rs-metadata+xml", b)]
                ),
                st.sampled_from([x.decode("latin-1") for x in HOSTILE_XML]),
            ),
        )
    )
    body_bytes = body.encode("utf-8", "surrogatepass")
    if body:
        lines.append(
            "Content-Type: "
            + draw(
                st.sampled_from(
                    [
                        "application/sdp",
                        "multipart/mixed;boundary=xx",
                        'multipart/mixed; boundary="xx"',
                        "multipart/mixed;boundary=",
                        "application/dtmf-relay",
                    ]
                )
            )
        )
    length = draw(
        st.one_of(
            st.just(str(len(body_bytes))),
            st.integers(0, 70000).map(str),
            st.sampled_from(["", "-1", "1e3", " 5", "99999999999", "\u00b2"]),
            st.none(),
        )
    )
    if length is not None:
        lines.append(f"Content-Length: {length}")
    if draw(st.integers(0, 19)) == 0:
        lines.append("X-Huge: " + "A" * draw(st.sampled_from([8_200, 40_000, 70_000])))
    end = draw(_line_end)
    data = (start + end + end.join(lines) + end + end).encode("utf-8", "surrogatepass")
    data += body_bytes
    mutation = draw(st.integers(0, 5))
    if mutation == 0:  # non-UTF-8 or NUL bytes somewhere in the head
        at = draw(st.integers(0, max(0, len(data) - 1)))
        data = data[:at] + draw(st.sampled_from([b"\xff", b"\x00", b"\xc3", b"\r"])) + data[at:]
    elif mutation == 1:  # truncated
        data = data[: draw(st.integers(0, len(data)))]
    return data


SIP_BYTES = sip_datagrams() | st.binary(max_size=300)


@st.composite
def sdp_bodies(draw) -> bytes:
    lines = ["v=0", "o=- 1 1 IN IP4 127.0.0.1", "s=-", "c=IN IP4 127.0.0.1", "t=0 0"]
    extra = st.one_of(
        st.sampled_from(
            [
                "m=audio 41000 RTP/AVP 0 8 101",
                "m=audio 0 RTP/AVP 0",
                "m=audio 70000 RTP/AVP 0",
                "m=audio 41000/2 RTP/AVP 8",
                "m=video 41002 RTP/AVP 96",
                "m=audio x RTP/AVP 0",
                "m=audio 41000 RTP/SAVP 0",
                "m=audio 41000",
                "m=audio 41000 RTP/AVP abc 0",
                "a=rtpmap:101 telephone-event/8000",
                "a=rtpmap:0 PCMU/8000/1",
                "a=rtpmap:x y",
                "a=rtpmap:101",
                "a=fmtp:101 0-15",
                "a=sendonly",
                "a=inactive",
                "a=recvonly",
                "a=label:1",
                "c=IN IP4 0.0.0.0",
                "c=IN IP6 ::1",
                "c=IN IP4 999.1.1.1",
                "c=IN IP4",
                "c=IN IP4 127.0.0.1/127/2",
                "b=AS:64",
                "x",
                "=",
                "a=",
                "a=:",
                "m=",
                "m=audio \u00b2 RTP/AVP 0",
                "m=audio 41000 RTP/AVP \u00b2 0",
                "a=rtpmap:\u00b2 PCMU/8000",
                "a=rtpmap:0 PCMU/\u00b2",
                "a=fmtp:\u00b2 0-15",
            ]
        ),
        st.text(max_size=40).map(lambda t: "a=" + t),
        _weird_text,
    )
    lines += draw(st.lists(extra, max_size=14))
    if draw(st.integers(0, 9)) == 0:
        lines[0] = draw(st.sampled_from(["v=1", "", "v=0 "]))
    if draw(st.integers(0, 9)) == 0:
        lines.remove("o=- 1 1 IN IP4 127.0.0.1")
    data = draw(_line_end).join(lines).encode("utf-8", "surrogatepass")
    if draw(st.integers(0, 9)) == 0:
        data += b"\xff\xfe"
    return data


@st.composite
def rtp_packets(draw) -> RtpPacket:
    extension = draw(
        st.none()
        | st.builds(
            RtpExtension,
            st.integers(0, 0xFFFF),
            st.binary(max_size=12).map(lambda b: b + bytes(-len(b) % 4)),
        )
    )
    return RtpPacket(
        draw(st.integers(0, 127)),
        draw(st.integers(0, 0xFFFF)),
        draw(st.integers(0, 2**32 - 1)),
        draw(st.integers(0, 2**32 - 1)),
        marker=draw(st.booleans()),
        payload=draw(st.binary(max_size=200)),
        csrc=tuple(draw(st.lists(st.integers(0, 2**32 - 1), max_size=15))),
        extension=extension,
        padding=draw(st.sampled_from([0, 0, 1, 4, 255])),
    )


@st.composite
def rtp_datagrams(draw) -> bytes:
    """A built packet, maybe with a header bit, a length or a padding count corrupted."""
    data = bytearray(draw(rtp_packets()).build())
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.integers(0, 3))
        if kind == 0 and data:
            data[0] ^= draw(st.sampled_from([0x10, 0x20, 0x0F, 0xC0, 0x01]))
        elif kind == 1 and data:
            data[-1] = draw(st.integers(0, 255))
        elif kind == 2:
            data = data[: draw(st.integers(0, len(data)))]
        elif kind == 3 and len(data) > 15:
            data[14:16] = draw(st.binary(min_size=2, max_size=2))  # extension length word
    return bytes(data)


@st.composite
def telephone_events(draw) -> RtpPacket:
    """RFC 4733 packets from one or two senders: events, durations, ends, repeats, wraps."""
    payload = draw(
        st.one_of(
            st.tuples(
                st.integers(0, 255), st.booleans(), st.integers(0, 63), st.integers(0, 0xFFFF)
            ).map(lambda e: bytes([e[0], (0x80 if e[1] else 0) | e[2]]) + e[3].to_bytes(2, "big")),
            st.binary(max_size=8),
        )
    )
    return RtpPacket(
        101,
        draw(st.integers(0, 0xFFFF)),
        draw(st.sampled_from([0, 160, 320, 65535, 65536 + 160, 2**32 - 160])),
        draw(st.sampled_from([7, 7, 7, 8])),
        marker=draw(st.booleans()),
        payload=payload,
    )


def request(method: str = "INVITE", *, body: str = "", extra: str = "") -> bytes:
    """A valid request from a peer on 127.0.0.1:5070, for pinned examples."""
    head = (
        f"{method} sip:{REP}@127.0.0.1 SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKpin;rport\r\n"
        "From: <sip:15550009999@127.0.0.1>;tag=f1\r\n"
        f"To: <sip:{REP}@127.0.0.1>\r\nCall-ID: pin\r\nCSeq: 1 {method}\r\n"
        + extra
        + ("Content-Type: application/sdp\r\n" if body else "")
        + f"Content-Length: {len(body.encode())}\r\n\r\n"
    )
    return (head + body).encode()
