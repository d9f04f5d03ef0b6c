"""Entity tags and the preconditions that read them (RFC 9110 §8.8.3, §13.1.1, §13.1.2).

Every ETag the API sends is made here: a record's is its version (``updated_at``, so a
PATCH's ``If-Match`` can name what a GET returned, whatever ``fields=`` selected); any
other GET body's is a hash of the bytes sent. ``If-None-Match`` on a GET answers 304 when
one of its tags matches by weak comparison, or is ``*``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from crm_core.api_errors import PreconditionFailed

# An entity-tag: W/ for weak, then a quoted opaque-tag; unquoted words are taken as
# their own opaque-tag, since some clients strip the quotes.
_TAG_RE = re.compile(r'\s*(W/)?("[^"]*"|[^\s,"]+)\s*(?:,|$)')


def record_etag(row: Mapping[str, Any]) -> str:
    """A stored record's version: weak, since representations (fields=, CSV) differ byte-wise."""
    return f'W/"{int(row["updated_at"].timestamp() * 1_000_000)}"'


def body_etag(body: bytes) -> str:
    """The tag of a GET body that is no single record's (lists, /me): the bytes' digest."""
    return f'W/"{hashlib.blake2b(body, digest_size=16).hexdigest()}"'


def parse_tags(header: str) -> list[tuple[bool, str]] | None:
    """(weak, opaque-tag) for each tag of a list header; ``None`` for ``*``; ``[]`` if malformed."""
    if header.strip() == "*":
        return None
    tags: list[tuple[bool, str]] = []
    pos = 0
    while pos < len(header):
        match = _TAG_RE.match(header, pos)
        if match is None or match.end() == pos:
            return []
        tags.append((match.group(1) is not None, match.group(2).strip('"')))
        pos = match.end()
    return tags


def _split(etag: str) -> tuple[bool, str]:
    return etag.startswith("W/"), etag.removeprefix("W/").strip('"')


def none_match_hits(request: web.Request, etag: str) -> bool:
    """Whether ``If-None-Match`` names the current representation (weak comparison), or is ``*``."""
    header = request.headers.get("If-None-Match")
    if header is None:
        return False
    tags = parse_tags(header)
    if tags is None:
        return True
    opaque = _split(etag)[1]
    return any(tag == opaque for _weak, tag in tags)


def check_if_match(request: web.Request, row: Mapping[str, Any]) -> None:
    """Optional optimistic locking: ``If-Match`` naming none of the record's current tag is a 412.

    The tag must be given as sent (weak marker included); a list matches if any member does.
    """
    header = request.headers.get("If-Match")
    if header is None:
        return
    current = record_etag(row)
    tags = parse_tags(header)
    if tags is None or _split(current) in tags:
        return
    raise PreconditionFailed("the record changed since you read it", {"etag": current})
