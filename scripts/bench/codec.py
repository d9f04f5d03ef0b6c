"""Media basics benchmark: G.711, resampling, RTP parsing, jitter buffer.

    python scripts/bench/codec.py [--quick]

Measures on one core, with synthetic telephone-band audio:
  * µ-law / A-law encode and decode throughput (samples/s and x real time at 8 kHz),
  * streaming 8 -> 16 kHz resampling cost per 20 ms frame,
  * RTP parse cost per 172-byte PCMU packet (and parse + build),
  * jitter buffer cost per packet (push + pop, with 2 % reordering),
  * DTMF receiver cost per telephone-event packet.
The last line of output is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import time

import numpy as np

from media.dtmf import DtmfEvent, DtmfReceiver
from media.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from media.jitter import JitterBuffer
from media.resample import Resampler
from media.rtp import RtpPacket

RATE = 8000
FRAME = 160  # 20 ms at 8 kHz


def best_seconds(fn, repeat: int) -> float:
    """Best of ``repeat`` runs: the least disturbed by other work on a shared machine."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def telephone_audio(seconds: float) -> np.ndarray:
    rng = np.random.default_rng(0)
    n = int(RATE * seconds)
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / RATE)
    spectrum[(freqs < 300) | (freqs > 3400)] = 0
    signal = np.fft.irfft(spectrum, n)
    return np.round(signal / np.abs(signal).max() * 16000).astype(np.int16)


def bench_g711(pcm: np.ndarray, repeat: int) -> dict:
    result = {}
    ulaw, alaw = ulaw_encode(pcm), alaw_encode(pcm)
    for name, fn in (
        ("ulaw_encode", lambda: ulaw_encode(pcm)),
        ("ulaw_decode", lambda: ulaw_decode(ulaw)),
        ("alaw_encode", lambda: alaw_encode(pcm)),
        ("alaw_decode", lambda: alaw_decode(alaw)),
    ):
        rate = len(pcm) / best_seconds(fn, repeat)
        result[f"{name}_samples_per_s"] = round(rate)
        result[f"{name}_x_realtime_8k"] = round(rate / RATE)
    # What a transport does per 20 ms packet: small arrays, so call overhead dominates.
    frames = [ulaw[i : i + FRAME] for i in range(0, len(ulaw) - FRAME, FRAME)][:2000]
    per_frame = best_seconds(lambda: [ulaw_decode(f) for f in frames], repeat) / len(frames)
    result["ulaw_decode_us_per_20ms_frame"] = round(per_frame * 1e6, 2)
    return result


def bench_resample(pcm: np.ndarray, repeat: int) -> dict:
    frames = [pcm[i : i + FRAME] for i in range(0, len(pcm) - FRAME, FRAME)]

    def stream() -> None:
        resampler = Resampler(8000, 16000)
        for frame in frames:
            resampler.process(frame)
        resampler.flush()

    per_frame = best_seconds(stream, repeat) / len(frames)
    return {
        "resample_8k_16k_us_per_20ms_frame": round(per_frame * 1e6, 2),
        "resample_8k_16k_x_realtime": round(0.020 / per_frame),
    }


def bench_rtp(pcm: np.ndarray, count: int, repeat: int) -> dict:
    payload = ulaw_encode(pcm[:FRAME])
    wires = [
        RtpPacket(
            0, i & 0xFFFF, (i * FRAME) & 0xFFFFFFFF, 0x1234, payload=payload, marker=i == 0
        ).build()
        for i in range(count)
    ]
    parse = best_seconds(lambda: [RtpPacket.parse(w) for w in wires], repeat) / count
    packets = [RtpPacket.parse(w) for w in wires]
    build = best_seconds(lambda: [p.build() for p in packets], repeat) / count
    return {
        "rtp_parse_us_per_packet": round(parse * 1e6, 2),
        "rtp_build_us_per_packet": round(build * 1e6, 2),
    }


def bench_jitter(pcm: np.ndarray, count: int, repeat: int) -> dict:
    payload = ulaw_encode(pcm[:FRAME])
    packets = [
        RtpPacket(0, i & 0xFFFF, (i * FRAME) & 0xFFFFFFFF, 1, payload=payload) for i in range(count)
    ]
    rng = random.Random(5)
    for i in range(count - 1):  # swap ~2 % of neighbours
        if rng.random() < 0.02:
            packets[i], packets[i + 1] = packets[i + 1], packets[i]

    def run() -> None:
        buffer = JitterBuffer(depth_ms=60, frame_ms=20, sample_rate=RATE)
        for i, packet in enumerate(packets):
            buffer.push(packet, arrival_ms=20.0 * i)
            while buffer.pop() is not None:
                pass

    per_packet = best_seconds(run, repeat) / count
    return {"jitter_us_per_packet": round(per_packet * 1e6, 2)}


def bench_dtmf(count: int, repeat: int) -> dict:
    packets = []
    for press in range(count // 10):
        ts = press * 8000
        for i in range(7):
            event = DtmfEvent(press % 16, duration=i * 400).build()
            packets.append(
                RtpPacket(
                    101, len(packets) & 0xFFFF, ts & 0xFFFFFFFF, 1, payload=event, marker=i == 0
                )
            )
        end = DtmfEvent(press % 16, end=True, duration=2800).build()
        packets += [RtpPacket(101, len(packets) & 0xFFFF, ts & 0xFFFFFFFF, 1, payload=end)] * 3

    def run() -> None:
        receiver = DtmfReceiver()
        for packet in packets:
            receiver.push(packet)

    per_packet = best_seconds(run, repeat) / len(packets)
    return {"dtmf_us_per_packet": round(per_packet * 1e6, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller run (< 1 minute)")
    args = parser.parse_args()
    seconds, packets, repeat = (60, 5000, 3) if args.quick else (600, 50000, 5)
    pcm = telephone_audio(seconds)

    result = {"bench": "codec", "quick": args.quick, "audio_s": seconds}
    for part in (
        bench_g711(pcm, repeat),
        bench_resample(pcm, repeat),
        bench_rtp(pcm, packets, repeat),
        bench_jitter(pcm, packets, repeat),
        bench_dtmf(packets, repeat),
    ):
        for key, value in part.items():
            print(f"{key:40s} {value}")
        result |= part
    result["python"] = platform.python_version()
    result["machine"] = platform.machine()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
