"""Text normalisation for comparing transcripts word by word.

Case, punctuation and a few spelling variants ("one" vs "1", "okay" vs
"ok") are not differences in what was said, so two texts that differ only
in them normalise to the same words. The streaming transcriber compares
successive hypotheses with it; word error rate scores with it.
"""

from __future__ import annotations

import re

_NUMBER_WORDS = {
    "0": "zero", "1": "one", "2": "two", "3": "three", "4": "four", "5": "five",
    "6": "six", "7": "seven", "8": "eight", "9": "nine", "10": "ten",
    "11": "eleven", "12": "twelve", "20": "twenty", "30": "thirty", "40": "forty",
    "50": "fifty", "60": "sixty", "100": "hundred",
}
_SPELLINGS = {"ok": "okay", "mr": "mister", "mrs": "missus", "dr": "doctor", "%": "percent"}
_SPLIT_COMPOUND = re.compile(r"[-_/]")
_DROP = re.compile(r"[^a-z0-9' ]+")


def normalize_words(text: str) -> list[str]:
    """Lower-cased words without punctuation, digits spelt out, common variants unified."""
    text = text.lower().replace("’", "'").replace("%", " percent")
    text = _SPLIT_COMPOUND.sub(" ", text)
    # bracketed notes in reference texts ("[ascending tones]") are not speech
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = _DROP.sub(" ", text)
    words = []
    for word in text.split():
        word = word.strip("'")
        if not word:
            continue
        if word.endswith("'s") and word[:-2].isdigit():
            word = word[:-2]
        word = _NUMBER_WORDS.get(word, word)
        word = _SPELLINGS.get(word, word)
        words.append(word)
    return words
