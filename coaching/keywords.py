"""Finding a rule set's keywords and phrases in ASR text.

Four passes, strongest first, over the segment's normalised tokens:

1. exact: the phrase's tokens, or the phrase written as one word split by
   the ASR ("sales force" for Salesforce, "hub spot" for HubSpot);
2. stem: Snowball stems equal ("prices" for "price", "budgeted" for "budget");
3. fuzzy (categories with ``fuzzy``): edit-distance similarity of a window of
   1–3 tokens joined without spaces ("salesforse", "hubspott");
4. phonetic (categories with ``phonetic``): equal double-metaphone codes and
   a looser similarity ("chorous" for Chorus).

Fuzzy and phonetic matching skip one-word windows that are common English
words, because ASR output is mostly real words and "going" is a near miss
of "Gong" in both spelling and sound.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from doublemetaphone import doublemetaphone
from rapidfuzz import fuzz, process

from coaching.records import KeywordHit, SegmentInput
from coaching.rule_set import KeywordCategory, RuleSet
from coaching.tokens import Token, fold, segment_tokens, stem, tokenise

COMMON_WORDS = frozenset(json.loads(
    (Path(__file__).resolve().parent / "data" / "common_words.json").read_text(encoding="utf-8")))
PHONETIC_MIN_SIMILARITY = 70.0
MIN_FUZZY_CHARS = 4
MAX_WINDOW = 3
_METHOD_RANK = {"exact": 0, "stem": 1, "fuzzy": 2, "phonetic": 3}


@dataclass(frozen=True, slots=True)
class _Entry:
    category: KeywordCategory
    keyword: str          # canonical phrase
    link: str | None
    norms: tuple[str, ...]
    stems: tuple[str, ...]
    joined: str           # norms without spaces: the form fuzzy/phonetic compare


@lru_cache(maxsize=32768)
def _metaphone(text: str) -> tuple[str, ...]:
    return tuple(code for code in doublemetaphone(text) if code)


class KeywordMatcher:
    """Compiled from a rule set once, shared by every call of the organization."""

    def __init__(self, rule_set: RuleSet) -> None:
        self.rule_set = rule_set
        self.threshold = float(rule_set.option("fuzzy_threshold"))
        self._by_first_stem: dict[str, list[_Entry]] = {}
        self._by_joined: dict[str, list[_Entry]] = {}
        self._fuzzy: dict[str, list[_Entry]] = {}
        self._phonetic: dict[str, list[_Entry]] = {}
        for category in rule_set.keywords:
            for phrase in category.phrases:
                for text in (phrase.text, *phrase.aliases):
                    norms = tuple(t.norm for t in tokenise(text) if t.norm[:1].isalnum())
                    if not norms:
                        continue
                    entry = _Entry(category, phrase.text, phrase.link, norms,
                                   tuple(stem(n) for n in norms), "".join(norms))
                    self._by_first_stem.setdefault(entry.stems[0], []).append(entry)
                    self._by_joined.setdefault(entry.joined, []).append(entry)
                    if len(entry.joined) >= MIN_FUZZY_CHARS:
                        if category.fuzzy:
                            self._fuzzy.setdefault(entry.joined, []).append(entry)
                        if category.phonetic:
                            for code in _metaphone(entry.joined):
                                self._phonetic.setdefault(code, []).append(entry)
        self._fuzzy_choices = list(self._fuzzy)

    def match(self, segment: SegmentInput) -> list[KeywordHit]:
        text, tokens = segment_tokens(segment)
        return self.match_tokens(segment, text, tokens)

    def match_tokens(self, segment: SegmentInput, text: str,
                     tokens: list[Token]) -> list[KeywordHit]:
        """Hits in already tokenised text (``segment_tokens``), so callers tokenise once."""
        words = [(i, t) for i, t in enumerate(tokens) if t.norm[:1].isalnum()]
        norms = [t.norm for _, t in words]
        stems = [stem(n) for n in norms]
        candidates: list[tuple[int, int, _Entry, str, float]] = []   # (a, b, entry, method, score)
        n = len(norms)
        for a in range(n):
            for entry in self._by_first_stem.get(stems[a], ()):
                b = a + len(entry.stems)
                if tuple(stems[a:b]) == entry.stems:
                    exact = tuple(norms[a:b]) == entry.norms
                    candidates.append((a, b, entry, "exact" if exact else "stem", 100.0))
            for size in range(2, MAX_WINDOW + 1):
                if a + size > n:
                    break
                joined = "".join(norms[a:a + size])
                for entry in self._by_joined.get(joined, ()):
                    if len(entry.norms) != size:
                        candidates.append((a, a + size, entry, "exact", 100.0))
        if self._fuzzy or self._phonetic:
            candidates.extend(self._near_matches(norms))
        return self._hits(segment, text, tokens, words, candidates)

    def _near_matches(self, norms: list[str]):
        n = len(norms)
        for a in range(n):
            for size in range(1, MAX_WINDOW + 1):
                if a + size > n:
                    break
                window = norms[a:a + size]
                if size == 1 and (window[0] in COMMON_WORDS or not window[0].isalpha()):
                    continue
                joined = "".join(window)
                if len(joined) < MIN_FUZZY_CHARS:
                    continue
                if self._fuzzy_choices:
                    best = process.extractOne(joined, self._fuzzy_choices, scorer=fuzz.ratio,
                                              score_cutoff=self.threshold)
                    if best is not None:
                        for entry in self._fuzzy[best[0]]:
                            yield a, a + size, entry, "fuzzy", float(best[1])
                        continue
                for code in _metaphone(joined):
                    for entry in self._phonetic.get(code, ()):
                        similarity = fuzz.ratio(joined, entry.joined)
                        if similarity >= PHONETIC_MIN_SIMILARITY:
                            yield a, a + size, entry, "phonetic", float(similarity)

    def _hits(self, segment: SegmentInput, text: str, tokens: list[Token],
              words: list[tuple[int, Token]],
              candidates) -> list[KeywordHit]:
        # strongest first; a token belongs to one hit per category
        candidates.sort(key=lambda c: (_METHOD_RANK[c[3]], -c[4], -(c[1] - c[0]), c[0]))
        taken: dict[str, set[int]] = {}
        hits = []
        for a, b, entry, method, score in candidates:
            category = entry.category
            if segment.party not in category.parties:
                continue
            used = taken.setdefault(category.name, set())
            if used.intersection(range(a, b)):
                continue
            used.update(range(a, b))
            first, last = words[a][1], words[b - 1][1]
            hits.append(KeywordHit(
                segment_id=segment.segment_id, party=segment.party, category=category.name,
                keyword=entry.keyword, matched_text=text[first.start_char:last.end_char],
                start_ms=first.start_ms, end_ms=last.end_ms, word_start=words[a][0],
                word_end=words[b - 1][0] + 1, method=method, score=round(score / 100, 3),
                link=entry.link))
        hits.sort(key=lambda h: (h.word_start, h.category))
        return hits


def hotwords(rule_set: RuleSet, max_chars: int = 250) -> str:
    """Hot words for the transcriber: the ``hotword`` categories' phrases and aliases.

    Whisper-style decoders take them as a prompt, which has a token budget,
    hence ``max_chars``; phrases are kept whole and in rule-set order.
    """
    seen: set[str] = set()
    out: list[str] = []
    length = 0
    for category in rule_set.keywords:
        if not category.hotword:
            continue
        for phrase in category.phrases:
            for text in (phrase.text, *phrase.aliases):
                key = fold(text)
                if key in seen:
                    continue
                extra = len(text) + (2 if out else 0)
                if length + extra > max_chars:
                    return ", ".join(out)
                seen.add(key)
                out.append(text)
                length += extra
    return ", ".join(out)
