"""``q=``: what a search text matches in leads and deals, and how well (the rank).

A search text is cut into words (letters and digits); every word must begin a word of the
record's search document (names, company, the e-mail and its parts), matched through the
full-text index (migration 0022, ``search_document``, the 'simple' configuration: no stemming,
no stop words). A text that looks like an e-mail also matches e-mails starting with it, and one
with five or more digits matches phones ending with those digits (the reversed-digits index of
migration 0018). The rank is full-text ``ts_rank_cd`` plus 2 for an exact e-mail and 1 for a
phone match. (Trigram similarity is not in the rank: without pg_trgm it is plain SQL, far too slow
for every row a short word matches; the duplicates endpoint uses it on a narrowed set.)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from crm_core.api_errors import BadRequest
from crm_core.calls.phone_numbers import to_e164

MAX_QUERY = 200
MAX_WORDS = 8
_WORD = re.compile(r"[^\W_]+")  # letters and digits of any script; tsquery syntax never passes
_PHONE_TEXT = re.compile(r"^\+?[0-9 ()./-]+$")

LEAD_DOCUMENT = (
    "search_document({a}.first_name, {a}.last_name, {a}.company, {a}.email, "
    "translate({a}.email, '@.+_-', '     '))"
)
DEAL_DOCUMENT = "search_document({a}.name, {a}.company)"
_REVERSED_DIGITS = (
    "(reverse(regexp_replace(coalesce({a}.phone, ''), '[^0-9]', '', 'g')) COLLATE \"C\")"
)


@dataclass(frozen=True, slots=True)
class Terms:
    text: str  # trimmed
    tsquery: str  # "ada:* & love:*"
    email_prefix: str | None  # lower-cased, LIKE-escaped
    phone_digits: str | None


def parse_q(raw: str) -> Terms:
    """The search text's terms; 400 ``invalid_query`` for text that cannot be searched."""
    text = raw.strip()
    if "\x00" in text or len(text) > MAX_QUERY:
        raise BadRequest(
            f"q is 1 to {MAX_QUERY} characters of text", {"q_max": MAX_QUERY}, code="invalid_query"
        )
    words = [w.lower() for w in _WORD.findall(text)]
    if not words:
        raise BadRequest("q has no letters or digits to search for", code="invalid_query")
    if len(words) > MAX_WORDS:
        raise BadRequest(
            f"q has more than {MAX_WORDS} words", {"max_words": MAX_WORDS}, code="invalid_query"
        )
    email_prefix = None
    if "@" in text and " " not in text:
        email_prefix = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    phone = None
    if _PHONE_TEXT.match(text):
        # the national digits: every stored spelling ends with them (a country code or trunk
        # "0" only ever comes before)
        number = to_e164(text)
        phone = (
            number.national
            if number is not None
            else "".join(c for c in text if c.isdigit()).lstrip("0")
        )
        phone = phone if len(phone) >= 5 else None
    return Terms(text, " & ".join(f"{w}:*" for w in words), email_prefix, phone)


@dataclass(frozen=True, slots=True)
class Match:
    where: str  # the WHERE fragment
    rank: str  # a real-valued SQL expression, higher is better


def lead_search(bind, terms: Terms, alias: str) -> Match:
    """``bind(value)`` adds a parameter and returns its ``$n``."""
    doc = LEAD_DOCUMENT.format(a=alias)
    tsq = f"to_tsquery('simple', {bind(terms.tsquery)})"
    arms = [f"{doc} @@ {tsq}"]
    bonus = []
    if terms.email_prefix is not None:
        prefix = bind(terms.email_prefix)
        arms.append(f"lower({alias}.email) LIKE {prefix} || '%'")
        bonus.append(
            f"CASE WHEN lower({alias}.email) = {bind(terms.text.lower())} THEN 2 ELSE 0 END"
        )
    if terms.phone_digits is not None:
        # every spelling of the number ends with its last digits
        suffix = terms.phone_digits[::-1]
        reversed_digits = _REVERSED_DIGITS.format(a=alias)
        in_range = (
            f"({reversed_digits} >= {bind(suffix)} AND {reversed_digits} < {bind(suffix + ':')})"
        )
        arms.append(in_range)
        bonus.append(f"CASE WHEN {in_range} THEN 1 ELSE 0 END")
    rank = f"(ts_rank_cd({doc}, {tsq})" + "".join(f" + {b}" for b in bonus) + ")::real"
    return Match("(" + " OR ".join(arms) + ")", rank)


def deal_search(bind, terms: Terms, alias: str) -> Match:
    doc = DEAL_DOCUMENT.format(a=alias)
    tsq = f"to_tsquery('simple', {bind(terms.tsquery)})"
    rank = f"ts_rank_cd({doc}, {tsq})::real"
    return Match(f"{doc} @@ {tsq}", rank)
