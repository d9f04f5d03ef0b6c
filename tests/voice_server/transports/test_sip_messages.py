"""SIP parsing, SDP offer/answer, digest and peer rules: the pure parts of the SIP edge."""

import pytest

from voice_server.sip.addresses import NameAddr, SipUri, Via, with_received
from voice_server.sip.digest import DigestAuthenticator, DigestOutcome, digest_response
from voice_server.sip.message import SipParseError, SipRequest, parse_message, response_to
from voice_server.sip.peers import PeerPolicy, PeerSpecError
from voice_server.sip.sdp import SdpError, SdpNegotiationError, negotiate, parse_sdp
from voice_server.sip.siprec import SiprecError, parse_metadata, read_siprec_body

INVITE = (
    "INVITE sip:15551230001@127.0.0.1:5060 SIP/2.0\r\n"
    "v: SIP/2.0/UDP 10.0.0.9:5070;branch=z9hG4bK-1;rport\r\n"
    "Via: SIP/2.0/UDP proxy.example;branch=z9hG4bK-0\r\n"
    'f: "Caller" <sip:15550009999@10.0.0.9>;tag=abc\r\n'
    "t: <sip:15551230001@127.0.0.1>\r\n"
    "i: call-1@10.0.0.9\r\n"
    "CSeq: 1 INVITE\r\n"
    "Contact: <sip:caller@10.0.0.9:5070>\r\n"
    "Subject: a folded\r\n continuation\r\n"
    "Max-Forwards: 70\r\n"
    "c: application/sdp\r\n"
    "l: {length}\r\n\r\n{body}"
)
OFFER = (
    "v=0\r\no=- 1 1 IN IP4 10.0.0.9\r\ns=-\r\nc=IN IP4 10.0.0.9\r\nt=0 0\r\n"
    "m=audio 40000 RTP/AVP 18 8 0 101\r\na=rtpmap:18 G729/8000\r\na=rtpmap:8 PCMA/8000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n"
    "m=video 40002 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
)


def _invite(body: str = OFFER, length: int | str | None = None) -> bytes:
    return INVITE.format(length=len(body.encode()) if length is None else length,
                         body=body).encode()


def test_invite_parses_with_compact_and_folded_headers():
    msg = parse_message(_invite())
    assert isinstance(msg, SipRequest)
    assert msg.method == "INVITE" and msg.call_id == "call-1@10.0.0.9"
    assert msg.cseq.number == 1 and msg.cseq.method == "INVITE"
    assert len(msg.vias) == 2 and Via.parse(msg.vias[0]).branch == "z9hG4bK-1"
    assert msg.headers.get("subject") == "a folded continuation"
    assert msg.content_type == "application/sdp" and msg.body == OFFER.encode()
    caller = NameAddr.parse(msg.headers.get("From"))
    assert (caller.display, caller.uri.user, caller.tag) == ("Caller", "15550009999", "abc")


def test_response_copies_the_dialog_headers_and_adds_our_tag():
    msg = parse_message(_invite())
    resp = parse_message(response_to(msg, 180, to_tag="xyz").to_bytes())
    assert resp.status == 180
    assert resp.vias == msg.vias
    assert NameAddr.parse(resp.headers.get("To")).tag == "xyz"
    assert resp.headers.get("CSeq") == "1 INVITE"
    assert resp.headers.get("Content-Length") == "0"


@pytest.mark.parametrize("data, status", [
    (b"\x00\xff garbage", 400),
    (b"HELLO\r\n\r\n", 400),
    (b"INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\r\n", 400),  # no From …
    (_invite(length=999999999), 400),
    (_invite(length=9000), 400),
    (_invite(length=-1), 400),
    (_invite().replace(b"CSeq: 1 INVITE", b"CSeq: 1 BYE"), 400),
    (_invite().replace(b"CSeq: 1 INVITE", b"CSeq: x INVITE"), 400),
    (_invite()[:120], 400),  # truncated in the headers
    (b"OPTIONS sip:a SIP/2.0\r\n" + b"X-A: b\r\n" * 200 + b"\r\n", 400),
    (b"X" * 70000, 413),
])
def test_malformed_messages_raise_sip_parse_error(data, status):
    with pytest.raises(SipParseError) as err:
        msg = parse_message(data)
        msg.cseq  # noqa: B018 - some errors surface when the CSeq is read
    assert err.value.status == status


def test_uri_and_via_received():
    uri = SipUri.parse("sip:Alice@[::1]:5070;transport=udp")
    assert (uri.user, uri.host, uri.port, uri.params) == ("Alice", "[::1]", 5070, {"transport": "udp"})
    assert "received=127.0.0.2" in with_received("SIP/2.0/UDP 10.0.0.9:5070;branch=z9hG4bK1",
                                                 "127.0.0.2", 5070)
    assert with_received("SIP/2.0/UDP h;rport;branch=z9hG4bK1", "1.2.3.4", 999).endswith(
        ";received=1.2.3.4") and ";rport=999;" in with_received(
        "SIP/2.0/UDP h;rport;branch=z9hG4bK1", "1.2.3.4", 999)


def test_answer_picks_g711_and_telephone_event_and_refuses_video():
    answer = negotiate(parse_sdp(OFFER.encode()), "127.0.0.1", [20000])
    text = answer.sdp.decode()
    assert "m=audio 20000 RTP/AVP 8 101" in text
    assert "a=rtpmap:8 PCMA/8000" in text and "a=rtpmap:101 telephone-event/8000" in text
    assert "m=video 0 RTP/AVP 96" in text  # same number of m-lines, refused with port 0
    assert "a=recvonly" in text
    [stream] = answer.streams
    assert (stream.codec, stream.payload_type, stream.dtmf_payload_type) == ("PCMA", 8, 101)
    assert (stream.remote_ip, stream.remote_port) == ("10.0.0.9", 40000)
    assert not answer.on_hold


def test_hold_offers_are_recognised():
    held = OFFER.replace("c=IN IP4 10.0.0.9", "c=IN IP4 0.0.0.0")
    assert negotiate(parse_sdp(held.encode()), "127.0.0.1", [20000]).on_hold
    inactive = OFFER.replace("t=0 0\r\n", "t=0 0\r\na=inactive\r\n")
    answer = negotiate(parse_sdp(inactive.encode()), "127.0.0.1", [20000])
    assert answer.on_hold and "a=inactive" in answer.sdp.decode()


def test_sdp_errors():
    with pytest.raises(SdpNegotiationError):
        negotiate(parse_sdp(OFFER.replace(" 18 8 0 101", " 18 101").encode()), "127.0.0.1", [1])
    for bad in (b"hello", b"v=0\r\nm=audio x RTP/AVP 0\r\n", b"v=0\r\nc=IN IP4 nothost\r\n"):
        with pytest.raises(SdpError):
            parse_sdp(bad)


def test_digest_accepts_the_right_password_and_refuses_the_rest():
    now = [1000.0]
    auth = DigestAuthenticator("coachline", {"pbx": "s3cret"}, nonce_ttl_s=60, clock=lambda: now[0])
    assert auth.verify("INVITE", None).outcome is DigestOutcome.MISSING
    nonce = auth.challenge().split('nonce="')[1].split('"')[0]

    def header(password, nonce=nonce, user="pbx"):
        response = digest_response(algorithm="MD5", username=user, realm="coachline",
                                   password=password, method="INVITE", uri="sip:a@b",
                                   nonce=nonce, qop="auth", nc="00000001", cnonce="c")
        return (f'Digest username="{user}", realm="coachline", nonce="{nonce}", uri="sip:a@b", '
                f'response="{response}", algorithm=MD5, qop=auth, nc=00000001, cnonce="c"')

    assert auth.verify("INVITE", header("s3cret")).outcome is DigestOutcome.OK
    assert auth.verify("INVITE", header("wrong")).outcome is DigestOutcome.INVALID
    assert auth.verify("INVITE", header("s3cret", user="eve")).outcome is DigestOutcome.INVALID
    forged = nonce.split(".")[0] + ".0000"
    assert auth.verify("INVITE", header("s3cret", nonce=forged)).outcome is DigestOutcome.INVALID
    now[0] += 61
    assert auth.verify("INVITE", header("s3cret")).outcome is DigestOutcome.STALE
    assert "stale=true" in auth.challenge(stale=True)


def test_peer_policy():
    policy = PeerPolicy.from_spec("10.0.0.0/8, pbx:pw@192.0.2.7, ::1")
    assert policy.decide("10.1.2.3").allowed and policy.decide("10.1.2.3").authenticator is None
    assert policy.decide("::1").allowed
    needs = policy.decide("192.0.2.7")
    assert needs.allowed and needs.authenticator is not None
    assert not policy.decide("192.0.2.8").allowed
    assert not policy.decide("not-an-ip").allowed
    with pytest.raises(PeerSpecError):
        PeerPolicy.from_spec("user@10.0.0.1")


METADATA = b"""<?xml version="1.0" encoding="UTF-8"?>
<recording xmlns="urn:ietf:params:xml:ns:recording:1">
  <datamode>complete</datamode>
  <session session_id="s1"><sipSessionID>abc</sipSessionID></session>
  <participant participant_id="p1"><nameID aor="sip:15551230001@pbx.example"><name>Rep</name></nameID></participant>
  <participant participant_id="p2"><nameID aor="sip:15550009999@carrier.example"/></participant>
  <stream stream_id="st1" session_id="s1"><label>10</label></stream>
  <stream stream_id="st2" session_id="s1"><label>11</label></stream>
  <participantstreamassoc participant_id="p1"><send>st1</send><recv>st2</recv></participantstreamassoc>
  <participantstreamassoc participant_id="p2"><send>st2</send><recv>st1</recv></participantstreamassoc>
</recording>"""


def test_siprec_body_maps_streams_to_participants():
    sdp = (b"v=0\r\no=- 1 1 IN IP4 10.0.0.9\r\ns=-\r\nc=IN IP4 10.0.0.9\r\nt=0 0\r\n"
           b"m=audio 40000 RTP/AVP 0\r\na=label:10\r\na=sendonly\r\n"
           b"m=audio 40002 RTP/AVP 0\r\na=label:11\r\na=sendonly\r\n")
    body = (b"--BOUND\r\nContent-Type: application/sdp\r\n\r\n" + sdp +
            b"\r\n--BOUND\r\nContent-Type: application/rs-metadata+xml\r\n"
            b"Content-Disposition: recording-session\r\n\r\n" + METADATA + b"\r\n--BOUND--\r\n")
    sdp_part, metadata = read_siprec_body('multipart/mixed;boundary="BOUND"', body)
    assert sdp_part == sdp
    assert metadata.sender_of("10").aor == "sip:15551230001@pbx.example"
    assert metadata.sender_of("11").participant_id == "p2"
    answer = negotiate(parse_sdp(sdp_part), "127.0.0.1", [20000, 20002], audio_streams=2)
    assert [s.label for s in answer.streams] == ["10", "11"]
    assert answer.sdp.decode().count("a=recvonly") == 2


def test_siprec_metadata_errors():
    with pytest.raises(SiprecError):
        parse_metadata(b"<recording><nope/></recording>")
    with pytest.raises(SiprecError):
        parse_metadata(b'<!DOCTYPE x [<!ENTITY a "b">]><recording/>')
    with pytest.raises(SiprecError):
        read_siprec_body("multipart/mixed", b"x")


def test_sip_settings_are_checked():
    from voice_server.settings import SettingsError, load_settings

    settings = load_settings({"COACHLINE_SIP_ENABLED": "true", "COACHLINE_SIP_PEERS":
                              "10.0.0.0/8,pbx:pw@192.0.2.7"})
    assert settings.sip_enabled and settings.sip_port == 5060
    for bad in ({"COACHLINE_SIP_PEERS": "pbx@10.0.0.1"},
                {"COACHLINE_RTP_PORT_MIN": "30000", "COACHLINE_RTP_PORT_MAX": "20000"},
                {"COACHLINE_SIP_ENABLED": "true", "COACHLINE_SIP_HOST": "0.0.0.0"}):
        with pytest.raises(SettingsError):
            load_settings(bad)
    assert load_settings({"COACHLINE_SIP_ENABLED": "true", "COACHLINE_SIP_HOST": "0.0.0.0",
                          "COACHLINE_SIP_ADVERTISED_HOST": "203.0.113.5"}).sip_advertised_host


def test_receivable_streams_are_the_ones_negotiate_takes():
    from voice_server.sip.sdp import receivable_streams

    sdp = (b"v=0\r\no=- 1 1 IN IP4 10.0.0.9\r\ns=-\r\nc=IN IP4 10.0.0.9\r\nt=0 0\r\n"
           b"m=audio 40000 RTP/AVP 18\r\na=label:g729\r\n"
           b"m=audio 40002 RTP/AVP 0\r\na=label:a\r\n"
           b"m=audio 0 RTP/AVP 0\r\na=label:off\r\n"
           b"m=audio 40004 RTP/AVP 8\r\na=label:b\r\n")
    offer = parse_sdp(sdp)
    assert [m.label for m in receivable_streams(offer)] == ["a", "b"]
    answer = negotiate(offer, "127.0.0.1", [20000, 20002], audio_streams=2)
    assert [(s.label, s.local_port) for s in answer.streams] == [("a", 20000), ("b", 20002)]
