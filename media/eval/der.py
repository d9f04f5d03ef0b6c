"""Diarization error rate (DER): how much of the reference speech time was
missed, falsely detected, or given to the wrong speaker.

Scored on a 10 ms grid, overlapping speech counted per speaker (as NIST and
pyannote.metrics do): per frame with ``r`` reference and ``h`` hypothesis
speakers, ``max(0, r - h)`` is missed, ``max(0, h - r)`` false alarm and
``min(r, h)`` minus the correctly mapped speakers is confusion. Hypothesis
labels are mapped one-to-one to reference labels so that the overlap is
largest (exhaustive search; calls have few speakers). A ``collar`` around
every reference boundary is left unscored, for forgiving comparisons.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["DerResult", "LabelledSegment", "diarization_error_rate", "read_rttm"]

_STEP_MS = 10
_MAX_EXHAUSTIVE = 7


@dataclass(frozen=True, slots=True)
class LabelledSegment:
    start_ms: int
    end_ms: int
    speaker: str


@dataclass(frozen=True, slots=True)
class DerResult:
    """Error components as fractions of the scored reference speech time."""

    der: float
    missed: float
    false_alarm: float
    confusion: float
    reference_ms: int


def read_rttm(path: str | Path) -> list[LabelledSegment]:
    """SPEAKER lines of an RTTM file -> segments (all files/channels together)."""
    segments = []
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        fields = line.split()
        if not fields or fields[0] != "SPEAKER":
            continue
        if len(fields) < 8:
            raise ValueError(f"RTTM line {number}: expected at least 8 fields")
        start, duration = float(fields[3]), float(fields[4])
        if duration < 0:
            raise ValueError(f"RTTM line {number}: negative duration")
        segments.append(
            LabelledSegment(round(start * 1000), round((start + duration) * 1000), fields[7])
        )
    return segments


def _grid(segments: list[LabelledSegment], labels: list[str], n: int) -> np.ndarray:
    grid = np.zeros((len(labels), n), bool)
    index = {label: i for i, label in enumerate(labels)}
    for seg in segments:
        if seg.end_ms < seg.start_ms:
            raise ValueError(f"segment ends before it starts: {seg}")
        a, b = round(seg.start_ms / _STEP_MS), round(seg.end_ms / _STEP_MS)
        grid[index[seg.speaker], a:b] = True
    return grid


def _best_mapping_overlap(co: np.ndarray) -> float:
    """Largest total of co[r, h] over one-to-one pairings of rows and columns."""
    n_ref, n_hyp = co.shape
    if min(n_ref, n_hyp) == 0:
        return 0.0
    if max(n_ref, n_hyp) <= _MAX_EXHAUSTIVE:
        if n_ref <= n_hyp:
            return max(
                sum(co[r, h] for r, h in zip(range(n_ref), perm))
                for perm in itertools.permutations(range(n_hyp), n_ref)
            )
        return _best_mapping_overlap(co.T)
    # Many speakers: greedy pairing by largest overlap (a lower bound on the optimum).
    co = co.astype(float).copy()
    total = 0.0
    for _ in range(min(n_ref, n_hyp)):
        r, h = np.unravel_index(np.argmax(co), co.shape)
        total += co[r, h]
        co[r, :] = -1
        co[:, h] = -1
    return total


def diarization_error_rate(
    reference: list[LabelledSegment],
    hypothesis: list[LabelledSegment],
    collar_ms: int = 0,
) -> DerResult:
    """Score ``hypothesis`` against ``reference`` (labels need not match by name)."""
    if collar_ms < 0:
        raise ValueError("collar_ms must not be negative")
    end = max([s.end_ms for s in reference + hypothesis], default=0)
    n = round(end / _STEP_MS) + 1
    ref_labels = sorted({s.speaker for s in reference})
    hyp_labels = sorted({s.speaker for s in hypothesis})
    ref = _grid(reference, ref_labels, n)
    hyp = _grid(hypothesis, hyp_labels, n)
    scored = np.ones(n, bool)
    if collar_ms:
        c = round(collar_ms / _STEP_MS)
        for seg in reference:
            for edge in (round(seg.start_ms / _STEP_MS), round(seg.end_ms / _STEP_MS)):
                scored[max(0, edge - c) : edge + c] = False
    ref, hyp = ref[:, scored], hyp[:, scored]
    r, h = ref.sum(axis=0), hyp.sum(axis=0)
    total = int(r.sum())
    missed = int(np.maximum(0, r - h).sum())
    false_alarm = int(np.maximum(0, h - r).sum())
    co = ref.astype(np.int64) @ hyp.T.astype(np.int64)
    confusion = int(np.minimum(r, h).sum() - _best_mapping_overlap(co))
    if total == 0:
        raise ValueError("reference has no scored speech")
    return DerResult(
        der=(missed + false_alarm + confusion) / total,
        missed=missed / total,
        false_alarm=false_alarm / total,
        confusion=confusion / total,
        reference_ms=total * _STEP_MS,
    )
