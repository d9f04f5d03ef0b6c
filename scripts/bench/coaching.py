"""Coaching latency benchmark: N concurrent coached Twilio calls into one server, speech model on.

    python scripts/bench/coaching.py [--quick] [--stages 1,2,4] [--turns 8]

A server (``create_app`` with its own local PostgreSQL, in-memory bus, the
speech model and live coaching on) runs in a child process with N reps, each
with their own number and password; the organization's rule set makes
"conference" a competitor. Per stage, N calls play the scripted sales call
(``voice_server.simulator.carrier.conversation.SALES_CALL``: real telephone speech on
two tracks) in real time, starts spread over one second, each with its rep
signed in and watching ``/ws/live``. Per stage it reports:

  * prompt delay: from the END of the triggering word ("conference", the
    last word of the customer's "The leader has left the conference.") in the
    audio to the ``coaching.prompt`` arriving on the rep's WebSocket. The
    word's end is the clip's voiced end (last 20 ms frame above 5% of peak
    energy) placed on the call clock; audio at call-clock t ms was sent t ms
    after the stream's first message (real-time pacing), so the delay =
    arrival - (stream start + word end). ``prompt_delay_vs_asr_word_end_ms``
    uses the transcript.final's word timing of "conference" instead (the
    prompt's own ``at_ms`` as fallback), to show how far ASR timing is off;
  * final delay: transcript.final arrival - (stream start + the segment's end);
  * prompts missing / duplicated (exactly one competitor prompt is due per call).

The client (this process) and the server share the machine's cores, and the
machine is shared: the load average is recorded at start and end.
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

from crm_core.calls.live_events import CALL_ENDED, COACHING_PROMPT, TRANSCRIPT_FINAL

TOKEN = "bench-auth-token"
PUBLIC_URL = "https://bench.coachline.test"
PASSWORD = "bench password 0123456789"
ORG_RULES = {"keywords": {"competitor": {"phrases": [{"phrase": "conference"}]}}}
TRIGGER = ("conf-leaderhasleft", "conference")  # (clip, word) that must prompt the rep; the word ends the clip


def _number(i: int) -> str:
    return f"+1555020{i:04d}"


# -- the server (child process) -------------------------------------------------------

def serve(port_file: Path, data_dir: Path, reps: int) -> None:
    from aiohttp import web

    from crm_core.auth.passwords import hash_password
    from voice_server.app import create_app
    from voice_server.runtime import Runtime
    from voice_server.settings import load_settings

    settings = load_settings({
        "COACHLINE_DATA_DIR": str(data_dir), "COACHLINE_EVENT_BUS": "memory",
        "COACHLINE_TWILIO_AUTH_TOKEN": TOKEN, "COACHLINE_PUBLIC_URL": PUBLIC_URL,
        "COACHLINE_LOG_LEVEL": "WARNING", "COACHLINE_DB_POOL_MAX": "20",
        "COACHLINE_STT_ENABLED": "true", "PATH": os.environ.get("PATH", ""),
    })

    async def main() -> None:
        runtime = await Runtime(settings).start()
        digest = hash_password(PASSWORD)
        numbers = {}
        async with runtime.pool.acquire() as conn:
            org = await conn.fetchval(
                "INSERT INTO organizations (name, slug, settings) VALUES ('Bench', 'bench', $1) RETURNING id",
                {"coaching_rules": ORG_RULES})
            for i in range(reps):
                rep = await conn.fetchval(
                    "INSERT INTO users (org_id, email, name, role, phone, password_hash) "
                    "VALUES ($1, $2, $3, 'rep', $4, $5) RETURNING id::text",
                    org, f"rep{i}@bench.test", f"Rep {i}", _number(i), digest)
                numbers[_number(i)] = rep
        app = create_app(settings.model_copy(update={"carrier_numbers": numbers}), runtime)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        port_file.write_text(str(site._server.sockets[0].getsockname()[1]))
        try:
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until closed
        finally:
            await runner.cleanup()
            await runtime.close()

    asyncio.run(main())


# -- the carrier and the reps (this process) --------------------------------------------

async def one_call(http: aiohttp.ClientSession, base: str, i: int, conversation, offset: float) -> dict:
    from voice_server.simulator.carrier.media_players import TwilioStream, send_stream
    from voice_server.simulator.carrier.rest_fake import stream_from_twiml
    from voice_server.simulator.carrier.signing import twilio_form, twilio_socket_headers

    async with http.post(base + "/auth/token", json={"email": f"rep{i}@bench.test",
                                                     "password": PASSWORD}) as resp:
        resp.raise_for_status()
        token = (await resp.json())["token"]
    feed = await http.ws_connect(base.replace("http://", "ws://") + "/ws/live",
                                 params={"access_token": token})
    await feed.receive_json(timeout=60)  # feed.ready
    received: list[tuple[float, dict]] = []
    ended = asyncio.Event()

    async def watch() -> None:
        async for msg in feed:
            if msg.type == aiohttp.WSMsgType.TEXT:
                message = json.loads(msg.data)
                received.append((time.time(), message))
                if message["type"] == CALL_ENDED:
                    ended.set()

    watcher = asyncio.create_task(watch())
    await asyncio.sleep(offset)
    sid = f"CA{os.urandom(16).hex()}"
    params = {"CallSid": sid, "AccountSid": "AC" + "0" * 32, "From": "+15557770000",
              "To": _number(i), "Direction": "inbound", "CallStatus": "ringing"}
    body, headers = twilio_form(TOKEN, PUBLIC_URL + "/carriers/twilio/voice", params)
    async with http.post(base + "/carriers/twilio/voice", data=body, headers=headers) as resp:
        stream_url, stream_params, _ = stream_from_twiml(await resp.text())
    call_id = stream_params["call_id"]
    messages = TwilioStream(stream_params, sid, inbound=conversation.customer,
                            outbound=conversation.rep).messages()
    async with http.ws_connect(base.replace("http://", "ws://") + "/media/twilio",
                               headers=twilio_socket_headers(TOKEN, stream_url)) as media:
        t0 = time.time()  # audio at call-clock t ms is sent at t0 + t
        await send_stream(media, messages, realtime=True)
    body, headers = twilio_form(TOKEN, PUBLIC_URL + "/carriers/twilio/status",
                                {"CallSid": sid, "CallStatus": "completed", "CallDuration": "20"})
    async with http.post(base + "/carriers/twilio/status", data=body, headers=headers):
        pass
    try:
        await asyncio.wait_for(ended.wait(), 180)
    except TimeoutError:
        pass
    await feed.close()
    watcher.cancel()
    await asyncio.gather(watcher, return_exceptions=True)
    return _measure(call_id, t0, received, conversation)


def _measure(call_id: str, t0: float, received, conversation) -> dict:
    ours = [(at, m) for at, m in received if m.get("call_id") == call_id and not m.get("replay")]
    finals = [(at, m) for at, m in ours if m["type"] == TRANSCRIPT_FINAL]
    prompts = [(at, m["prompt"]) for at, m in ours if m["type"] == COACHING_PROMPT
               and m["prompt"]["rule_id"] == "competitor-battlecard"]
    clip = next(t for t in conversation.turns if t.turn.clip == TRIGGER[0])
    result = {"final_delays_ms": [round((at - t0) * 1000 - m["end_ms"]) for at, m in finals],
              "prompts": len(prompts), "duplicate_ids": len(prompts) - len({p["id"] for _, p in prompts}),
              "ended": any(m["type"] == CALL_ENDED for _, m in ours)}
    if prompts:
        at, prompt = prompts[0]
        word_end = prompt["at_ms"]
        for _, m in finals:  # the final's timing of the word, when the final carries it
            if m["party"] == "customer" and m["start_ms"] <= prompt["at_ms"] + 2000 and m["end_ms"] >= clip.start_ms:
                words = [w for w in m["words"] if TRIGGER[1] in w["text"].lower()]
                if words:
                    word_end = words[0]["end_ms"]
                    break
        result.update(asr_word_end_ms=word_end, prompt_at_ms=prompt["at_ms"],
                      prompt_delay_ms=round((at - t0) * 1000 - clip.end_ms),
                      prompt_delay_vs_asr_word_end_ms=round((at - t0) * 1000 - word_end))
    return result


def _pct(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 1) if values else None


async def run_stage(base: str, n: int, conversation) -> dict:
    started = time.monotonic()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        calls = await asyncio.gather(*(one_call(http, base, i, conversation, i / n) for i in range(n)),
                                     return_exceptions=True)
    failed = [repr(c) for c in calls if isinstance(c, BaseException)]
    calls = [c for c in calls if not isinstance(c, BaseException)]
    prompt = [c["prompt_delay_ms"] for c in calls if "prompt_delay_ms" in c]
    vs_asr = [c["prompt_delay_vs_asr_word_end_ms"] for c in calls if "prompt_delay_vs_asr_word_end_ms" in c]
    finals = [d for c in calls for d in c["final_delays_ms"]]
    return {
        "calls": n,
        "seconds": round(time.monotonic() - started, 1),
        "prompt_delay_ms": {"p50": _pct(prompt, 50), "p95": _pct(prompt, 95), "max": max(prompt, default=None)},
        "prompt_delay_vs_asr_word_end_ms": {"p50": _pct(vs_asr, 50), "p95": _pct(vs_asr, 95)},
        "final_delay_ms": {"p50": _pct(finals, 50), "p95": _pct(finals, 95), "n": len(finals)},
        "prompts_missing": sum(1 for c in calls if c["prompts"] == 0) + len(failed),
        "prompts_extra": sum(max(0, c["prompts"] - 1) for c in calls),
        "duplicate_prompt_ids": sum(c["duplicate_ids"] for c in calls),
        "calls_not_ended": sum(1 for c in calls if not c["ended"]),
        "failed": failed[:3],
        "load_average_1m_after": round(os.getloadavg()[0], 2),
    }


async def bench(stages: list[int], turns: int) -> dict:
    from voice_server.simulator.carrier.conversation import SALES_CALL, build

    conversation = build(SALES_CALL[:turns])
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="coaching-bench-") as tmp:
        port_file = Path(tmp) / "port"
        command = [sys.executable, __file__, "--serve", str(port_file), tmp, str(max(stages))]
        async with bench_child(command, port_file, start_timeout_s=120, stop_timeout_s=60) as base:
            results = []
            for n in stages:
                result = await run_stage(base, n, conversation)
                print(json.dumps(result), flush=True)
                results.append(result)
    from voice_server.settings import load_settings

    defaults = load_settings({})
    within = [r["calls"] for r in results if r["prompt_delay_ms"]["p95"] is not None
              and r["prompt_delay_ms"]["p95"] <= 2000 and r["prompts_missing"] == 0]
    return {"bench": "coaching", "cpu_count": os.cpu_count(),
            "stt_model": defaults.stt_model, "stt_workers": defaults.stt_workers,
            "call_seconds": round(conversation.duration_ms / 1000, 1),
            "load_average_start": [round(x, 2) for x in load_start],
            "load_average_end": [round(x, 2) for x in os.getloadavg()],
            "stages": results, "max_calls_prompt_p95_within_2s": max(within, default=0),
            "note": "real time; client and server share this shared machine's cores"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one short stage of 2 calls (< 1 min)")
    parser.add_argument("--stages", help="comma-separated numbers of concurrent calls")
    parser.add_argument("--turns", type=int, help="how many turns of the sales call to play (1-8)")
    parser.add_argument("--serve", nargs=3, metavar=("PORT_FILE", "DATA_DIR", "REPS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(Path(args.serve[0]), Path(args.serve[1]), int(args.serve[2]))
        return
    stages = [int(s) for s in (args.stages or ("2" if args.quick else "1,2,4,6")).split(",")]
    turns = args.turns or (3 if args.quick else 8)
    print(json.dumps(asyncio.run(bench(stages, turns))))


if __name__ == "__main__":
    main()
