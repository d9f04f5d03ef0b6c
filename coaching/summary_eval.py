"""Scoring the summary's extracted items against labelled turns.

A labelled call is a list of turns (party, text, the kinds a reader would put in the summary
for it). Each turn is fed to a real ``CallCoach`` as one final segment on its own time span,
and every extracted item is credited to the turn whose span holds its start time, so scoring is
per turn and per kind: a true positive is a turn labelled with a kind that got an item of that
kind, a false positive an item of a kind on a turn not labelled with it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

KINDS = ("action_item", "next_step", "objection")
TURN_MS = 10_000  # each scripted turn gets its own 10 s slot on the call clock


@dataclass(frozen=True, slots=True)
class KindScore:
    kind: str
    tp: int
    fp: int
    fn: int

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "precision": round(self.precision, 3),
            "recall": round(self.recall, 3),
            "f1": round(self.f1, 3),
        }


def score(
    gold: Iterable[tuple[Any, str]],
    predicted: Iterable[tuple[Any, str]],
    kinds: Sequence[str] = KINDS,
) -> dict[str, KindScore]:
    """Per-kind counts from (turn key, kind) pairs; duplicates count once."""
    gold_set, predicted_set = set(gold), set(predicted)
    unknown = {kind for _, kind in gold_set | predicted_set} - set(kinds)
    if unknown:
        raise ValueError(f"unknown kinds: {sorted(unknown)}")
    scores = {}
    for kind in kinds:
        g = {key for key, k in gold_set if k == kind}
        p = {key for key, k in predicted_set if k == kind}
        scores[kind] = KindScore(kind, len(g & p), len(p - g), len(g - p))
    return scores


def predict_call(turns: Sequence[Mapping[str, Any]], coach: Any) -> set[tuple[int, str]]:
    """(turn index, kind) for every item ``coach``'s summary extracts from the scripted turns."""
    from coaching.records import SegmentInput

    for i, turn in enumerate(turns):
        coach.feed(
            SegmentInput.build(
                f"t{i}", turn["party"], turn["text"], i * TURN_MS, i * TURN_MS + TURN_MS // 2
            )
        )
    summary = coach.finish(len(turns) * TURN_MS)
    found: set[tuple[int, str]] = set()
    for kind, items in (
        ("action_item", summary.action_items),
        ("next_step", summary.next_steps),
        ("objection", summary.objections),
    ):
        for item in items:
            found.add((item.at_ms // TURN_MS, kind))
    return found


def evaluate(
    calls: Sequence[Mapping[str, Any]], new_coach: Any
) -> tuple[dict[str, KindScore], list[dict[str, Any]]]:
    """Scores over labelled calls, and every wrong turn (for reading what went wrong)."""
    gold: set[tuple[tuple[str, int], str]] = set()
    predicted: set[tuple[tuple[str, int], str]] = set()
    mistakes = []
    for call in calls:
        turns = call["turns"]
        found = predict_call(turns, new_coach())
        for i, turn in enumerate(turns):
            want = set(turn["kinds"])
            got = {kind for index, kind in found if index == i}
            gold |= {((call["id"], i), k) for k in want}
            predicted |= {((call["id"], i), k) for k in got}
            if want != got:
                mistakes.append(
                    {
                        "call": call["id"],
                        "turn": i,
                        "party": turn["party"],
                        "text": turn["text"],
                        "labelled": sorted(want),
                        "extracted": sorted(got),
                        "trap": turn.get("trap"),
                    }
                )
    return score(gold, predicted), mistakes
