"""Trigram similarity as pg_trgm computes it, for scoring duplicate candidates.

A text's trigrams: its lower-cased words (runs of letters and digits), each padded with two
blanks before and one after, every distinct three-character window. The similarity of two texts
is |common trigrams| / |all trigrams| (0 when either has none): ``similarity('Jon Smith',
'John Smith')`` is 8/13 in both. Scored here rather than in SQL so that it is the same with and
without the extension (the embedded PostgreSQL lacks it) and costs microseconds per pair.
"""

from __future__ import annotations

import re

_WORD = re.compile(r"[^\W_]+")


def trigrams(text: str | None) -> frozenset[str]:
    grams: set[str] = set()
    for word in _WORD.findall((text or "").lower()):
        padded = f"  {word} "
        grams.update(padded[i : i + 3] for i in range(len(padded) - 2))
    return frozenset(grams)


def similarity(a: str | frozenset[str] | None, b: str | frozenset[str] | None) -> float:
    ta = a if isinstance(a, frozenset) else trigrams(a)
    tb = b if isinstance(b, frozenset) else trigrams(b)
    if not ta or not tb:
        return 0.0
    common = len(ta & tb)
    return common / (len(ta) + len(tb) - common)
