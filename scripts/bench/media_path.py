"""Media path benchmark: N concurrent simulated Twilio calls into one server.

    python scripts/bench/media_path.py [--quick] [--stages 50,100,200] [--seconds 8]

A server (``create_app`` with its own local PostgreSQL/Redis, transcription
off, one counting consumer) runs in a child process; this process plays N
Twilio Media Streams (two µ-law tracks each, real time, 20 ms chunks) into it,
stage after stage. Per stage it reports:
  * frames/s handed to call sessions,
  * server CPU per frame (µs) and per call (% of one core),
  * p99 of the server's own handling time (message read -> frame in session),
  * p50/p99 delay from the client sending a media message to its frame
    reaching the session (both processes read the same monotonic clock;
    socket, event loop and handling included), after each call's first
    second; the first second (stream start: call lookup, session opening)
    is reported on its own,
  * how late the client itself sent (if the client cannot keep real time,
    the stage measures the client, and says so).
``max_streams`` is the largest stage with delay p99 < 20 ms on this machine.
The last line of output is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import aiohttp
import numpy as np
from bench_child import bench_child  # the script's own folder is on sys.path

TOKEN = "bench-auth-token"
PUBLIC_URL = "https://bench.coachline.test"


# -- the server (child process) -------------------------------------------------------

def serve(port_file: Path, data_dir: Path, use_uvloop: bool = False) -> None:
    from aiohttp import web

    from crm_core.calls.stream_admissions import issue_stream_admission
    from voice_server.app import create_app
    from voice_server.app_keys import CALL_SESSIONS, RUNTIME
    from voice_server.settings import load_settings

    settings = load_settings({
        "COACHLINE_DATA_DIR": str(data_dir), "COACHLINE_EVENT_BUS": "memory",
        "COACHLINE_TWILIO_AUTH_TOKEN": TOKEN, "COACHLINE_LOG_LEVEL": "WARNING",
        "COACHLINE_PUBLIC_URL": PUBLIC_URL,
        "COACHLINE_DB_POOL_MAX": "20", "COACHLINE_STT_ENABLED": "false",
        "PATH": os.environ.get("PATH", ""),
    })
    app = create_app(settings)
    # Arrival (monotonic, shared by both processes) of every frame: call -> [[party, ts, t]].
    arrivals: dict[str, list] = {}
    frames = [0]

    class Arrivals:
        def __init__(self, call_id: str) -> None:
            self.seen = arrivals.setdefault(call_id, [])

        def on_audio(self, frame) -> None:
            frames[0] += 1
            self.seen.append((frame.party.value, frame.timestamp_ms, time.monotonic()))

        def on_dtmf(self, *_): ...

        async def close(self, abnormal: bool) -> None: ...

    app[CALL_SESSIONS].consumer_factories.append(lambda session: Arrivals(session.call_id))

    async def calls(request: web.Request) -> web.Response:
        n = int(request.query["n"])
        async with app[RUNTIME].pool.acquire() as conn:
            org = await conn.fetchval(
                "INSERT INTO organizations (name, slug) VALUES ('Bench', 'bench-' || gen_random_uuid())"
                " RETURNING id")
            ids = await conn.fetch(
                "INSERT INTO calls (org_id, carrier, direction, external_id, status, started_at)"
                " SELECT $1, 'twilio', 'inbound', 'CA' || md5(random()::text), 'in-progress', now()"
                " FROM generate_series(1, $2) RETURNING id, external_id", org, n)
            # What each call's TwiML would have carried: its one-time stream token.
            tokens = [await issue_stream_admission(conn, str(r["id"]), "twilio") for r in ids]
        return web.json_response([[str(r["id"]), r["external_id"], token]
                                  for r, token in zip(ids, tokens, strict=True)])

    async def stats(request: web.Request) -> web.Response:
        body = {"cpu_s": time.process_time(), "frames": frames[0]}
        if request.query.get("arrivals"):
            body["arrivals"] = arrivals.copy()
            arrivals.clear()
        return web.json_response(body)

    app.router.add_post("/bench/calls", calls)
    app.router.add_get("/bench/stats", stats)

    async def main() -> None:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        port_file.write_text(str(site._server.sockets[0].getsockname()[1]))
        try:
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until closed
        finally:
            await runner.cleanup()

    if use_uvloop:
        import uvloop  # optional: only when asked for, to compare event loops

        uvloop.run(main())
    else:
        asyncio.run(main())


# -- the carrier side (this process) --------------------------------------------------

def _handling_buckets(text: str) -> list[tuple[float, float]]:
    buckets = []
    for line in text.splitlines():
        if line.startswith('coachline_carrier_frame_handling_seconds_bucket{carrier="twilio"'):
            le = line.split('le="')[1].split('"')[0]
            buckets.append((float("inf") if le == "+Inf" else float(le), float(line.rsplit(" ", 1)[1])))
    return buckets


def _handling_p99_ms(before: str, after: str) -> float | None:
    """The upper bound (bucket edge) of this stage's p99 server handling time."""
    old = dict(_handling_buckets(before))
    stage = [(le, count - old.get(le, 0.0)) for le, count in _handling_buckets(after)]
    if not stage or stage[-1][1] <= 0:
        return None
    total = stage[-1][1]
    return next(le for le, count in stage if count >= 0.99 * total) * 1000


async def run_stage(base: str, n: int, seconds: float, pcm: np.ndarray) -> dict:
    from voice_server.simulator.carrier.media_players import TwilioStream
    from voice_server.simulator.carrier.signing import twilio_socket_headers

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        ids = await (await http.post(f"{base}/bench/calls", params={"n": n})).json()
        samples = int(seconds * 8000)
        audio = np.resize(pcm, samples)
        streams = [TwilioStream({"call_id": cid, "stream_token": token}, sid, inbound=audio,
                                outbound=audio[::-1].copy()).messages()
                   for cid, sid, token in ids]
        signed = twilio_socket_headers(TOKEN, PUBLIC_URL.replace("https://", "wss://") + "/media/twilio")
        before = await (await http.get(f"{base}/bench/stats", params={"arrivals": "1"})).json()
        hist_before = await (await http.get(f"{base}/metrics")).text()
        late: list[float] = []
        sent: dict[str, dict[tuple[str, int], float]] = {}

        async def one(call_id: str, messages, offset: float) -> None:
            sent_at = sent.setdefault(call_id, {})
            await asyncio.sleep(offset)
            async with http.ws_connect(base.replace("http", "ws") + "/media/twilio", headers=signed) as ws:
                loop = asyncio.get_running_loop()
                start = loop.time()
                for tick, message in messages:
                    due = start + tick * 0.02
                    delay = due - loop.time()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    else:
                        late.append(-delay)
                    await ws.send_str(message)
                    if tick:  # media of tick n is stamped n * 20 ms; keep the send time per track
                        track = "customer" if '"inbound"' in message[:160] else "rep"
                        sent_at[(track, tick * 20)] = time.monotonic()

        started = time.monotonic()
        # Calls start spread over one second, as a busy trunk's would.
        await asyncio.gather(*(one(cid, m, i / n) for i, ((cid, _, _), m) in enumerate(zip(ids, streams))))
        wall = time.monotonic() - started
        await asyncio.sleep(0.5)  # the last stops are handled
        after = await (await http.get(f"{base}/bench/stats", params={"arrivals": "1"})).json()
        hist_after = await (await http.get(f"{base}/metrics")).text()
    frames = after["frames"] - before["frames"]
    cpu = after["cpu_s"] - before["cpu_s"]
    late_arr = np.asarray(late) if late else np.zeros(1)
    steady, first = [], []
    for call_id, seen in after["arrivals"].items():
        for party, ts, arrived in seen:
            at = sent.get(call_id, {}).get((party, ts))
            if at is not None:  # silence fill has no message of its own
                (steady if ts >= 1000 else first).append(arrived - at)
    steady_arr = np.asarray(steady) if steady else np.zeros(1)
    first_arr = np.asarray(first) if first else np.zeros(1)
    return {
        "streams": n,
        "seconds": round(wall, 2),
        "frames": frames,
        "frames_per_s": round(frames / wall, 1),
        "server_cpu_us_per_frame": round(1e6 * cpu / max(frames, 1), 1),
        "server_cpu_pct_per_call": round(100 * cpu / wall / n, 3),
        "delay_p50_ms": round(float(np.percentile(steady_arr, 50)) * 1000, 2),
        "delay_p99_ms": round(float(np.percentile(steady_arr, 99)) * 1000, 2),
        "first_second_delay_p99_ms": round(float(np.percentile(first_arr, 99)) * 1000, 2),
        "frames_matched": len(steady) + len(first),
        "handling_p99_le_ms": _handling_p99_ms(hist_before, hist_after),
        "client_late_p99_ms": round(float(np.percentile(late_arr, 99) * 1000), 2),
        "client_limited": bool(np.percentile(late_arr, 99) > 0.02),
    }


async def bench(stages: list[int], seconds: float, use_uvloop: bool = False) -> dict:
    from voice_server.simulator.carrier.wav import read_wav, sound

    pcm, _ = read_wav(sound("hello-world"))
    with tempfile.TemporaryDirectory(prefix="media-path-bench-") as tmp:
        port_file = Path(tmp) / "port"
        command = [sys.executable, __file__, "--serve", str(port_file), tmp] + (["--uvloop"] if use_uvloop else [])
        async with bench_child(command, port_file, start_timeout_s=60, stop_timeout_s=30) as base:
            results = []
            for n in stages:
                result = await run_stage(base, n, seconds, pcm)
                print(json.dumps(result), flush=True)
                results.append(result)
    ok = [r["streams"] for r in results if r["delay_p99_ms"] < 20 and not r["client_limited"]]
    return {"bench": "media_path", "cpu_count": os.cpu_count(), "audio_seconds": seconds,
            "event_loop": "uvloop" if use_uvloop else "asyncio",
            "load_average_1m_at_end": round(os.getloadavg()[0], 2),
            "stages": results, "max_streams_p99_under_20ms": max(ok) if ok else 0,
            "note": "transcription off; client and server share this machine's cores"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer, shorter stages (< 1 min)")
    parser.add_argument("--stages", default=None, help="comma-separated stream counts")
    parser.add_argument("--seconds", type=float, default=None, help="audio per call per stage")
    parser.add_argument("--uvloop", action="store_true", help="run the server on uvloop (if installed)")
    parser.add_argument("--serve", nargs=2, metavar=("PORT_FILE", "DATA_DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(Path(args.serve[0]), Path(args.serve[1]), args.uvloop)
        return
    stages = [int(s) for s in (args.stages or ("50,100,200" if args.quick else "50,100,200,300,400")).split(",")]
    seconds = args.seconds or (4.0 if args.quick else 15.0)
    print(json.dumps(asyncio.run(bench(stages, seconds, args.uvloop))))


if __name__ == "__main__":
    main()
