"""Masking of personal data in transcript text for readers without ``transcripts:raw``.

Segments are redacted by coaching before they are stored (``text``); this
second pass is a safety net that masks what still looks like an email
address, or a run of 4+ digits (phone, card, account numbers).
"""

from __future__ import annotations

import re

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_DIGITS = re.compile(r"(?:\d[\s-]?){3,}\d")


def mask_pii(text: str) -> str:
    text = _EMAIL.sub("[email]", text)
    return _DIGITS.sub(lambda m: "#" * sum(ch.isdigit() for ch in m.group()), text)


def pii_spans(text: str) -> list[tuple[int, int, str]]:
    """Where ``mask_pii`` masks ``text``: sorted (start, end, replacement) of ``text`` itself,
    for callers that must keep their own positions (a search snippet's highlight marks)."""
    spans = [(m.start(), m.end(), "[email]") for m in _EMAIL.finditer(text)]
    blanked = list(text)
    for start, end, _ in spans:
        # mask_pii looks for digits after the emails became "[email]": neither digit nor separator
        blanked[start:end] = "\x03" * (end - start)
    spans += [(m.start(), m.end(), "#" * sum(ch.isdigit() for ch in m.group()))
              for m in _DIGITS.finditer("".join(blanked))]
    return sorted(spans)
