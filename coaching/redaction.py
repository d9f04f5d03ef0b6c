"""PII redaction of transcript text, with the time ranges to silence in the recording.

What is found:

- card numbers: 13–19 digits, written ("4111 1111 1111 1111", "4111-...")
  or spoken ("four one one one ...", "double one", "oh"), that pass the Luhn
  check; after card context ("card number", "visa", ...) any 12–19 digit run
  is masked even when Luhn fails, because one misheard digit must not leak
  the other fifteen;
- CVV: a 3–4 digit run within a few words after "cvv", "security code", ...;
- US SSNs: ``123-45-6789`` shapes (valid area/group/serial), or 9 digits
  after "social security" / "ssn";
- e-mail addresses, written or spoken ("john dot smith at acme dot com");
- phone numbers: NANP shapes, or 10 / 11 (leading 1) digit runs.

A ``Redactor`` keeps context across one call's segments (the customer says
"my card number is" in one segment, the digits in the next); ``redact``
is the one-shot form.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from coaching.records import SegmentInput
from coaching.tokens import Token, digits_of, segment_tokens, tokenise

MASKS = {"card_number": "[CARD]", "cvv": "[CVV]", "ssn": "[SSN]", "email": "[EMAIL]",
         "phone": "[PHONE]"}
# tokens after which a digit run is card-ish / a CVV / an SSN / a phone number
CARD_CONTEXT = ("card", "visa", "mastercard", "amex", "american express", "discover",
                "credit", "debit", "card number", "account number")
CVV_CONTEXT = ("cvv", "cvc", "cvv2", "security code", "three digit", "four digit",
               "back of the card", "verification code")
SSN_CONTEXT = ("social security", "social", "ssn", "social security number")
CONTEXT_WINDOW = 12          # tokens a context word reaches forward


def _by_first_word(phrases: tuple[str, ...]) -> dict[str, list[tuple[str, ...]]]:
    index: dict[str, list[tuple[str, ...]]] = {}
    for phrase in phrases:
        words = tuple(phrase.split())
        index.setdefault(words[0], []).append(words)
    return index


_CARD_INDEX = _by_first_word(CARD_CONTEXT)
_CVV_INDEX = _by_first_word(CVV_CONTEXT)
_SSN_INDEX = _by_first_word(SSN_CONTEXT)
SEPARATORS = frozenset({"-", ".", "(", ")", "+", ",", "/", "and"})

_EMAIL_RE = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_SPOKEN_EMAIL_RE = re.compile(
    r"\b[\w]+(?:\s+(?:dot|underscore|dash)\s+[\w]+)*\s+at\s+[\w]+(?:\s+dot\s+[\w]+)*\s+dot\s+"
    r"(?:com|net|org|io|co|edu|gov|us|uk|ca|de|biz|info)\b", re.IGNORECASE)
_SSN_RE = re.compile(r"\b(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}\b")


class RedactionError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class RedactedSpan:
    kind: str                 # card_number | cvv | ssn | email | phone
    start_char: int           # in the input text
    end_char: int
    word_start: int           # ASR word indices (end exclusive); -1 when the text had no words
    word_end: int
    start_ms: int             # what to silence in the recording
    end_ms: int


@dataclass(frozen=True, slots=True)
class RedactionResult:
    text: str                 # masked text
    spans: tuple[RedactedSpan, ...]

    @property
    def redacted(self) -> bool:
        return bool(self.spans)


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


@dataclass(slots=True)
class _Run:
    first: int                # token indices, inclusive
    last: int
    digits: str
    token_digits: list[tuple[int, int, str]]   # (first, last token, digits) per digit group


class Redactor:
    """Redacts one call's text segment by segment, remembering card/SSN context."""

    def __init__(self) -> None:
        self._card_context = 0     # tokens of card context left from earlier segments
        self._cvv_context = 0
        self._ssn_context = 0

    def redact(self, text: str, start_ms: int = 0, end_ms: int = 0) -> RedactionResult:
        if not isinstance(text, str):
            raise RedactionError(f"text must be a string, got {type(text).__name__}")
        return self._redact(text, tokenise(text, start_ms, end_ms))

    def redact_segment(self, segment: SegmentInput) -> RedactionResult:
        """Redacts the segment's text (rebuilt from its words when it has them)."""
        text, tokens = segment_tokens(segment)
        return self._redact(text, tokens)

    def redact_tokens(self, text: str, tokens: list[Token]) -> RedactionResult:
        """Redacts text already tokenised by ``segment_tokens`` (saves tokenising twice)."""
        return self._redact(text, tokens)

    def _redact(self, text: str, tokens: list[Token]) -> RedactionResult:
        spans: list[tuple[str, int, int]] = []    # kind, start_char, end_char
        for match in _EMAIL_RE.finditer(text):
            spans.append(("email", *match.span()))
        for match in _SPOKEN_EMAIL_RE.finditer(text):
            spans.append(("email", *match.span()))
        for match in _SSN_RE.finditer(text):
            spans.append(("ssn", *match.span()))
        norms = [t.norm for t in tokens]
        card_at = self._context_positions(norms, _CARD_INDEX, self._card_context)
        cvv_at = self._context_positions(norms, _CVV_INDEX, self._cvv_context)
        ssn_at = self._context_positions(norms, _SSN_INDEX, self._ssn_context)
        for run in self._digit_runs(norms):
            kind, first, last = self._classify(run, card_at, cvv_at, ssn_at)
            if kind:
                if first and norms[first - 1] in ("(", "+"):
                    first -= 1      # "(415) 555-0134", "+1 415 ...": the prefix goes too
                spans.append((kind, tokens[first].start_char, tokens[last].end_char))
        self._card_context = _carry(card_at, len(norms))
        self._cvv_context = _carry(cvv_at, len(norms))
        self._ssn_context = _carry(ssn_at, len(norms))
        return self._mask(text, tokens, _merge(spans))

    @staticmethod
    def _context_positions(norms: list[str], phrases: dict[str, list[tuple[str, ...]]],
                           carried: int) -> list[int]:
        """Token indices where a context phrase ends; -1 stands for context carried in."""
        found = [-1] if carried else []
        for i, norm in enumerate(norms):
            for words in phrases.get(norm, ()):
                if tuple(norms[i:i + len(words)]) == words:
                    found.append(i + len(words) - 1)
        return found

    @staticmethod
    def _digit_runs(norms: list[str]) -> list[_Run]:
        runs: list[_Run] = []
        i, current = 0, None
        while i < len(norms):
            got = digits_of(norms, i)
            if got is not None:
                digits, used = got
                if current is None:
                    current = _Run(i, i + used - 1, "", [])
                current.digits += digits
                current.token_digits.append((i, i + used - 1, digits))
                current.last = i + used - 1
                i += used
                continue
            if current is not None and norms[i] in SEPARATORS and i + 1 < len(norms) \
                    and digits_of(norms, i + 1) is not None:
                i += 1
                continue
            if current is not None:
                runs.append(current)
                current = None
            i += 1
        if current is not None:
            runs.append(current)
        return runs

    def _classify(self, run: _Run, card_at, cvv_at, ssn_at) -> tuple[str | None, int, int]:
        n = len(run.digits)
        near = lambda positions: any(p < run.first and run.first - p <= CONTEXT_WINDOW
                                     or p == -1 and run.first < CONTEXT_WINDOW for p in positions)
        if 13 <= n <= 19 and luhn_ok(run.digits):
            return "card_number", run.first, run.last
        if 12 <= n <= 19 and near(card_at):
            return "card_number", run.first, run.last
        if n > 19:
            # a card number inside a longer run (e.g. followed by the expiry): mask it all
            for width in range(19, 12, -1):
                for start in range(n - width + 1):
                    if luhn_ok(run.digits[start:start + width]):
                        return "card_number", run.first, run.last
        if n in (3, 4) and near(cvv_at):
            return "cvv", run.first, run.last
        if n == 9 and near(ssn_at):
            return "ssn", run.first, run.last
        if n == 10 or n == 11 and run.digits[0] == "1":
            return "phone", run.first, run.last
        if n == 7 and len(run.token_digits) >= 2:
            return "phone", run.first, run.last       # "555 0134": a local number
        return None, 0, 0

    @staticmethod
    def _mask(text: str, tokens: list[Token], spans: list[tuple[str, int, int]]) -> RedactionResult:
        out, records, pos = [], [], 0
        for kind, a, b in spans:
            out.append(text[pos:a])
            out.append(MASKS[kind])
            pos = b
            inside = [t for t in tokens if t.start_char < b and t.end_char > a]
            if inside:
                word_start = min(t.word_index for t in inside)
                word_end = max(t.word_index for t in inside) + 1 if word_start >= 0 else -1
                start_ms, end_ms = min(t.start_ms for t in inside), max(t.end_ms for t in inside)
            else:
                word_start = word_end = -1
                start_ms = end_ms = 0
            records.append(RedactedSpan(kind, a, b, word_start, word_end, start_ms, end_ms))
        out.append(text[pos:])
        return RedactionResult("".join(out), tuple(records))


def _carry(positions: list[int], length: int) -> int:
    """Whether context seen near the end of this segment should reach into the next one."""
    return int(any(p == -1 or length - p <= CONTEXT_WINDOW for p in positions))


def _merge(spans: list[tuple[str, int, int]]) -> list[tuple[str, int, int]]:
    # overlapping finds (a written e-mail also matched as spoken) become one span; the
    # earlier-starting, longer one names it
    spans.sort(key=lambda s: (s[1], -s[2]))
    merged: list[tuple[str, int, int]] = []
    for kind, a, b in spans:
        if merged and a < merged[-1][2]:
            k, ma, mb = merged[-1]
            merged[-1] = (k, ma, max(mb, b))
        else:
            merged.append((kind, a, b))
    return merged


def redact(text: str) -> RedactionResult:
    """One-shot redaction of a piece of text (no context from earlier segments)."""
    return Redactor().redact(text)


__all__ = ["MASKS", "RedactedSpan", "RedactionError", "RedactionResult", "Redactor",
           "luhn_ok", "redact"]
