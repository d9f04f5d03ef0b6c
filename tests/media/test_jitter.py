"""Jitter buffer: order, loss, lateness, duplicates, wraparound, streams, bounds, stats."""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest

from media.frames import AudioFormatError
from media.g711 import alaw_decode, ulaw_encode
from media.jitter import Concealment, JitterBuffer
from media.rtp import RtpError, RtpPacket
from tests.media.pcap import SIP_TESTER_PCAPS, read_udp_datagrams

FRAME = 160  # 20 ms at 8 kHz


def item(n: int, seq0: int = 1000, ts0: int = 50_000) -> tuple[int, int, np.ndarray]:
    """Packet n of a stream: 20 ms whose samples all equal n + 1 (so order is visible)."""
    return ((seq0 + n) & 0xFFFF, (ts0 + n * FRAME) & 0xFFFFFFFF, np.full(FRAME, n + 1, np.int16))


def drain(buffer: JitterBuffer, now_ms: float | None = None) -> list:
    frames = []
    while (frame := buffer.pop(now_ms)) is not None:
        frames.append(frame)
    return frames


def run(buffer: JitterBuffer, order: list[int], **kw) -> list:
    frames = []
    for i, n in enumerate(order):
        buffer.push(item(n, **kw), arrival_ms=20.0 * i)
        frames += drain(buffer)
    return frames


def labels(frames) -> list[int]:
    """The packet number each frame came from (0 for concealed silence)."""
    return [int(f.pcm[0]) - 1 if f.pcm[0] else -1 for f in frames]


def test_in_order_audio_waits_depth_once_then_flows_without_delay():
    # The first frame waits for depth_ms of audio behind it; complete frames then go at once.
    buffer = JitterBuffer(depth_ms=60, frame_ms=20, sample_rate=8000)
    outputs = []
    for n in range(10):
        buffer.push(item(n), arrival_ms=20.0 * n)
        outputs.append(len(drain(buffer)))
    assert outputs == [0, 0, 0, 4, 1, 1, 1, 1, 1, 1]
    assert buffer.flush() == []
    stats = buffer.stats
    assert (stats.received, stats.lost, stats.reordered, stats.concealed_frames) == (10, 0, 0, 0)


def test_reordered_packets_come_out_in_order():
    buffer = JitterBuffer(depth_ms=60)
    order = [0, 2, 1, 3, 5, 4, 6, 9, 7, 8, 10, 11]
    frames = run(buffer, order) + buffer.flush()
    assert labels(frames) == list(range(12))
    assert [f.timestamp for f in frames] == [50_000 + n * FRAME for n in range(12)]
    assert buffer.stats.reordered == 4  # 1, 4, 7 and 8 came after a higher number
    assert buffer.stats.concealed_frames == buffer.stats.lost == 0


def test_lost_packet_becomes_one_silent_frame_after_depth():
    buffer = JitterBuffer(depth_ms=60)
    frames = run(buffer, [0, 1, 2, 3, 4, 6, 7])
    assert labels(frames) == [0, 1, 2, 3, 4]  # waiting for 5
    buffer.push(item(8), arrival_ms=200)  # now 60 ms of audio lie past the hole
    frames += drain(buffer)
    assert labels(frames) == [0, 1, 2, 3, 4, -1, 6, 7, 8]
    assert frames[5].concealed_samples == FRAME and not np.any(frames[5].pcm)
    assert buffer.stats.lost == 1 and buffer.stats.concealed_frames == 1


def test_late_packet_is_dropped_and_counted():
    buffer = JitterBuffer(depth_ms=40)
    frames = run(buffer, [0, 1, 2, 4, 5, 6, 7])
    assert labels(frames)[:5] == [0, 1, 2, -1, 4]
    assert buffer.push(item(3), arrival_ms=500) is False
    stats = buffer.stats
    assert stats.late == 1
    assert stats.lost == 0  # RFC 3550 counts it received; the damage shows as concealment
    assert stats.concealed_frames == 1


def test_packet_straddling_the_playout_point_keeps_its_unplayed_part():
    buffer = JitterBuffer(depth_ms=40)
    buffer.push((1, 0, np.full(FRAME, 1, np.int16)), arrival_ms=0)
    buffer.push((4, 3 * FRAME, np.full(FRAME, 4, np.int16)), arrival_ms=60)
    assert [int(f.pcm[0]) for f in drain(buffer)] == [1, 0]  # frame 1 given up, frame 2 waits
    # A 40 ms packet covering frames 1 (already played) and 2 (still waiting) arrives.
    wide = np.concatenate([np.full(FRAME, 7, np.int16), np.full(FRAME, 8, np.int16)])
    assert buffer.push((2, FRAME, wide), arrival_ms=70) is True
    assert [int(f.pcm[0]) for f in buffer.flush()] == [8, 4]
    assert buffer.stats.late == 0


def test_duplicates_are_dropped():
    buffer = JitterBuffer(depth_ms=40)
    order = [0, 1, 1, 2, 0, 3, 3, 3, 4, 5]
    frames = run(buffer, order) + buffer.flush()
    assert labels(frames) == [0, 1, 2, 3, 4, 5]
    assert buffer.stats.duplicates == 4
    assert buffer.stats.received == 10


def test_sequence_and_timestamp_wraparound():
    buffer = JitterBuffer(depth_ms=40)
    frames = run(buffer, list(range(12)), seq0=65530, ts0=0xFFFFFFFF - 5 * FRAME)
    frames += buffer.flush()
    assert labels(frames) == list(range(12))
    stamps = [f.timestamp for f in frames]
    assert all(b - a == FRAME for a, b in itertools.pairwise(stamps))
    assert stamps[-1] > 0xFFFFFFFF  # unwrapped, still increasing
    assert buffer.stats.lost == 0 and buffer.stats.resets == 0


def test_ssrc_change_resets_the_stream():
    buffer = JitterBuffer(depth_ms=40)
    payload = ulaw_encode(np.full(FRAME, 1000, np.int16))
    old = [RtpPacket(0, 10 + n, 8000 + n * FRAME, 111, payload=payload) for n in range(6)]
    new = [RtpPacket(0, 500 + n, 9_000_000 + n * FRAME, 222, payload=payload) for n in range(6)]
    frames = []
    for i, packet in enumerate(old + new):
        buffer.push(packet, arrival_ms=20.0 * i)
        frames += drain(buffer)
    frames += buffer.flush()
    stamps = [f.timestamp for f in frames]
    assert stamps[:6] == [8000 + n * FRAME for n in range(6)]
    assert stamps[6:] == [9_000_000 + n * FRAME for n in range(6)]
    assert buffer.stats.resets == 1 and buffer.stats.lost == 0


def test_timestamp_jump_resyncs_instead_of_filling_minutes_of_silence():
    buffer = JitterBuffer(depth_ms=40, resync_ms=5000)
    frames = run(buffer, [0, 1, 2, 3])
    buffer.push((1004, 50_000 + 8000 * 60, np.full(FRAME, 9, np.int16)), arrival_ms=100)
    frames += drain(buffer) + buffer.flush()
    assert buffer.stats.resets == 1
    assert [f.timestamp for f in frames] == [50_000 + n * FRAME for n in range(4)] + [
        50_000 + 8000 * 60
    ]


def test_memory_is_bounded_when_nobody_pops():
    buffer = JitterBuffer(depth_ms=60, max_ms=300)
    for n in range(2000):
        buffer.push(item(n), arrival_ms=20.0 * n)
        assert buffer.buffered_ms <= 300
    assert buffer.stats.overflow_dropped_ms == pytest.approx(2000 * 20 - 300)
    frames = buffer.flush()
    assert labels(frames) == list(range(2000 - 15, 2000))


def test_unknown_or_oversized_packets_are_ignored():
    buffer = JitterBuffer(depth_ms=40, max_ms=200)
    assert (
        buffer.push(RtpPacket(13, 1, 0, 5, payload=b"\x40"), arrival_ms=0) is False
    )  # comfort noise
    assert buffer.push((2, 0, np.zeros(8000, np.int16)), arrival_ms=0) is False
    assert buffer.push((3, 0, np.zeros(0, np.int16)), arrival_ms=0) is False
    assert buffer.stats.ignored == 2
    assert buffer.pop(now_ms=10_000) is None


def test_custom_decoder_for_a_dynamic_payload_type():
    def l16(payload: bytes) -> np.ndarray:
        return np.frombuffer(payload, ">i2").astype(np.int16)

    buffer = JitterBuffer(depth_ms=0, frame_ms=10, sample_rate=16000, decoders={96: l16})
    pcm = np.arange(160, dtype=np.int16)
    buffer.push(RtpPacket(96, 1, 0, 9, payload=pcm.astype(">i2").tobytes()), arrival_ms=0)
    np.testing.assert_array_equal(drain(buffer)[0].pcm, pcm)


def test_repeat_concealment_fades_the_last_frame_out():
    buffer = JitterBuffer(depth_ms=40, concealment=Concealment.REPEAT)
    buffer.push((1, 0, np.full(FRAME, 1000, np.int16)), arrival_ms=0)
    buffer.push((7, 6 * FRAME, np.full(FRAME, 1000, np.int16)), arrival_ms=0)
    frames = drain(buffer) + buffer.flush()
    assert [int(f.pcm[0]) for f in frames] == [1000, 500, 250, 125, 0, 0, 1000]
    assert [f.concealed for f in frames] == [False] + [True] * 5 + [False]


def test_clock_paced_pop_conceals_on_deadline_and_keeps_time_when_the_stream_stops():
    buffer = JitterBuffer(depth_ms=60)
    # Packets sent every 20 ms; each arrives after a 5..45 ms network delay; 7 is lost.
    rng = random.Random(1)
    arrivals = sorted((n * 20 + rng.uniform(5, 45), n) for n in range(20) if n != 7)
    frames, i = [], 0
    for tick in range(0, 1000, 20):  # the caller's 20 ms clock
        while i < len(arrivals) and arrivals[i][0] <= tick:
            buffer.push(item(arrivals[i][1]), arrival_ms=arrivals[i][0])
            i += 1
        frames += drain(buffer, now_ms=tick)
    got = labels(frames)
    assert got[:20] == [n if n != 7 else -1 for n in range(20)]
    assert got[20:] == [-1] * (len(got) - 20)  # sender stopped: steady silence, on time
    assert 45 <= len(frames) <= 50
    assert buffer.stats.lost == 1 and buffer.stats.late == 0
    assert 0 < buffer.stats.jitter_ms < 20


def test_jitter_estimate_follows_rfc3550():
    steady = JitterBuffer(depth_ms=40)
    shaky = JitterBuffer(depth_ms=40)
    for n in range(400):
        steady.push(item(n), arrival_ms=20.0 * n + 37)
        shaky.push(item(n), arrival_ms=20.0 * n + (10 if n % 2 else 0))
        drain(steady), drain(shaky)
    assert steady.stats.jitter_ms == pytest.approx(0, abs=1e-9)
    # |D| is 10 ms on every packet, so J converges to 10 ms.
    assert shaky.stats.jitter_ms == pytest.approx(10, abs=0.01)


@pytest.mark.skipif(not SIP_TESTER_PCAPS.exists(), reason="Debian package sip-tester not installed")
def test_real_30ms_capture_shuffled_plays_out_as_20ms_frames_bit_exact():
    packets = [
        RtpPacket.parse(d.payload) for d in read_udp_datagrams(SIP_TESTER_PCAPS / "g711a.pcap")
    ]
    expected = np.concatenate([alaw_decode(p.payload) for p in packets])
    rng = random.Random(3)
    # Reorder within a 3-packet window (up to 60 ms), well inside the 100 ms depth.
    order = list(range(len(packets)))
    for start in range(0, len(order) - 2, 3):
        window = order[start : start + 3]
        rng.shuffle(window)
        order[start : start + 3] = window
    buffer = JitterBuffer(depth_ms=100, frame_ms=20, sample_rate=8000)
    frames = []
    for i, n in enumerate(order):
        buffer.push(packets[n], arrival_ms=30.0 * i)
        frames += drain(buffer)
    frames += buffer.flush()
    played = np.concatenate([f.pcm for f in frames])
    np.testing.assert_array_equal(played[: len(expected)], expected)
    assert not np.any(played[len(expected) :])
    assert buffer.stats.concealed_frames == 0 and buffer.stats.lost == 0


def test_bad_input_and_settings_raise_clearly():
    buffer = JitterBuffer()
    with pytest.raises(AudioFormatError):
        buffer.push((1, 0, np.zeros(FRAME, np.float32)))
    with pytest.raises(RtpError):
        buffer.push((70000, 0, np.zeros(FRAME, np.int16)))
    with pytest.raises(RtpError):
        buffer.push((1, -5, np.zeros(FRAME, np.int16)))
    with pytest.raises(ValueError):
        JitterBuffer(frame_ms=0)
    with pytest.raises(ValueError):
        JitterBuffer(frame_ms=7, sample_rate=8000 + 1)
    with pytest.raises(ValueError):
        JitterBuffer(depth_ms=100, max_ms=50)


def test_a_decoder_returning_the_wrong_type_is_reported_not_buffered():
    buffer = JitterBuffer(decoders={96: lambda payload: np.frombuffer(payload, np.uint8)})
    with pytest.raises(AudioFormatError, match="int16"):
        buffer.push(RtpPacket(96, 1, 0, 9, payload=b"\x01\x02"), arrival_ms=0)
    assert buffer.stats.buffered_ms == 0
