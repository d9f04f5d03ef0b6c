"""How much CPU the pure coaching core costs per call.

    python scripts/bench/coaching_core.py [--quick] [--calls N] [--seconds S]

Simulates N concurrent calls for S seconds of call time on one core, in call-
clock order: each party speaks a final segment every ~2.5-6 s (lines drawn
from a pool with competitors, misspellings, objections, digits, fillers), and
every call is ticked once a second, as CallSession would. Reports per-final-
segment ``feed`` latency (p50/p95/p99), per-tick cost, and the share of one
core the N calls used (``core_share`` < 1 means they fit on one core).
The last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import heapq
import json
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from coaching import CallCoach, SegmentInput, default_profile

REP_LINES = [
    "Hi, this is Sam from Coachline, just so you know this call is being recorded.",
    "Um, so what we do is help sales teams coach their reps in real time.",
    "Let me walk you through how the platform works, you know, for a team like yours.",
    "Uh, the pricing is per seat and we can do a discount for annual contracts.",
    "I'll send you the proposal tomorrow and we can book a meeting for Tuesday at 2 pm.",
    "What does your current process look like when a deal stalls?",
    "I guarantee you'll see results in the first month, honestly.",
    "Great, so the next step would be a pilot with two of your teams.",
]
CUSTOMER_LINES = [
    "We already use sales force and gong for most of this.",
    "Honestly it sounds too expensive for us right now.",
    "Can you just send me an email with the details?",
    "We looked at corus and hub spot last year but the budget was not there.",
    "Okay, that makes sense.",
    "Right.",
    "My card number is four one one one one one one one one one one one one one one one.",
    "I would need to talk to my boss before we commit to anything.",
    "That actually sounds great, I like the dashboard a lot.",
    "The setup was a hassle last time and the support was awful.",
]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="500 calls x 60 s (< 1 min)")
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--seconds", type=int, default=None)
    args = parser.parse_args()
    seconds = args.seconds or (60 if args.quick else 300)
    rng = random.Random(5)
    profile = default_profile()
    profile.sentiment_model.score("warm up")           # lexicon load is start-up, not per call
    coaches = [CallCoach(profile) for _ in range(args.calls)]
    # events: (time_ms, kind, call, party); a party speaks, pauses, speaks again
    events: list[tuple[int, int, int, str]] = []
    for call in range(args.calls):
        for party in ("rep", "customer"):
            heapq.heappush(events, (rng.randint(0, 6_000), 0, call, party))
        for t in range(0, seconds * 1000 + 1, 1000):
            events.append((t + call % 1000, 1, call, ""))
    heapq.heapify(events)
    feed_us: list[float] = []
    tick_us: list[float] = []
    counts = [0] * args.calls
    cpu_started = time.process_time()
    while events:
        at, kind, call, party = heapq.heappop(events)
        if at > seconds * 1000:
            continue
        coach = coaches[call]
        if kind == 1:
            t0 = time.perf_counter_ns()
            coach.tick(at)
            tick_us.append((time.perf_counter_ns() - t0) / 1000)
            continue
        text = rng.choice(REP_LINES if party == "rep" else CUSTOMER_LINES)
        length = 600 if len(text) < 10 else rng.randint(2_500, 6_000)
        counts[call] += 1
        seg = SegmentInput.build(f"{call}-{counts[call]}", party, text, max(0, at - length), at)
        t0 = time.perf_counter_ns()
        coach.feed(seg)
        feed_us.append((time.perf_counter_ns() - t0) / 1000)
        heapq.heappush(events, (at + rng.randint(500, 4_000) + length, 0, call, party))
    t0 = time.perf_counter()
    for coach in coaches:
        coach.finish(seconds * 1000)
    finish_ms = (time.perf_counter() - t0) * 1000 / len(coaches)
    cpu_s = time.process_time() - cpu_started
    result = {
        "bench": "coaching_core", "calls": args.calls, "call_seconds": seconds,
        "final_segments": len(feed_us), "ticks": len(tick_us),
        "feed_p50_us": round(percentile(feed_us, 0.50), 1),
        "feed_p95_us": round(percentile(feed_us, 0.95), 1),
        "feed_p99_us": round(percentile(feed_us, 0.99), 1),
        "feed_max_us": round(max(feed_us), 1),
        "tick_p50_us": round(percentile(tick_us, 0.50), 1),
        "finish_ms_per_call": round(finish_ms, 2),
        "cpu_s": round(cpu_s, 2),
        "core_share": round(cpu_s / seconds, 3),
        "sentiment_model": profile.sentiment_model.name,
    }
    print(f"{args.calls} calls x {seconds} s: feed p50 {result['feed_p50_us']} us, "
          f"p95 {result['feed_p95_us']} us; {cpu_s:.1f} s CPU = {result['core_share']:.0%} of one core")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
