"""JSON from outside, parsed defensively: the one parser every request body goes through.

``json.loads`` alone lets hostile text through in ways that surface later as a
500: a deeply nested body overflows the interpreter's recursion limit, an
integer of thousands of digits raises a bare ``ValueError``, ``NaN`` and
``1e400`` become floats PostgreSQL's jsonb refuses, a lone surrogate or a NUL
character cannot be encoded for the database, and duplicate keys silently keep
the last value (so two readers of one body may disagree about what it says).
``parse_json`` refuses all of these with ``JsonInputError``, which callers turn
into a 400 (the API) or a clean refusal (carrier callbacks).
"""

from __future__ import annotations

import json
import re
from typing import Any

# Deeper than any body the API documents (the ICP rules nest 3-4 levels), far below the
# interpreter's recursion limit, so neither the parser nor json.dumps on the way to jsonb recurses
# into trouble.
MAX_DEPTH = 32
# Longer than any number a column holds (numeric(14, 2), bigint); pydantic's bounds answer
# the rest with a 422.
MAX_NUMBER_CHARS = 40
# NUL cannot be stored in PostgreSQL text or jsonb; an unpaired surrogate cannot be encoded as UTF-8.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


class JsonInputError(ValueError):
    """The text is not JSON this server accepts; ``reason`` says why, in words safe to echo."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class UnstorableText(JsonInputError):
    """Well-formed JSON whose text at ``loc`` holds a NUL character or an unpaired surrogate:
    a value the database cannot store (a 422 naming the field, like any other bad value)."""

    def __init__(self, loc: tuple[str, ...]) -> None:
        super().__init__("the text holds a NUL character or an unpaired surrogate")
        self.loc = loc


def _refuse_constant(name: str) -> Any:
    raise JsonInputError(f"{name} is not a JSON number")


def _bounded_int(text: str) -> int:
    if len(text) > MAX_NUMBER_CHARS:
        raise JsonInputError(f"a number has more than {MAX_NUMBER_CHARS} characters")
    return int(text)


def _finite_float(text: str) -> float:
    if len(text) > MAX_NUMBER_CHARS:
        raise JsonInputError(f"a number has more than {MAX_NUMBER_CHARS} characters")
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise JsonInputError("a number is too large to represent")
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                break
            seen.add(key)
        raise JsonInputError(f"the key {key[:60]!r} appears more than once in an object")
    return result


def _check_depth_and_text(value: Any, max_depth: int) -> None:
    """Walk the parsed value without recursion: depth bound, and every string storable."""
    stack: list[tuple[Any, int, tuple[str, ...]]] = [(value, 1, ())]
    while stack:
        item, depth, loc = stack.pop()
        if isinstance(item, str):
            if _UNSTORABLE.search(item):
                raise UnstorableText(loc)
        elif isinstance(item, dict | list):
            if depth > max_depth:
                raise JsonInputError(f"the JSON nests deeper than {max_depth} levels")
            if isinstance(item, dict):
                for key, v in item.items():
                    if _UNSTORABLE.search(key):
                        raise UnstorableText(loc)
                    stack.append((v, depth + 1, (*loc, key)))
            else:
                stack.extend((v, depth + 1, (*loc, str(i))) for i, v in enumerate(item))


def _nesting_exceeds(text: str, max_depth: int) -> bool:
    """A cheap upper bound before parsing: brackets counted outside strings.

    Only run when the text has more opening brackets than the bound allows at all, so
    ordinary bodies never pay for the scan.
    """
    depth = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > max_depth:
                return True
        elif char in "]}":
            depth -= 1
    return False


def parse_json(raw: bytes | str, *, max_depth: int = MAX_DEPTH) -> Any:
    """The value of ``raw`` (UTF-8 JSON text), or ``JsonInputError`` saying what is wrong with it."""
    if isinstance(raw, bytes | bytearray):
        try:
            text = bytes(raw).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JsonInputError(f"the body is not UTF-8 (byte {exc.start})") from None
    else:
        text = raw
    # Refuse a body nested past the bound before the recursive parser sees it.
    if text.count("[") + text.count("{") > max_depth and _nesting_exceeds(text, max_depth):
        raise JsonInputError(f"the JSON nests deeper than {max_depth} levels")
    try:
        value = json.loads(
            text,
            object_pairs_hook=_unique_keys,
            parse_constant=_refuse_constant,
            parse_int=_bounded_int,
            parse_float=_finite_float,
        )
    except JsonInputError:
        raise
    except json.JSONDecodeError as exc:
        raise JsonInputError(f"{exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except (
        ValueError,
        RecursionError,
    ) as exc:  # belt and braces: the checks above should catch these
        raise JsonInputError(f"the JSON cannot be read: {type(exc).__name__}") from None
    _check_depth_and_text(value, max_depth)
    return value
