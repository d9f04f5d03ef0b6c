"""Talk metrics of a call, updated per final segment and recomputed at the end.

Definitions (the tests hand-compute them from these):

- talk time: each party's segment spans, overlapping spans of one party counted once;
  ``talk_ratio`` is the rep's share of all talk (0.5 = balanced).
- turn: a party's speech from when they take the floor until the other party
  says something that is not a backchannel, or until they pause longer than
  ``turn_gap_ms``. A backchannel is an utterance of at most
  ``backchannel_max_words`` words ("uh-huh", "right"); it counts as talk but
  neither ends the other party's turn nor counts as an interruption.
  A monologue is a turn; ``rep_longest_monologue_ms`` and
  ``customer_longest_monologue_ms`` are each party's longest, and
  ``longest_monologue_ms`` / ``longest_monologue_party`` the longest of the two
  (the rep's wins a tie).
- interruption: a party starts a non-backchannel segment while a segment of
  the other party is still going (strictly inside its span).
- speaking rate: words / talk minutes, per party.
- silence: gaps where nobody speaks, between the first and last speech.
- patience: the gap between the end of a customer turn and the start of the
  rep turn that answers it (overlaps count as interruptions, not patience);
  ``patience_ms`` is their mean.
- fillers: the rule set's filler words and phrases, with context checks so
  "I'd like", "what kind of" and "do you know" are not counted.

Live values assume segments arrive roughly in time order (they do: both
parties' finals come from the same transcriber); ``final()`` replays them
sorted, so late arrivals cannot skew the call's final numbers.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass

from coaching.records import SegmentInput, TalkMetrics

# Words before "like" that make it a verb or comparison, not a filler.
_LIKE_NOT_FILLER_AFTER = frozenset({
    "i", "you", "we", "they", "he", "she", "i'd", "you'd", "we'd", "they'd", "would", "wouldn't",
    "don't", "didn't", "do", "does", "doesn't", "did", "really", "just", "also", "look", "looks",
    "looked", "sound", "sounds", "sounded", "feel", "feels", "felt", "seem", "seems", "seemed",
    "something", "anything", "nothing", "things", "more", "much", "is", "was", "be", "been", "not",
    "people", "it's", "that's", "what's", "who'd", "should", "could", "might", "will",
})
_DETERMINERS = frozenset({"a", "the", "what", "this", "that", "which", "any", "some", "every",
                          "one", "same"})
_PHRASE_NOT_FILLER_AFTER = {
    ("kind", "of"): _DETERMINERS,
    ("sort", "of"): _DETERMINERS,
    ("you", "know"): frozenset({"do", "did", "would", "if", "don't", "didn't", "as", "what",
                                "let"}),
    ("i", "mean"): frozenset({"what", "that's", "if"}),
}


@dataclass(slots=True)
class _Turn:
    party: str
    start_ms: int
    end_ms: int

    @property
    def length_ms(self) -> int:
        return self.end_ms - self.start_ms


@dataclass(frozen=True, slots=True)
class _Utterance:
    party: str
    start_ms: int
    end_ms: int
    words: int
    fillers: tuple[str, ...]


class TalkTracker:
    """Accumulates one call's talk metrics; ``add`` per final segment, O(1) each."""

    def __init__(self, fillers: tuple[str, ...] = ("um", "uh"), turn_gap_ms: int = 3000,
                 backchannel_max_words: int = 2) -> None:
        self.filler_phrases = tuple(tuple(f.lower().split()) for f in fillers if f.split())
        self._fillers_by_first: dict[str, list[tuple[str, ...]]] = {}
        for phrase in self.filler_phrases:
            self._fillers_by_first.setdefault(phrase[0], []).append(phrase)
        self.turn_gap_ms = turn_gap_ms
        self.backchannel_max_words = backchannel_max_words
        self._utterances: list[_Utterance] = []
        self._reset()

    def _reset(self) -> None:
        self.talk_ms = {"rep": 0, "customer": 0}
        self.words = {"rep": 0, "customer": 0}
        self.fillers = {"rep": Counter(), "customer": Counter()}
        self.interruptions = {"rep": 0, "customer": 0}
        self.turns = {"rep": 0, "customer": 0}
        self._last_end = {"rep": -1, "customer": -1}
        self._recent = {"rep": deque(maxlen=8), "customer": deque(maxlen=8)}
        self._turn: _Turn | None = None
        self._longest = {"rep": 0, "customer": 0}
        self._first_ms: int | None = None
        self._union_end: int | None = None
        self.silence_ms = 0
        self.longest_silence_ms = 0
        self._patience: list[int] = []
        self.at_ms = 0

    def count_fillers(self, norms: list[str]) -> list[str]:
        found = []
        i = 0
        while i < len(norms):
            for phrase in self._fillers_by_first.get(norms[i], ()):
                n = len(phrase)
                if tuple(norms[i:i + n]) != phrase:
                    continue
                prev = norms[i - 1] if i else ""
                if phrase == ("like",) and prev in _LIKE_NOT_FILLER_AFTER:
                    continue
                if prev in _PHRASE_NOT_FILLER_AFTER.get(phrase, ()):
                    continue
                found.append(" ".join(phrase))
                i += n - 1
                break
            i += 1
        return found

    def add(self, segment: SegmentInput, norms: list[str]) -> None:
        """One final segment; ``norms`` are its normalised word tokens."""
        utterance = _Utterance(segment.party, segment.start_ms, segment.end_ms, len(norms),
                               tuple(self.count_fillers(norms)))
        self._utterances.append(utterance)
        self._apply(utterance)

    def _apply(self, u: _Utterance) -> None:
        party, other = u.party, ("customer" if u.party == "rep" else "rep")
        self.at_ms = max(self.at_ms, u.end_ms)
        self.talk_ms[party] += max(0, u.end_ms - max(u.start_ms, self._last_end[party]))
        self._last_end[party] = max(self._last_end[party], u.end_ms)
        self.words[party] += u.words
        self.fillers[party].update(u.fillers)
        self._silence(u)
        backchannel = u.words <= self.backchannel_max_words
        if not backchannel and any(s < u.start_ms < e for s, e in self._recent[other]):
            self.interruptions[party] += 1
        self._recent[party].append((u.start_ms, u.end_ms))
        turn = self._turn
        if turn is None:
            self._start_turn(party, u)
        elif party == turn.party:
            if u.start_ms - turn.end_ms <= self.turn_gap_ms:
                turn.end_ms = max(turn.end_ms, u.end_ms)
                self._note_longest(turn)
            else:
                self._start_turn(party, u)
        elif backchannel:
            return
        elif u.start_ms < turn.start_ms:
            # arrived after a later turn had begun: count its length, leave the live turn alone
            self._note_longest(_Turn(party, u.start_ms, u.end_ms))
        else:
            if party == "rep" and u.start_ms >= turn.end_ms:
                self._patience.append(u.start_ms - turn.end_ms)
            self._start_turn(party, u)

    def _start_turn(self, party: str, u: _Utterance) -> None:
        self._turn = _Turn(party, u.start_ms, u.end_ms)
        self.turns[party] += 1
        self._note_longest(self._turn)

    def _note_longest(self, turn: _Turn) -> None:
        # per party: a customer's long turn must not hide the rep's longest one
        self._longest[turn.party] = max(self._longest[turn.party], turn.length_ms)

    def _silence(self, u: _Utterance) -> None:
        if self._union_end is None:
            self._first_ms, self._union_end = u.start_ms, u.end_ms
            return
        gap = u.start_ms - self._union_end
        if gap > 0:
            self.silence_ms += gap
            self.longest_silence_ms = max(self.longest_silence_ms, gap)
        self._union_end = max(self._union_end, u.end_ms)

    @property
    def patience_answers(self) -> int:
        """How many customer turns the rep answered (the sample ``patience_ms`` is the mean of)."""
        return len(self._patience)

    @property
    def last_speech_end_ms(self) -> int | None:
        return self._union_end

    def snapshot(self, at_ms: int | None = None) -> TalkMetrics:
        rep, customer = self.talk_ms["rep"], self.talk_ms["customer"]
        total = rep + customer
        filler_counts = Counter(self.fillers["rep"]) + Counter(self.fillers["customer"])
        turn = self._turn
        longest_rep, longest_customer = self._longest["rep"], self._longest["customer"]
        longest_party = None
        if self.turns["rep"] or self.turns["customer"]:
            longest_party = "rep" if longest_rep >= longest_customer else "customer"
        return TalkMetrics(
            at_ms=self.at_ms if at_ms is None else at_ms,
            rep_talk_ms=rep,
            customer_talk_ms=customer,
            talk_ratio=round(rep / total, 4) if total else 0.0,
            longest_monologue_ms=max(longest_rep, longest_customer),
            longest_monologue_party=longest_party,
            rep_longest_monologue_ms=longest_rep,
            customer_longest_monologue_ms=longest_customer,
            current_monologue_ms=turn.length_ms if turn else 0,
            current_monologue_party=turn.party if turn else None,
            rep_interruptions=self.interruptions["rep"],
            customer_interruptions=self.interruptions["customer"],
            rep_wpm=_wpm(self.words["rep"], rep),
            customer_wpm=_wpm(self.words["customer"], customer),
            rep_fillers=sum(self.fillers["rep"].values()),
            customer_fillers=sum(self.fillers["customer"].values()),
            filler_counts=dict(sorted(filler_counts.items())),
            silence_ms=self.silence_ms,
            longest_silence_ms=self.longest_silence_ms,
            patience_ms=round(sum(self._patience) / len(self._patience), 1)
            if self._patience else 0.0,
            rep_turns=self.turns["rep"],
            customer_turns=self.turns["customer"],
        )

    def final(self, at_ms: int | None = None) -> TalkMetrics:
        """The whole call's metrics, replaying every segment in time order."""
        utterances = sorted(self._utterances, key=lambda u: (u.start_ms, u.end_ms))
        self._reset()
        for u in utterances:
            self._apply(u)
        return self.snapshot(at_ms)


def _wpm(words: int, talk_ms: int) -> float:
    return round(words * 60000 / talk_ms, 1) if talk_ms > 0 else 0.0
