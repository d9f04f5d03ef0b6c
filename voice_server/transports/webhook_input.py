"""Reading carrier webhook bodies and fields without trusting their shape.

A signed webhook is the carrier's, but its fields still reach the database: a
string PostgreSQL cannot store (NUL, lone surrogates), a number past the
column, a JSON document nested past the parser's recursion limit or a form
that is not UTF-8 must never turn into a 500, which carriers retry. The rules:

* a body that cannot be read at all (not UTF-8, not JSON, not an object) is a
  400 with the one error shape: it is not something the carrier sends;
* a field the handler needs (the call's id) that is missing or unusable is a 400;
* an optional field that is unusable (a duration past the column, a number
  that is not one) is ignored and the callback acknowledged, so the carrier
  does not retry a callback that would fail the same way forever.
"""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qsl

from multidict import MultiDict

MAX_TEXT_CHARS = 512  # ids, numbers, SIP addresses and status words are far shorter
INT4_MAX = 2**31 - 1  # integer columns (calls.duration_s)
_DIGITS = re.compile(r"[0-9]{1,10}")


class UnreadableBody(ValueError):
    """A webhook body that is not the form or JSON object it must be."""


def text_field(value: object, max_chars: int = MAX_TEXT_CHARS) -> str | None:
    """``value`` when it is a string the database can store (bounded, valid UTF-8, no NUL)."""
    if not isinstance(value, str) or len(value) > max_chars or "\x00" in value:
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from a JSON "\\ud800" escape
        return None
    return value


def count_field(value: object, maximum: int = INT4_MAX) -> int | None:
    """A non-negative whole number within ``maximum`` (an int or ASCII digits), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and _DIGITS.fullmatch(value):
        number = int(value)
    else:
        return None
    return number if 0 <= number <= maximum else None


def json_object(body: bytes) -> dict:
    """The body as a JSON object; UnreadableBody for anything else (nesting bombs included)."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise UnreadableBody("body is not a JSON object") from None
    if not isinstance(data, dict):
        raise UnreadableBody("body is not a JSON object")
    return data


def form_fields(body: bytes) -> MultiDict[str]:
    """An ``application/x-www-form-urlencoded`` body, strictly UTF-8 (raw and percent-encoded)."""
    try:
        text = body.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, encoding="utf-8", errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise UnreadableBody("body is not UTF-8 form data") from None
    return MultiDict(pairs)
