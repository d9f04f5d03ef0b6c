"""Full-text search over call transcripts (``GET /api/v1/calls?q=``): ranking and highlighted snippets.

Each final transcript segment carries a generated ``search_vector`` (English stemming,
migration 0019) with a GIN index. A search:

* reads ``q`` as a web-search query (``websearch_to_tsquery``: words, "quoted phrases",
  ``or``, ``-excluded``), so no spelling of it is a syntax error;
* finds the calls with at least one matching segment, within the caller's reach (the calls
  list's own WHERE: organization, ownership/team, filters);
* ranks each call by the sum over its matching segments of ``ts_rank``, rounded to six
  decimals (a sum of float4 ranks in float8 is exact, so the rank does not depend on the order
  the rows were summed in, and it is a stable cursor value);
* names, for the calls of the page, their best matching segments (up to ``MATCHES_PER_CALL``,
  in call-clock order) with their start time and a ``ts_headline`` snippet.

A snippet is returned as parts (``{"text", "hit"}``) and as HTML in which only the
highlight marks are markup: ``ts_headline`` marks hits with control characters stripped from
the text first, and the text between marks is escaped, so words said on the call can never
become markup. Readers without ``transcripts:raw`` get snippets masked like the transcript
and search with their query masked the same way: what they cannot read, they cannot find.
"""

from __future__ import annotations

import html
import re
from typing import Any

import asyncpg

from crm_core.api_errors import BadRequest
from crm_core.calls.masking import mask_pii, pii_spans

MAX_QUERY_CHARS = 200
MATCHES_PER_CALL = 3
_START, _STOP = "\x01", "\x02"
# Stripped from the text before it is marked, so only ts_headline's own marks are marks.
_MARK_CHARS = _START + _STOP
_HEADLINE_OPTIONS = (
    f"StartSel={_START}, StopSel={_STOP}, MaxWords=18, MinWords=6, ShortWord=2, "
    'MaxFragments=2, FragmentDelimiter=" … "'
)


def tsquery(param: str) -> str:
    """The SQL of the search query held in parameter ``param``."""
    return f"websearch_to_tsquery('english'::regconfig, {param})"


async def parse_query(conn: asyncpg.Connection, raw: str, *, may_read_raw: bool) -> str:
    """The search text to run, or 400 ``invalid_query`` for one that cannot find anything."""
    if "\x00" in raw:
        raise BadRequest("q: NUL characters are not allowed", code="invalid_query")
    text = raw.strip()
    if not text:
        raise BadRequest("q: give words to search for", code="invalid_query")
    if len(text) > MAX_QUERY_CHARS:
        raise BadRequest(
            f"q: at most {MAX_QUERY_CHARS} characters",
            {"max": MAX_QUERY_CHARS},
            code="invalid_query",
        )
    if not may_read_raw:
        text = mask_pii(text)
    if not await conn.fetchval(f"SELECT numnode({tsquery('$1')}) > 0", text):
        raise BadRequest(
            "q: no searchable words (only stop words, punctuation or masked personal data)",
            code="invalid_query",
        )
    return text


def ranked_calls_sql(q_param: str, org_param: str) -> str:
    """A FROM item (alias it): the calls with a matching segment, each with ``search_rank``."""
    return (
        "(SELECT c0.*, m.search_rank, m.matched_segments FROM calls c0 JOIN ("
        "SELECT s.call_id, round(sum(ts_rank(s.search_vector, q.query)::float8)::numeric, 6) AS search_rank,"
        " count(*)::int AS matched_segments"
        f" FROM transcript_segments s, {tsquery(q_param)} AS q(query)"
        f" WHERE s.org_id = {org_param} AND s.search_vector @@ q.query GROUP BY s.call_id"
        f") m ON m.call_id = c0.id WHERE c0.org_id = {org_param})"
    )


async def best_matches(
    conn: asyncpg.Connection, org_id: str, call_ids: list[str], text: str, *, may_read_raw: bool
) -> dict[str, list[dict[str, Any]]]:
    """Per call: its best matching segments (call-clock order) with highlighted snippets."""
    if not call_ids:
        return {}
    rows = await conn.fetch(
        f"""
        SELECT x.call_id::text AS call_id, x.segment_key, x.party, x.speaker, x.start_ms, x.end_ms,
               ts_headline('english'::regconfig, translate(x.text, $4, ''), x.query, $5) AS headline
        FROM (SELECT s.*, q.query, row_number() OVER (
                  PARTITION BY s.call_id ORDER BY ts_rank(s.search_vector, q.query) DESC, s.start_ms, s.id) AS n
              FROM transcript_segments s, {tsquery("$3")} AS q(query)
              WHERE s.org_id = $1 AND s.call_id = ANY($2::uuid[]) AND s.search_vector @@ q.query) x
        WHERE x.n <= {MATCHES_PER_CALL}
        ORDER BY x.call_id, x.start_ms, x.segment_key
        """,
        org_id,
        call_ids,
        text,
        _MARK_CHARS,
        _HEADLINE_OPTIONS,
    )
    out: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        parts = marked_parts(r["headline"])
        if not may_read_raw:
            parts = masked_parts(parts)
        out.setdefault(r["call_id"], []).append(
            {
                "segment_key": r["segment_key"],
                "party": r["party"],
                "speaker": r["speaker"],
                "start_ms": r["start_ms"],
                "end_ms": r["end_ms"],
                "snippet": [{"text": t, "hit": hit} for t, hit in parts],
                "snippet_html": snippet_html(parts),
            }
        )
    return out


def marked_parts(headline: str) -> list[tuple[str, bool]]:
    """ts_headline's output as (text, is a hit) parts, adjacent parts of a kind merged."""
    parts: list[tuple[str, bool]] = []
    hit = False
    for piece in re.split(f"([{_MARK_CHARS}])", headline):
        if piece == _START:
            hit = True
        elif piece == _STOP:
            hit = False
        elif piece:
            _append(parts, piece, hit)
    return parts


def masked_parts(parts: list[tuple[str, bool]]) -> list[tuple[str, bool]]:
    """``mask_pii`` over the snippet as a whole (a number split by a mark is still one number);
    a masked run is a hit when any of it was."""
    text = "".join(t for t, _ in parts)
    hits = [hit for t, hit in parts for _ in t]
    spans = pii_spans(text)
    out: list[tuple[str, bool]] = []
    i = 0
    for start, end, replacement in spans:
        for j in range(i, start):
            _append(out, text[j], hits[j])
        _append(out, replacement, any(hits[start:end]))
        i = end
    for j in range(i, len(text)):
        _append(out, text[j], hits[j])
    return out


def snippet_html(parts: list[tuple[str, bool]]) -> str:
    """Escaped text; hits in ``<mark>``: the only markup in it is ours."""
    return "".join(f"<mark>{html.escape(t)}</mark>" if hit else html.escape(t) for t, hit in parts)


def _append(parts: list[tuple[str, bool]], text: str, hit: bool) -> None:
    if parts and parts[-1][1] == hit:
        parts[-1] = (parts[-1][0] + text, hit)
    else:
        parts.append((text, hit))
