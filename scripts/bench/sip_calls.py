"""SIP edge benchmark: many concurrent sipp calls with RTP into one Coachline node.

    python scripts/bench/sip_calls.py [--quick] [--calls N]

Starts a node (its own local PostgreSQL and Redis under a temp dir) with the
SIP edge on loopback, then runs the real ``sipp`` with N concurrent calls,
each playing the sip-tester capture ``g711a.pcap`` (7.1 s of PCMA, 236
packets of 30 ms) and an RFC 4733 digit, then hanging up. Reports:

  * calls_ok / calls_failed (sipp's count) and calls_ended_normally (ours),
  * sample_exact_calls: calls whose customer audio equals the capture decoded,
  * digits_ok: calls that got exactly their one digit,
  * cpu_s: this process's CPU (the node; sipp runs in its own process),
    cpu_ms_per_call and cpu_pct_per_call (CPU share one call's media costs).

The last line of output is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import asyncpg
import numpy as np

from media.frames import Party
from media.g711 import alaw_decode
from media.rtp import RtpPacket
from storage.local_servers import LocalPostgres, LocalRedis
from storage.migrations import apply_migrations
from tests.voice_server.sip_node import REP_DIALLED, sip_node
from tests.voice_server.sipp_harness import (
    PCAPS,
    read_rtp_payloads,
    run_sipp,
    scenario,
)

CAPTURE = PCAPS / "g711a.pcap"
CALL_SECONDS = 7.3 + 0.6


async def bench(calls: int, work: Path) -> dict:
    expected = np.concatenate([alaw_decode(RtpPacket.parse(p).payload)
                               for p in read_rtp_payloads(CAPTURE)])
    pg = LocalPostgres(work / "pg").start()
    rd = LocalRedis(work / "redis").start()
    try:
        conn = await asyncpg.connect(pg.dsn)
        await apply_migrations(conn)
        await conn.close()
        async with sip_node(pg.dsn, rd.url, COACHLINE_LOG_LEVEL="WARNING",
                            COACHLINE_DB_POOL_MAX="20") as node:
            cpu0, wall0 = time.process_time(), time.perf_counter()
            result = await run_sipp(node.port, scenario(
                work, "call.xml", PT=8, CODEC="PCMA", PCAP=CAPTURE, PAUSE_MS=7300,
                DTMF_PCAP=PCAPS / "dtmf_2833_1.pcap"), service=REP_DIALLED, calls=calls,
                rate=calls, limit=calls, timeout_s=60 + calls / 5)
            await asyncio.wait_for(
                asyncio.gather(*(log.closed.wait() for log in node.logs)), 30)
            cpu = time.process_time() - cpu0
            wall = time.perf_counter() - wall0
            exact = digits = normal = 0
            for log in node.logs:
                mine = sorted((f for f in log.frames if f.party == Party.CUSTOMER),
                              key=lambda f: f.timestamp_ms)
                audio = np.concatenate([f.pcm for f in mine]) if mine else np.zeros(0)
                exact += int(np.array_equal(audio, expected))
                digits += int([d for d, *_ in log.digits] == ["1"])
                normal += int(log.abnormal is False)
        ok = failed = None
        for line in result.stdout.splitlines():
            if "Successful call" in line:
                ok = int(line.split("|")[2].split()[0]) if "|" in line else ok
            if "Failed call" in line:
                failed = int(line.split("|")[2].split()[0]) if "|" in line else failed
        return {
            "bench": "sip_calls", "calls": calls, "sessions": len(node.logs),
            "calls_ok": ok, "calls_failed": failed, "sipp_rc": result.returncode,
            "calls_ended_normally": normal, "sample_exact_calls": exact, "digits_ok": digits,
            "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
            "cpu_ms_per_call": round(1000 * cpu / max(1, calls), 1),
            "cpu_pct_per_call": round(100 * cpu / max(1, calls) / CALL_SECONDS, 3),
        }
    finally:
        rd.stop()
        pg.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="30 calls, under a minute")
    parser.add_argument("--calls", type=int, default=None)
    args = parser.parse_args()
    calls = args.calls or (30 if args.quick else 150)
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="sip-bench-") as tmp:
        report = asyncio.run(bench(calls, Path(tmp)))
    print(json.dumps(report))


if __name__ == "__main__":
    main()
