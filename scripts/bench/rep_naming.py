"""Rep naming on mixed-channel calls: share of final segments named rep/customer correctly.

    PYTHONPATH=$PWD .venv/bin/python scripts/bench/rep_naming.py [--enrol 1,2,3,5]
        [--per-voice 2] [--turns 6] [--final-delay-ms 800]

The rep (Allison, asterisk-core-sounds-en-wav) is enrolled from N earlier
two-track calls (10 rep turns each, through the server's ``RepVoiceLearner``
and ``build_voiceprint``/``merged``); then mixed calls of the rep and one of
seven other real voices (tests/voice_server/rep_naming_world.py), at
telephone quality (8 kHz µ-law, then 16 kHz), are replayed in 20 ms frames
through the server's ``SpeakerLabeller``. Each turn is one transcript
segment, named with what ``speaker_for`` says when its final is published
(``--final-delay-ms`` after the turn ends). Reported per N: the share of
segments and of speech time named correctly, and how many stay unnamed.
The last line of output is one JSON object.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from media.speakers.encoder import SpeakerEncoder, cosine
from tests.voice_server.rep_naming_world import (
    World,
    enrol,
    label_call,
    score,
    telephone,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--enrol", default="1,2,3,5", help="enrolment calls, comma separated")
    parser.add_argument("--per-voice", type=int, default=2, help="mixed calls per customer voice")
    parser.add_argument("--turns", type=int, default=6, help="turns per party per mixed call")
    parser.add_argument("--final-delay-ms", type=int, default=800)
    parser.add_argument(
        "--min-clip-s",
        type=float,
        default=1.0,
        help="shortest customer turn (0.5: short answers too)",
    )
    parser.add_argument("--gaps-s", default="0.4,1.2", help="pause between turns, min,max")
    args = parser.parse_args()

    encoder = SpeakerEncoder()
    world = World.load(args.min_clip_s)
    gaps = tuple(float(x) for x in args.gaps_s.split(","))
    calls = list(world.mixed_calls(args.per_voice, args.turns, gaps_s=gaps))
    results = {}
    started = time.process_time()
    for n in (int(x) for x in args.enrol.split(",")):
        rep = enrol(encoder, world.enrolment_calls(n))
        total, per_voice = None, {}
        for voice, pcm, turns in calls:
            s = score(turns, label_call(encoder, rep.to_array(), pcm, turns, args.final_delay_ms))
            total = s if total is None else total + s
            per_voice[voice] = per_voice[voice] + s if voice in per_voice else s
        # How close each customer voice sounds to the rep's print (telephone quality).
        closeness = {
            v: round(
                cosine(rep.embedding, encoder.embed(telephone(np.concatenate(c[:4])), 16000)), 3
            )
            for v, c in world.customers.items()
        }
        results[n] = {
            "enrolled_speech_s": round(rep.speech_ms / 1000, 1),
            "segments": total.segments,
            "segments_correct": round(total.rate, 4),
            "speech_time_correct": round(total.time_rate, 4),
            "unnamed": total.unnamed,
            "per_voice": {v: round(s.rate, 3) for v, s in per_voice.items()},
            "customer_cosine_to_rep": closeness,
        }
        print(
            f"N={n} enrolled {rep.speech_ms / 1000:.1f} s: {total.correct}/{total.segments} "
            f"segments right ({total.rate:.1%}), speech time {total.time_rate:.1%}, "
            f"unnamed {total.unnamed}; per voice {results[n]['per_voice']}",
            flush=True,
        )
    print(
        json.dumps(
            {
                "bench": "rep_naming",
                "mixed_calls": len(calls),
                "turns_per_party": args.turns,
                "final_delay_ms": args.final_delay_ms,
                "min_clip_s": args.min_clip_s,
                "gaps_s": list(gaps),
                "cpu_s": round(time.process_time() - started, 1),
                "by_enrolment_calls": results,
            }
        )
    )


if __name__ == "__main__":
    main()
