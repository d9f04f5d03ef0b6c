"""Word error rate over normalised words (``media.text_normalize``).

Case, punctuation and a few spelling variants ("one" vs "1", "okay" vs
"ok") do not count as recognition errors; insertions, deletions and
substitutions of real words do.
"""

from __future__ import annotations

from dataclasses import dataclass

from media.text_normalize import normalize_words


@dataclass(frozen=True, slots=True)
class WerResult:
    """Edit counts between a reference and a hypothesis (after normalisation)."""

    substitutions: int
    deletions: int
    insertions: int
    reference_words: int

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def wer(self) -> float:
        if self.reference_words == 0:
            return 0.0 if self.errors == 0 else 1.0
        return self.errors / self.reference_words

    def __add__(self, other: WerResult) -> WerResult:
        return WerResult(
            self.substitutions + other.substitutions,
            self.deletions + other.deletions,
            self.insertions + other.insertions,
            self.reference_words + other.reference_words,
        )


def word_errors(reference: str, hypothesis: str) -> WerResult:
    """Levenshtein alignment over normalised words, counting each kind of edit."""
    ref = normalize_words(reference)
    hyp = normalize_words(hypothesis)
    # each cell holds (cost, substitutions, deletions, insertions); ties prefer fewer edits overall
    previous = [(j, 0, 0, j) for j in range(len(hyp) + 1)]
    for i in range(1, len(ref) + 1):
        current = [(i, 0, i, 0)]
        for j in range(1, len(hyp) + 1):
            diag = previous[j - 1]
            if ref[i - 1] == hyp[j - 1]:
                best = diag
            else:
                best = (diag[0] + 1, diag[1] + 1, diag[2], diag[3])
            up = previous[j]
            if up[0] + 1 < best[0]:
                best = (up[0] + 1, up[1], up[2] + 1, up[3])
            left = current[j - 1]
            if left[0] + 1 < best[0]:
                best = (left[0] + 1, left[1], left[2], left[3] + 1)
            current.append(best)
        previous = current
    _, subs, dels, ins = previous[-1]
    return WerResult(subs, dels, ins, len(ref))


def word_error_rate(reference: str, hypothesis: str) -> float:
    """WER of one hypothesis against its reference, 0.0 for a perfect match."""
    return word_errors(reference, hypothesis).wer
