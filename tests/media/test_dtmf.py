"""RFC 4733 telephone events: payload codec and one digit per key press."""

from __future__ import annotations

import random

import pytest

from media.dtmf import DTMF_DIGITS, DtmfDigit, DtmfError, DtmfEvent, DtmfReceiver
from media.rtp import RtpPacket
from tests.media.pcap import SIP_TESTER_PCAPS, read_udp_datagrams

SSRC = 0x0E05384E


def press(
    digit: str, start_ts: int, seq: int, updates: int = 6, step: int = 400, ssrc: int = SSRC
) -> list[RtpPacket]:
    """Packets a typical sender emits for one press: start, updates, three end packets."""
    packets = []
    for i in range(updates):
        event = DtmfEvent.for_digit(digit, duration=i * step)
        packets.append(
            RtpPacket(101, (seq + i) & 0xFFFF, start_ts, ssrc, payload=event.build(), marker=i == 0)
        )
    end = DtmfEvent.for_digit(digit, end=True, duration=updates * step).build()
    packets += [RtpPacket(101, (seq + updates) & 0xFFFF, start_ts, ssrc, payload=end)] * 3
    return packets


def receive(receiver: DtmfReceiver, packets: list[RtpPacket]) -> list[DtmfDigit]:
    return [digit for packet in packets for digit in receiver.push(packet)]


def test_event_payload_round_trip_and_fields():
    payload = bytes.fromhex("018a08c0")  # from dtmf_2833_1.pcap's end packet
    event = DtmfEvent.parse(payload)
    assert event == DtmfEvent(event=1, end=True, volume=10, duration=2240)
    assert event.digit == "1"
    assert event.build() == payload
    # The reserved R bit is ignored on receipt and never sent.
    assert DtmfEvent.parse(bytes.fromhex("01ca08c0")) == event
    assert DtmfEvent(event=32).digit is None  # fax tone, not a key


@pytest.mark.parametrize(
    ("payload", "reason"),
    [(b"", "4 bytes"), (b"\x01\x0a\x00", "4 bytes"), (b"\x01\x0a\x00\x00\x00", "4 bytes")],
)
def test_malformed_payloads_raise(payload, reason):
    with pytest.raises(DtmfError, match=reason):
        DtmfEvent.parse(payload)


def test_out_of_range_fields_raise():
    for bad in ({"event": 256}, {"event": 1, "volume": 64}, {"event": 1, "duration": 65536}):
        with pytest.raises(DtmfError):
            DtmfEvent(**bad)
    with pytest.raises(DtmfError, match="not a DTMF digit"):
        DtmfEvent.for_digit("E")
    with pytest.raises(DtmfError, match="bytes"):
        DtmfEvent.parse("0123")


def test_events_0_to_15_are_the_keypad():
    receiver = DtmfReceiver()
    packets = []
    for i, digit in enumerate(DTMF_DIGITS):
        packets += press(digit, start_ts=1000 + i * 8000, seq=100 + i * 10)
    digits = receive(receiver, packets)
    assert "".join(d.digit for d in digits) == "0123456789*#ABCD"
    assert [d.start_ms for d in digits] == [i * 1000 for i in range(16)]
    assert all(d.duration_ms == 300 and d.ended and d.volume == 10 for d in digits)
    assert receiver.stats.digits == 16
    assert receiver.stats.repeats == 2 * 16  # the 2nd and 3rd end packets
    assert DtmfEvent.for_digit("a").event == 12


def test_same_key_twice_is_two_presses():
    digits = receive(DtmfReceiver(), press("5", 0, 1) + press("5", 4000, 20))
    assert [(d.digit, d.start_ms) for d in digits] == [("5", 0), ("5", 500)]


def test_lost_start_packets_still_give_the_digit_with_its_start_time():
    receiver = DtmfReceiver(origin_timestamp=0)
    packets = press("7", start_ts=16000, seq=10)[3:]  # marker packet and two updates lost
    digits = receive(receiver, packets)
    assert [(d.digit, d.start_ms, d.duration_ms, d.ended) for d in digits] == [
        ("7", 2000, 300, True)
    ]


def test_repeated_and_retransmitted_packets_give_one_digit():
    packets = press("9", 0, 1)
    noisy = [p for p in packets for _ in range(3)] + packets[-1:] * 5
    receiver = DtmfReceiver()
    assert [d.digit for d in receive(receiver, noisy)] == ["9"]
    assert receiver.stats.digits == 1


def test_reordered_packets_keep_the_longest_duration():
    packets = press("3", 0, 1, updates=8)
    updates, ends = packets[:8], packets[8:]
    random.Random(4).shuffle(updates)
    digits = receive(DtmfReceiver(), updates + ends)
    assert [(d.digit, d.duration_ms) for d in digits] == [("3", 400)]


def test_late_update_after_the_end_is_ignored():
    packets = press("3", 0, 1)
    receiver = DtmfReceiver()
    digits = receive(receiver, packets[:1] + packets[6:] + packets[1:6])
    assert [d.digit for d in digits] == ["3"]


def test_packets_of_an_older_event_after_a_newer_one_are_late():
    old, new = press("1", 0, 1), press("2", 8000, 20)
    receiver = DtmfReceiver()
    digits = receive(receiver, new[:3] + old[2:4] + new[3:])
    assert [d.digit for d in digits] == ["2"]
    assert receiver.stats.late == 2


def test_lost_end_packets_are_closed_by_the_next_press():
    first = press("4", 0, 1)[:-3]  # all three end packets lost
    second = press("6", 8000, 20)
    digits = receive(DtmfReceiver(), first + second)
    assert [(d.digit, d.ended, d.duration_ms) for d in digits] == [
        ("4", False, 250),
        ("6", True, 300),
    ]


def test_lost_end_packets_are_closed_by_expiry_or_finish():
    receiver = DtmfReceiver(end_timeout_ms=1000)
    receive(receiver, press("8", 0, 1)[:-3])
    assert receiver.expire(2000 + 7000) == []  # last update at 2000; 875 ms of silence
    [digit] = receiver.expire(2000 + 8000)
    assert (digit.digit, digit.ended) == ("8", False)
    assert receiver.finish() == []

    receive(receiver, press("0", 40000, 30)[:-3])
    assert [d.digit for d in receiver.finish()] == ["0"]


def test_timestamp_and_sequence_wraparound():
    start = 0xFFFFFF00
    receiver = DtmfReceiver(origin_timestamp=0xFFFF0000)
    packets = press("#", start, 65533) + press("*", (start + 8000) & 0xFFFFFFFF, 65534 + 10)
    digits = receive(receiver, packets)
    assert [(d.digit, d.start_ms) for d in digits] == [("#", 8160), ("*", 9160)]


def test_long_event_is_split_into_segments_but_reported_once():
    # RFC 4733: past 65535 units the sender starts a new segment at ts + 65535.
    receiver = DtmfReceiver()
    seg1 = [
        RtpPacket(101, 1, 0, SSRC, payload=DtmfEvent(1, duration=d).build(), marker=d == 0)
        for d in (0, 30000, 65535)
    ]
    seg2 = [RtpPacket(101, 4, 65535, SSRC, payload=DtmfEvent(1, duration=8000).build())]
    end = [
        RtpPacket(101, 5, 65535, SSRC, payload=DtmfEvent(1, end=True, duration=16000).build())
    ] * 3
    digits = receive(receiver, seg1 + seg2 + end)
    assert [(d.digit, d.duration_ms, d.start_ms) for d in digits] == [
        ("1", (65535 + 16000) // 8, 0)
    ]


def test_non_digit_events_are_not_reported():
    ced = [
        RtpPacket(101, i, 0, SSRC, payload=DtmfEvent(32, end=i > 2, duration=i * 160).build())
        for i in range(5)
    ]
    receiver = DtmfReceiver()
    assert receive(receiver, ced) == []
    assert receiver.stats.non_digit_events == 1


def test_new_ssrc_closes_the_open_press_and_starts_fresh():
    first = press("1", 5000, 1)[:-3]
    second = press("2", 5000, 1, ssrc=1234)  # same timestamp, different sender
    digits = receive(DtmfReceiver(), first + second)
    assert [d.digit for d in digits] == ["1", "2"]


def test_malformed_payload_raises_without_breaking_the_receiver():
    receiver = DtmfReceiver()
    packets = press("5", 0, 1)
    receive(receiver, packets[:2])
    with pytest.raises(DtmfError):
        receiver.push(RtpPacket(101, 3, 0, SSRC, payload=b"\x01"))
    assert [d.digit for d in receive(receiver, packets[2:])] == ["5"]


@pytest.mark.skipif(not SIP_TESTER_PCAPS.exists(), reason="Debian package sip-tester not installed")
@pytest.mark.parametrize(
    ("name", "digit"),
    [(f"dtmf_2833_{d}.pcap", d) for d in "0123456789"]
    + [("dtmf_2833_pound.pcap", "#"), ("dtmf_2833_star.pcap", "*")],
)
def test_real_captures_give_exactly_one_digit(name, digit):
    receiver = DtmfReceiver()
    packets = [RtpPacket.parse(d.payload) for d in read_udp_datagrams(SIP_TESTER_PCAPS / name)]
    digits = receive(receiver, packets) + receiver.finish()
    assert len(digits) == 1
    assert (digits[0].digit, digits[0].start_ms, digits[0].ended) == (digit, 0, True)
    assert digits[0].duration_ms == 280  # 2240 samples at 8 kHz
