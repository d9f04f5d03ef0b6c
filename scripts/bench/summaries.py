"""Precision and recall of the post-call summary's next steps, objections and action items.

    python scripts/bench/summaries.py [--mistakes]

Scripted sales-call turns with hand-written labels (tests/data/summaries/scripted_calls.json:
written for this evaluation, not transcribed calls), each fed to a real CallCoach with the
default rule set as one final segment; an extracted item counts for the turn it came from.
``--mistakes`` lists every turn where extraction and label differ. CPU only, no speech model.
The last line of output is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # the repository's packages, not this folder's coaching.py

from coaching import CallCoach
from coaching.summary_eval import KINDS, evaluate

DATA = ROOT / "tests" / "data" / "summaries" / "scripted_calls.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--mistakes", action="store_true")
    args = parser.parse_args()
    calls = json.loads(args.data.read_text(encoding="utf-8"))["calls"]
    scores, mistakes = evaluate(calls, CallCoach)
    turns = [t for call in calls for t in call["turns"]]
    traps = sum(1 for t in turns if "trap" in t)
    trap_actions = sum(
        1
        for m in mistakes
        if m["trap"] and "action_item" in m["extracted"] and "action_item" not in m["labelled"]
    )
    if args.mistakes:
        for m in mistakes:
            print(
                f"{m['call']}#{m['turn']} {m['party']}: {m['text']!r} labelled={m['labelled']} "
                f"extracted={m['extracted']} trap={m['trap']}"
            )
    print(
        f"{'kind':<12} {'labelled':>8} {'tp':>4} {'fp':>4} {'fn':>4} {'precision':>9} "
        f"{'recall':>6} {'f1':>5}"
    )
    for kind in KINDS:
        s = scores[kind]
        print(
            f"{kind:<12} {s.tp + s.fn:>8} {s.tp:>4} {s.fp:>4} {s.fn:>4} {s.precision:>9.3f} "
            f"{s.recall:>6.3f} {s.f1:>5.3f}"
        )
    print(
        f"{len(turns)} turns, {traps} hard negatives; action items from hard negatives: "
        f"{trap_actions}"
    )
    print(
        json.dumps(
            {
                "bench": "summaries",
                "turns": len(turns),
                "hard_negatives": traps,
                "hard_negative_action_items": trap_actions,
                "kinds": {k: scores[k].as_dict() for k in KINDS},
            }
        )
    )


if __name__ == "__main__":
    main()
