"""Timed words and transcript segments: what the speech engine hands to the rest of a call."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Word:
    """One recognised word placed on the call clock (milliseconds since the call started)."""

    text: str
    start_ms: int
    end_ms: int
    probability: float


@dataclass(frozen=True, slots=True)
class TranscriptSegment:
    """One utterance of one party, provisional (partial) or settled (final).

    A segment keeps its ``segment_id`` from the first partial to its final;
    ``revision`` counts up with every re-emission, so a consumer keeps the
    highest revision per id and replaces the line it shows.  Partials are
    stable-prefix friendly: the first ``stable_words`` words of a partial
    were agreed by two successive hypotheses and do not change in later
    partials of the same segment (only the final may still correct them).
    """

    segment_id: str
    party: str
    text: str
    start_ms: int
    end_ms: int
    words: tuple[Word, ...]
    is_final: bool
    revision: int
    stable_words: int = 0

    @property
    def stable_text(self) -> str:
        """The part of the text that later partials will not change (all of it in a final)."""
        if self.is_final:
            return self.text
        return " ".join(w.text for w in self.words[: self.stable_words])
