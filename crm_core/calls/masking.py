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
