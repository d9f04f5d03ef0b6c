"""Where each rep's voiceprint is kept (table ``rep_voiceprints``).

The embedding is stored as the raw bytes the speaker model produced, with the
model's name and how much speech it was averaged from; what the bytes mean
(and how two prints are combined) is the voice server's business — crm_core
does not know the speaker model. ``update_voiceprint`` serialises concurrent
calls of the same rep with a row lock, so a print learnt on two calls ending
together is merged twice, never overwritten.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from storage.ids import uuid_or_none

__all__ = ["StoredVoiceprint", "delete_voiceprint", "load_voiceprint", "update_voiceprint"]


@dataclass(frozen=True, slots=True)
class StoredVoiceprint:
    model: str
    embedding: bytes
    speech_ms: int
    utterances: int
    updated_at: datetime | None = None



async def load_voiceprint(conn, org_id: str, user_id: str) -> StoredVoiceprint | None:
    """The rep's stored print, or None (also for ids that are not UUIDs or not in the org)."""
    org, user = uuid_or_none(org_id), uuid_or_none(user_id)
    if org is None or user is None:
        return None
    row = await conn.fetchrow(
        "SELECT model, embedding, speech_ms, utterances, updated_at FROM rep_voiceprints "
        "WHERE user_id = $1 AND org_id = $2", user, org)
    return _record(row) if row else None


async def update_voiceprint(
    conn: asyncpg.Connection,
    org_id: str,
    user_id: str,
    combine: Callable[[StoredVoiceprint | None], StoredVoiceprint],
) -> StoredVoiceprint | None:
    """Replace the rep's print with ``combine(stored or None)``, under a row lock.

    Returns what was stored, or None when the user is not a member of the org
    (a call's rep id comes from the carrier edge; it is checked, not trusted).
    """
    org, user = uuid_or_none(org_id), uuid_or_none(user_id)
    if org is None or user is None:
        return None
    async with conn.transaction():
        member = await conn.fetchval(
            "SELECT 1 FROM users WHERE id = $1 AND org_id = $2 FOR SHARE", user, org)
        if not member:
            return None
        row = await conn.fetchrow(
            "SELECT model, embedding, speech_ms, utterances, updated_at FROM rep_voiceprints "
            "WHERE user_id = $1 AND org_id = $2 FOR UPDATE", user, org)
        new = combine(_record(row) if row else None)
        row = await conn.fetchrow(
            """
            INSERT INTO rep_voiceprints (user_id, org_id, model, embedding, speech_ms, utterances)
            VALUES ($1, $2, $3, $4, $5, $6)
            ON CONFLICT (user_id) DO UPDATE SET
                org_id = EXCLUDED.org_id, model = EXCLUDED.model, embedding = EXCLUDED.embedding,
                speech_ms = EXCLUDED.speech_ms, utterances = EXCLUDED.utterances,
                updated_at = now()
            RETURNING model, embedding, speech_ms, utterances, updated_at
            """,
            user, org, new.model, bytes(new.embedding), int(new.speech_ms), int(new.utterances))
    return _record(row)


async def delete_voiceprint(conn, org_id: str, user_id: str) -> bool:
    """Forget a rep's voice (the rep asked, or left); True when there was one."""
    org, user = uuid_or_none(org_id), uuid_or_none(user_id)
    if org is None or user is None:
        return False
    status = await conn.execute(
        "DELETE FROM rep_voiceprints WHERE user_id = $1 AND org_id = $2", user, org)
    return status.endswith(" 1")


def _record(row) -> StoredVoiceprint:
    return StoredVoiceprint(row["model"], bytes(row["embedding"]), int(row["speech_ms"]),
                            int(row["utterances"]), row["updated_at"])
