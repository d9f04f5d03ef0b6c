"""The coaching prompts a rep saw during a call, kept on the call for its review.

The live path publishes each prompt as a ``coaching.prompt`` event, a
``PromptEvent`` of crm_core/calls/live_events.py. ``CallEventWriter`` stores
them here at least once; the prompt key makes a second delivery write nothing.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import asyncpg

from crm_core.calls.live_events import PromptEvent

# The longest text kept per field: a prompt is a card on a screen, not a document.
_MAX_TEXT = 2000


@dataclass(frozen=True, slots=True)
class PromptRow:
    prompt_key: str
    rule_id: str
    kind: str
    severity: str
    title: str
    body: str
    at_ms: int
    party: str | None = None
    segment_key: str | None = None
    evidence: list[str] = field(default_factory=list)
    link: str | None = None


def _text(value, limit: int = _MAX_TEXT) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected text, got {type(value).__name__}")
    # PostgreSQL text cannot hold U+0000.
    return value.replace("\x00", "")[:limit]


def _optional(value) -> str | None:
    return None if value is None else _text(value)


def prompt_from_event(payload: dict) -> PromptRow:
    """The row for one ``coaching.prompt`` payload; KeyError/TypeError/ValueError when malformed."""
    prompt = PromptEvent.from_payload(payload)
    rule_id = _text(prompt.rule_id, 200)
    at_ms = prompt.at_ms
    if at_ms < 0:
        raise ValueError("at_ms must not be negative")
    row = {
        "rule_id": rule_id, "kind": _text(prompt.kind, 40),
        "severity": _text(prompt.severity, 40), "title": _text(prompt.title),
        "body": _text(prompt.body or ""), "at_ms": at_ms, "party": _optional(prompt.party),
        "segment_key": _optional(prompt.segment_key),
        "evidence": [_text(e) for e in prompt.evidence], "link": _optional(prompt.link),
    }
    # The live feed's id is rule@time; two subjects of one rule could share a millisecond,
    # so the key also carries a digest of what the card said. A redelivery has both equal.
    live_id = _text(prompt.id or f"{rule_id}@{at_ms}", 300)
    digest = hashlib.sha256(
        "\x1f".join((row["title"], row["body"], row["party"] or "")).encode()).hexdigest()[:16]
    return PromptRow(prompt_key=f"{live_id}#{digest}", **row)


async def add_call_prompt(conn: asyncpg.Connection, org_id: str, call_id: str, prompt: PromptRow) -> int:
    """Store one prompt of a call of ``org_id``; 1 when written, 0 when already there or no such call.

    The call is looked up in the organization, so a vanished call (or another tenant's id)
    writes nothing and the event is done with, not retried.
    """
    result = await conn.execute(
        """
        INSERT INTO call_prompts (org_id, call_id, prompt_key, rule_id, kind, severity, title, body,
                                  at_ms, party, segment_key, evidence, link)
        SELECT c.org_id, c.id, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13
        FROM calls c WHERE c.id = $2::uuid AND c.org_id = $1::uuid
        ON CONFLICT (call_id, prompt_key) DO NOTHING
        """,
        org_id, call_id, prompt.prompt_key, prompt.rule_id, prompt.kind, prompt.severity,
        prompt.title, prompt.body, prompt.at_ms, prompt.party, prompt.segment_key,
        list(prompt.evidence), prompt.link,
    )
    return int(result.split()[-1])


async def list_call_prompts(conn: asyncpg.Connection, org_id: str, call_id: str) -> list[asyncpg.Record]:
    """The prompts of ``org_id``'s call ``call_id`` in call-clock order (none for another org's call)."""
    return await conn.fetch(
        "SELECT * FROM call_prompts WHERE org_id = $1::uuid AND call_id = $2::uuid ORDER BY at_ms, id",
        org_id, call_id,
    )
