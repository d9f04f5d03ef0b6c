"""Benchmark of encrypted recordings: AES-256-GCM chunk throughput and the recorder's CPU per live call.

    python scripts/bench/recordings.py [--quick]

Measures, on one core:
  * encrypt_mb_s / decrypt_mb_s: AES-256-GCM over recording chunks in memory;
  * write_mb_s: the store's writer, chunks encrypted and written to a file;
  * read_mb_s: the store's reader decrypting a stored recording (page cache warm);
  * cpu_per_call_pct: CPU (all threads) that recording one live call costs, as a
    percentage of one core: N calls of 8 kHz stereo, 20 ms frames per party,
    aligned by media.recording and encrypted/written by the store, fed as fast as
    possible, CPU time divided by seconds of call audio. Database heartbeats
    (one UPDATE per node every few seconds) are not included.
The last line of output is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: E402

from media.frames import AudioFrame, Party  # noqa: E402
from media.recording import ChannelLayout, RecordingAligner, RecordingOptions  # noqa: E402
from storage.keys import new_master_key, parse_key_spec  # noqa: E402
from storage.recording_store import AudioFormat, LocalRecordingStore  # noqa: E402

CHUNK = 64_000  # 2 s of 8 kHz stereo PCM16: the default chunk


def _mb_s(nbytes: int, seconds: float) -> float:
    return round(nbytes / 1e6 / seconds, 1)


def bench_aead(total_mb: int) -> tuple[float, float]:
    aead = AESGCM(secrets.token_bytes(32))
    chunk = os.urandom(CHUNK)
    n = total_mb * 1_000_000 // CHUNK
    nonce, aad = secrets.token_bytes(12), b"x" * 45
    start = time.process_time()
    sealed = [aead.encrypt(nonce, chunk, aad) for _ in range(min(n, 64))]
    for _ in range(n - len(sealed)):
        aead.encrypt(nonce, chunk, aad)
    enc = time.process_time() - start
    start = time.process_time()
    for i in range(n):
        aead.decrypt(nonce, sealed[i % len(sealed)], aad)
    dec = time.process_time() - start
    return _mb_s(n * CHUNK, enc), _mb_s(n * CHUNK, dec)


def bench_store(root: Path, total_mb: int) -> tuple[float, float]:
    store = LocalRecordingStore(root, parse_key_spec(f"k1:{new_master_key()}"))
    rid = uuid.uuid4()
    block = os.urandom(1 << 20)
    start = time.perf_counter()
    writer = store.create(rid, AudioFormat(8000, 2), CHUNK)
    for _ in range(total_mb):
        writer.append(block)
    writer.close()
    write = time.perf_counter() - start
    start = time.perf_counter()
    with store.open(rid) as reader:
        got = sum(len(piece) for piece in reader.read_range())
    read = time.perf_counter() - start
    store.delete(rid)
    return _mb_s(total_mb << 20, write), _mb_s(got, read)


def bench_calls(root: Path, calls: int, seconds: int) -> float:
    store = LocalRecordingStore(root, parse_key_spec(f"k1:{new_master_key()}"))
    rng = np.random.default_rng(1)
    speech = [rng.integers(-8000, 8000, 160, dtype=np.int16) for _ in range(50)]
    aligners = [
        RecordingAligner(ChannelLayout.STEREO, RecordingOptions(8000)) for _ in range(calls)
    ]
    writers = [store.create(uuid.uuid4(), AudioFormat(8000, 2), CHUNK) for _ in range(calls)]
    start = time.process_time()
    for i in range(seconds * 50):  # 20 ms steps of the call clock, every call in turn
        for aligner, writer in zip(aligners, writers):
            for party in (Party.REP, Party.CUSTOMER):
                blocks = aligner.push(AudioFrame(speech[i % 50], 8000, party, i * 20))
                if blocks:
                    writer.append(b"".join(blocks))
    for aligner, writer in zip(aligners, writers):
        writer.append(aligner.finish())
        writer.close()
    cpu = time.process_time() - start
    return round(100 * cpu / (calls * seconds), 4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller run (well under a minute)")
    args = parser.parse_args()
    total_mb, calls, seconds = (128, 20, 30) if args.quick else (1024, 100, 60)
    with tempfile.TemporaryDirectory(prefix="coachline-bench-rec-") as tmp:
        enc, dec = bench_aead(total_mb)
        print(f"AES-256-GCM in memory: encrypt {enc} MB/s, decrypt {dec} MB/s")
        write, read = bench_store(Path(tmp) / "store", total_mb)
        print(f"store: write {write} MB/s, read {read} MB/s ({total_mb} MB)")
        cpu = bench_calls(Path(tmp) / "calls", calls, seconds)
        print(f"recorder: {cpu}% of one core per live call ({calls} calls x {seconds} s)")
    print(
        json.dumps(
            {
                "bench": "recordings",
                "quick": args.quick,
                "chunk_bytes": CHUNK,
                "encrypt_mb_s": enc,
                "decrypt_mb_s": dec,
                "write_mb_s": write,
                "read_mb_s": read,
                "cpu_per_call_pct": cpu,
                "calls": calls,
                "call_seconds": seconds,
                "python": platform.python_version(),
                "machine": platform.machine(),
            }
        )
    )


if __name__ == "__main__":
    main()
