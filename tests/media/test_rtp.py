"""RTP parse/build (RFC 3550) on hand-made and real captured packets."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from media.g711 import alaw_decode, ulaw_decode, ulaw_encode
from media.rtp import (
    RtpError,
    RtpExtension,
    RtpPacket,
    Unwrapper,
    looks_like_rtcp,
    seq_distance,
    seq_newer,
    ts_distance,
)
from tests.media.pcap import SIP_TESTER_PCAPS, read_udp_datagrams

G711A_PCAP = SIP_TESTER_PCAPS / "g711a.pcap"
needs_captures = pytest.mark.skipif(
    not G711A_PCAP.exists(), reason="Debian package sip-tester (scripts/apt-test.txt) not installed"
)


def test_parse_fixed_header_by_hand():
    data = bytes.fromhex("80 e5 1f30 000033e0 0e05384e") + b"\x01\x0a\x00\x00"
    packet = RtpPacket.parse(data)
    assert packet == RtpPacket(
        payload_type=101,
        sequence=0x1F30,
        timestamp=0x33E0,
        ssrc=0x0E05384E,
        payload=b"\x01\x0a\x00\x00",
        marker=True,
    )
    assert packet.build() == data


def test_csrc_extension_and_padding_round_trip():
    packet = RtpPacket(
        payload_type=0,
        sequence=65535,
        timestamp=0xFFFFFFFF,
        ssrc=0xDEADBEEF,
        payload=b"\xff" * 160,
        marker=False,
        csrc=(1, 2, 0xFFFFFFFF),
        extension=RtpExtension(0xBEDE, b"\x10\xaa\x00\x00"),
        padding=4,
    )
    wire = packet.build()
    assert len(wire) == 12 + 3 * 4 + 4 + 4 + 160 + 4
    assert wire[0] == 0x80 | 0x20 | 0x10 | 3
    assert wire[-4:] == b"\x00\x00\x00\x04"
    assert RtpPacket.parse(wire) == packet
    assert RtpPacket.parse(wire).build() == wire


def test_empty_payload_and_empty_extension_are_valid():
    packet = RtpPacket(8, 1, 2, 3, extension=RtpExtension(0x1000))
    assert RtpPacket.parse(packet.build()) == packet
    assert RtpPacket.parse(RtpPacket(8, 1, 2, 3).build()).payload == b""


def test_parse_accepts_bytearray_and_memoryview():
    wire = RtpPacket(0, 7, 160, 42, payload=b"abc").build()
    assert RtpPacket.parse(bytearray(wire)) == RtpPacket.parse(memoryview(wire))


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "shorter than the RTP header"),
        (b"\x80\x00" + bytes(9), "shorter than the RTP header"),
        (b"\x40\x00" + bytes(10), "version 1"),
        (b"\x00\x00" + bytes(10), "version 0"),
        (b"\x82\x00" + bytes(10) + bytes(4), "2 CSRCs"),
        (b"\x90\x00" + bytes(10) + b"\x00\x00", "header extension"),
        (b"\x90\x00" + bytes(10) + b"\x00\x00\x00\x02" + bytes(4), "runs past"),
        (b"\xa0\x00" + bytes(10) + b"\x00", "count is zero"),
        (b"\xa0\x00" + bytes(10) + b"\x05", "runs into the header"),
    ],
)
def test_malformed_packets_raise_rtp_error(data, reason):
    with pytest.raises(RtpError, match=reason):
        RtpPacket.parse(data)


def test_non_bytes_and_out_of_range_fields_raise_rtp_error():
    with pytest.raises(RtpError, match="bytes"):
        RtpPacket.parse("not bytes")
    for bad in (
        {"payload_type": 128},
        {"sequence": 65536},
        {"timestamp": -1},
        {"ssrc": 1 << 32},
        {"csrc": tuple(range(16))},
        {"padding": 256},
    ):
        fields = {"payload_type": 0, "sequence": 0, "timestamp": 0, "ssrc": 0} | bad
        with pytest.raises(RtpError):
            RtpPacket(**fields)
    with pytest.raises(RtpError, match="32-bit words"):
        RtpExtension(1, b"abc")


def test_rtcp_is_told_apart_from_rtp():
    sender_report = bytes.fromhex("80c8000600000001") + bytes(20)
    assert looks_like_rtcp(sender_report)
    assert not looks_like_rtcp(RtpPacket(0, 1, 2, 3, marker=True).build())
    assert not looks_like_rtcp(b"\x80")


def test_sequence_arithmetic_wraps():
    assert seq_distance(10, 15) == 5
    assert seq_distance(15, 10) == -5
    assert seq_distance(65535, 0) == 1
    assert seq_distance(0, 65535) == -1
    assert seq_distance(65530, 4) == 10
    assert seq_newer(65535, 0) and not seq_newer(0, 65535) and not seq_newer(7, 7)
    assert ts_distance(0xFFFFFF60, 0x00000000) == 160
    assert ts_distance(160, 0) == -160


def test_unwrapper_counts_past_wraparound_and_places_late_values():
    seq = Unwrapper(16)
    got = [seq.unwrap(s) for s in (65533, 65534, 65535, 0, 65532, 1, 2)]
    assert got == [65533, 65534, 65535, 65536, 65532, 65537, 65538]
    ts = Unwrapper(32)
    assert [ts.unwrap(t) for t in (0xFFFFFF00, 0x00000060, 0xFFFFFFA0)] == [
        0xFFFFFF00,
        0x100000060,
        0xFFFFFFA0,
    ]
    with pytest.raises(RtpError):
        seq.unwrap(70000)


@needs_captures
def test_real_pcma_capture_parses_round_trips_and_decodes_to_audio():
    datagrams = read_udp_datagrams(G711A_PCAP)
    packets = [RtpPacket.parse(d.payload) for d in datagrams]
    assert len(packets) == 236
    for datagram, packet in zip(datagrams, packets, strict=True):
        assert packet.build() == datagram.payload
    assert {p.payload_type for p in packets} == {8}  # PCMA
    assert len({p.ssrc for p in packets}) == 1
    assert packets[0].marker and not any(p.marker for p in packets[1:])
    assert all(seq_distance(a.sequence, b.sequence) == 1 for a, b in itertools.pairwise(packets))
    assert {ts_distance(a.timestamp, b.timestamp) for a, b in itertools.pairwise(packets)} == {240}
    assert {len(p.payload) for p in packets} == {240}  # 30 ms at 8 kHz

    pcm = np.concatenate([alaw_decode(p.payload) for p in packets]).astype(np.float64)
    assert len(pcm) == 236 * 240  # ~7 s
    level_dbfs = 20 * np.log10(np.sqrt(np.mean(pcm**2)) / 32768)
    assert -45 < level_dbfs < -6  # audible, not clipped
    assert np.mean(np.abs(pcm) >= 32000) < 0.001
    # The call opens with A-law idle code (0xd5, the smallest level) then speech:
    # voiced speech energy sits between ~80 Hz and 3.4 kHz, with almost none near Nyquist.
    assert packets[0].payload == b"\xd5" * 240
    frame_dbfs = 20 * np.log10(np.sqrt(np.mean(pcm.reshape(-1, 240) ** 2, axis=1)) / 32768)
    assert np.sum(frame_dbfs > -40) > 100
    spectrum = np.abs(np.fft.rfft(pcm - pcm.mean())) ** 2
    freqs = np.fft.rfftfreq(len(pcm), 1 / 8000)
    assert spectrum[(freqs > 80) & (freqs < 3400)].sum() / spectrum.sum() > 0.85
    assert spectrum[freqs > 3600].sum() / spectrum.sum() < 0.01


@needs_captures
def test_real_payloads_survive_transcoding_to_pcmu():
    # The captures hold no PCMU; a PCMA -> PCM -> PCMU -> PCM trip checks both laws agree.
    packet = RtpPacket.parse(read_udp_datagrams(G711A_PCAP)[100].payload)
    pcm = alaw_decode(packet.payload)
    pcmu = RtpPacket(0, packet.sequence, packet.timestamp, packet.ssrc, payload=ulaw_encode(pcm))
    again = ulaw_decode(RtpPacket.parse(pcmu.build()).payload).astype(np.int32)
    assert np.all(np.abs(again - pcm) <= np.abs(pcm.astype(np.int32)) / 16 + 16)


@needs_captures
@pytest.mark.parametrize("name", sorted(p.name for p in SIP_TESTER_PCAPS.glob("dtmf_2833_*.pcap")))
def test_real_dtmf_captures_round_trip(name):
    for datagram in read_udp_datagrams(SIP_TESTER_PCAPS / name):
        packet = RtpPacket.parse(datagram.payload)
        assert packet.payload_type == 101 and len(packet.payload) == 4
        assert packet.build() == datagram.payload
