"""Normalising and tokenising ASR text, with each token's place in time.

ASR output differs from run to run in case, punctuation, apostrophes and
how numbers are written ("four one one one" vs "4111"), so every matcher in
coaching works on the normalised tokens made here, never on raw text.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

import snowballstemmer

from coaching.records import SegmentInput

# Words, digit groups, and single other non-space characters (kept so that
# redaction can see separators like "-" between digit groups).
_TOKEN_RE = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)*|\d+|[^\s\w]|_")
_APOSTROPHES = str.maketrans({"’": "'", "‘": "'", "`": "'"})

DIGIT_WORDS = {
    "zero": "0", "oh": "0", "o": "0", "one": "1", "two": "2", "three": "3", "four": "4",
    "for": "4", "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9",
}
# "to"/"too"/"won" are left out on purpose: they are far more often words than digits.
TENS_WORDS = {"ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14,
              "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
              "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60,
              "seventy": 70, "eighty": 80, "ninety": 90}
REPEAT_WORDS = {"double": 2, "triple": 3}


@dataclass(frozen=True, slots=True)
class Token:
    raw: str          # as written in the text
    norm: str         # lower-case, accents folded, apostrophes unified
    start_char: int
    end_char: int
    start_ms: int
    end_ms: int
    word_index: int   # index of the ASR word it came from (-1 when interpolated)

    @property
    def is_word(self) -> bool:
        return self.norm[:1].isalpha()


def fold(text: str) -> str:
    """Lower-case, strip accents, unify apostrophes."""
    text = text.translate(_APOSTROPHES)
    if text.isascii():
        return text.lower()         # the common case, ~10x faster than normalising
    text = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in text if not unicodedata.combining(ch)).lower()


def normalise(text: str) -> str:
    """Text as a plain space-separated string of word/digit tokens."""
    return " ".join(t.norm for t in tokenise(text) if t.norm[:1].isalnum())


def tokenise(text: str, start_ms: int = 0, end_ms: int = 0, word_index: int = -1) -> list[Token]:
    """Tokens of ``text``; times are spread over [start_ms, end_ms] by character position."""
    tokens = []
    span = max(len(text), 1)
    duration = max(end_ms - start_ms, 0)
    for match in _TOKEN_RE.finditer(text):
        a, b = match.span()
        tokens.append(Token(match.group(), fold(match.group()), a, b,
                            start_ms + duration * a // span, start_ms + duration * b // span,
                            word_index))
    return tokens


def segment_tokens(segment: SegmentInput) -> tuple[str, list[Token]]:
    """The segment's text and tokens, timed by its ASR words when it has them.

    With words, the text is rebuilt from them so that every token maps to the
    word (and time) it came from; without, times are interpolated.
    """
    if not segment.words:
        return segment.text, tokenise(segment.text, segment.start_ms, segment.end_ms)
    parts: list[str] = []
    tokens: list[Token] = []
    offset = 0
    for index, word in enumerate(segment.words):
        text = word.text.strip()
        if not text:
            continue
        if parts:
            parts.append(" ")
            offset += 1
        for tok in tokenise(text, word.start_ms, word.end_ms, index):
            # every token of a word spans the word's whole time: silencing must cover it all
            tokens.append(Token(tok.raw, tok.norm, tok.start_char + offset, tok.end_char + offset,
                                word.start_ms, word.end_ms, index))
        parts.append(text)
        offset += len(text)
    return "".join(parts), tokens


_STEMMER = snowballstemmer.stemmer("english")


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    # Snowball keeps "'s" on the stem; drop the possessive so "gong's" meets "gong"
    word = word.removesuffix("'s")
    return _STEMMER.stemWord(word.replace("'", ""))


def digits_of(norms: list[str], i: int) -> tuple[str, int] | None:
    """Digits spelled by tokens starting at ``i`` and how many tokens they used, or None.

    Handles "4111", "four", "oh", "double five", "forty one" (as "41").
    """
    word = norms[i]
    if word.isdigit():
        return word, 1
    if word in DIGIT_WORDS and (word not in ("o", "for") or _digit_next(norms, i)):
        return DIGIT_WORDS[word], 1
    if word in REPEAT_WORDS and i + 1 < len(norms):
        nxt = norms[i + 1]
        digit = nxt if nxt.isdigit() and len(nxt) == 1 else DIGIT_WORDS.get(nxt)
        if digit is not None:
            return digit * REPEAT_WORDS[word], 2
    if word in TENS_WORDS:
        value = TENS_WORDS[word]
        if value >= 20 and value % 10 == 0 and i + 1 < len(norms):
            unit = DIGIT_WORDS.get(norms[i + 1])
            if unit is not None and unit != "0" and norms[i + 1] not in ("o", "oh", "for"):
                return str(value + int(unit)), 2
        return str(value), 1
    return None


def _digit_next(norms: list[str], i: int) -> bool:
    # "o"/"for" are digits only inside a run of digits ("four o four", "five for one")
    for j in (i - 1, i + 1):
        if 0 <= j < len(norms) and (norms[j].isdigit() or norms[j] in DIGIT_WORDS
                                    and norms[j] not in ("o", "for")):
            return True
    return False
