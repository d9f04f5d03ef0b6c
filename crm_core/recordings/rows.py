"""Recording rows, their access log, and the queries recovery and retention run.

The audio itself is in the encrypted recording store (``storage.recording_store``);
these rows say which file belongs to which call, how far it got, and whether
it finished.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import asyncpg

PLAYABLE_STATUSES = ("complete", "incomplete", "partial")


@dataclass(frozen=True, slots=True)
class NewRecording:
    recording_id: str
    org_id: str
    call_id: str
    storage_key: str
    key_id: str
    channels: int
    sample_rate: int
    chunk_size: int
    node_id: str


async def insert_recording(conn: asyncpg.Connection, rec: NewRecording) -> asyncpg.Record:
    """The new recording's row; a call that already has one raises UniqueViolationError."""
    return await conn.fetchrow(
        """
        INSERT INTO recordings (id, org_id, call_id, storage_key, key_id, status, channels,
                                sample_rate, chunk_size, node_id, heartbeat_at)
        VALUES ($1, $2, $3, $4, $5, 'recording', $6, $7, $8, $9, now())
        RETURNING *
        """,
        rec.recording_id,
        rec.org_id,
        rec.call_id,
        rec.storage_key,
        rec.key_id,
        rec.channels,
        rec.sample_rate,
        rec.chunk_size,
        rec.node_id,
    )


async def renew_recordings(conn: asyncpg.Connection, progress: dict[str, tuple[int, int]]) -> None:
    """Heartbeat of the recordings this node is writing: {id: (durable bytes, duration ms)}."""
    if not progress:
        return
    ids = list(progress)
    await conn.execute(
        """
        UPDATE recordings r SET heartbeat_at = now(), byte_length = p.bytes, duration_ms = p.ms
        FROM unnest($1::uuid[], $2::bigint[], $3::bigint[]) AS p(id, bytes, ms)
        WHERE r.id = p.id AND r.status = 'recording'
        """,
        ids,
        [progress[i][0] for i in ids],
        [progress[i][1] for i in ids],
    )


async def finish_recording(
    conn: asyncpg.Connection, recording_id: str, *, status: str, byte_length: int, duration_ms: int
) -> asyncpg.Record | None:
    return await conn.fetchrow(
        """
        UPDATE recordings SET status = $2, byte_length = $3, duration_ms = $4,
                              finalized_at = coalesce(finalized_at, now())
        WHERE id = $1 RETURNING *
        """,
        recording_id,
        status,
        byte_length,
        duration_ms,
    )


async def claim_abandoned(
    conn: asyncpg.Connection,
    stale_s: float,
    *,
    exclude: list[str] = (),
    node_id: str | None = None,
    limit: int = 100,
) -> list[asyncpg.Record]:
    """Recordings left 'recording' by a dead process, marked 'incomplete' (each claimed once).

    A row is abandoned when its heartbeat is older than ``stale_s``, or when it names
    ``node_id`` — the caller's own node id (stable across restarts, e.g. a pod name) —
    and is not among ``exclude``, the recordings the caller is writing itself.
    """
    return await conn.fetch(
        """
        UPDATE recordings SET status = 'incomplete', finalized_at = now()
        WHERE id IN (SELECT id FROM recordings
                     WHERE status = 'recording' AND id <> ALL($3::uuid[])
                       AND (heartbeat_at < now() - make_interval(secs => $1) OR node_id = $4)
                     ORDER BY heartbeat_at LIMIT $2 FOR UPDATE SKIP LOCKED)
        RETURNING *
        """,
        float(stale_s),
        limit,
        list(exclude),
        node_id,
    )


async def recording_of_call(
    conn: asyncpg.Connection, org_id: str, call_id: str
) -> asyncpg.Record | None:
    """The call's recording with what access checks need (rep, rep's team, org policy).

    A call has one recording (a unique index); rows flagged ``extra_stream`` were
    added by second streams before that held and are never the call's recording.
    """
    return await conn.fetchrow(
        """
        SELECT r.*, c.rep_id, u.team_id AS rep_team_id, o.settings AS org_settings,
               c.org_id AS call_org_id
        FROM calls c
        JOIN organizations o ON o.id = c.org_id
        LEFT JOIN users u ON u.id = c.rep_id
        LEFT JOIN recordings r ON r.call_id = c.id AND r.org_id = c.org_id AND NOT r.extra_stream
        WHERE c.id = $1 AND c.org_id = $2
        """,
        call_id,
        org_id,
    )


async def playable_recording_of_call(
    conn: asyncpg.Connection, call_id: str
) -> asyncpg.Record | None:
    """The call's recording when it holds audio (status in ``PLAYABLE_STATUSES``), or None."""
    return await conn.fetchrow(
        "SELECT * FROM recordings WHERE call_id = $1 AND NOT extra_stream"
        " AND status IN ('complete', 'incomplete', 'partial')",
        call_id,
    )


async def recording_by_id(conn: asyncpg.Connection, recording_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM recordings WHERE id = $1", recording_id)


async def expired_recordings(
    conn: asyncpg.Connection, default_days: int, limit: int = 200
) -> list[asyncpg.Record]:
    """Recordings older than their organization's retention (0 / unset and default 0 = forever)."""
    return await conn.fetch(
        """
        SELECT r.* FROM recordings r JOIN organizations o ON o.id = r.org_id
        WHERE r.status IN ('complete', 'incomplete', 'partial')
          AND coalesce((o.settings->>'recording_retention_days')::int, $1) > 0
          AND r.created_at < now() - make_interval(days => coalesce((o.settings->>'recording_retention_days')::int, $1))
        ORDER BY r.created_at LIMIT $2
        """,
        default_days,
        limit,
    )


async def mark_deleted(conn: asyncpg.Connection, recording_id: str) -> None:
    await conn.execute(
        "UPDATE recordings SET status = 'deleted', deleted_at = now() WHERE id = $1", recording_id
    )


async def set_key_id(conn: asyncpg.Connection, recording_ids: list, key_id: str) -> None:
    """After key rotation: the recordings whose data keys are now wrapped by ``key_id``."""
    await conn.execute(
        "UPDATE recordings SET key_id = $2 WHERE id = ANY($1::uuid[])", recording_ids, key_id
    )


@dataclass(frozen=True, slots=True)
class AuditEntry:
    org_id: str | None
    action: str
    resource_id: str
    outcome: str = "ok"  # ok | denied | error
    actor_id: str | None = None
    actor_kind: str = "user"
    ip: str | None = None
    request_id: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    resource_type: str = "recording"


async def write_audit(conn: asyncpg.Connection, entry: AuditEntry) -> None:
    await conn.execute(
        """
        INSERT INTO audit_log (org_id, actor_id, actor_kind, action, resource_type, resource_id,
                               outcome, detail, ip, request_id)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::inet, $10)
        """,
        entry.org_id,
        entry.actor_id,
        entry.actor_kind,
        entry.action,
        entry.resource_type,
        entry.resource_id,
        entry.outcome,
        entry.detail,
        entry.ip,
        entry.request_id,
    )


# Refused anonymous requests: one audit row per source address, action and window, counting the
# repeats; past this many sources in a window, one row more stands for all the others.
ANONYMOUS_AUDIT_WINDOW_S = 60
ANONYMOUS_AUDIT_SOURCES_PER_WINDOW = 500


async def write_anonymous_denial(conn: asyncpg.Connection, entry: AuditEntry) -> None:
    """Audit a refused unauthenticated request without letting a flood of them grow the log
    without bound: a repeat from the same address (and action) within the window adds to its
    row's ``detail.count``; past ``ANONYMOUS_AUDIT_SOURCES_PER_WINDOW`` sources in the window,
    the rest are counted in one row without an address. At most sources-cap + actions rows a window.
    """
    async with conn.transaction():
        ip = entry.ip
        if ip is not None:
            if await _bump_anonymous_row(conn, entry.action, ip) is not None:
                return
            sources = await conn.fetchval(
                """
                SELECT count(*) FROM audit_log
                WHERE org_id IS NULL AND actor_id IS NULL AND outcome = 'denied'
                  AND occurred_at > now() - make_interval(secs => $1)
                """,
                ANONYMOUS_AUDIT_WINDOW_S,
            )
            if sources < ANONYMOUS_AUDIT_SOURCES_PER_WINDOW:
                await write_audit(conn, _first_of_window(entry, ip))
                return
            ip = None  # past the cap: counted with every other source
        if await _bump_anonymous_row(conn, entry.action, None) is None:
            await write_audit(conn, _first_of_window(entry, None))


def _first_of_window(entry: AuditEntry, ip: str | None) -> AuditEntry:
    detail = {**entry.detail, "count": 1}
    if ip is None:
        detail["sources"] = "many"
    return AuditEntry(org_id=None, action=entry.action, resource_id=entry.resource_id, outcome="denied",
                      actor_kind=entry.actor_kind, ip=ip, request_id=entry.request_id, detail=detail,
                      resource_type=entry.resource_type)


async def _bump_anonymous_row(conn: asyncpg.Connection, action: str, ip: str | None) -> int | None:
    return await conn.fetchval(
        """
        UPDATE audit_log
        SET detail = detail || jsonb_build_object('count', coalesce((detail->>'count')::int, 1) + 1,
                                                  'last_at', now())
        WHERE id = (
            SELECT id FROM audit_log
            WHERE org_id IS NULL AND actor_id IS NULL AND outcome = 'denied' AND action = $1
              AND ip IS NOT DISTINCT FROM $2::inet AND occurred_at > now() - make_interval(secs => $3)
            ORDER BY occurred_at DESC LIMIT 1
        )
        RETURNING id
        """,
        action, ip, ANONYMOUS_AUDIT_WINDOW_S,
    )


async def recording_audit(
    conn: asyncpg.Connection, org_id: str, call_id: str, limit: int = 200
) -> list[asyncpg.Record]:
    return await conn.fetch(
        """
        SELECT a.id, a.actor_id, u.name AS actor_name, a.actor_kind, a.action, a.outcome, a.detail,
               host(a.ip) AS ip, a.request_id, a.occurred_at
        FROM audit_log a LEFT JOIN users u ON u.id = a.actor_id
        WHERE a.org_id = $1 AND a.resource_type = 'recording' AND a.resource_id = $2
        ORDER BY a.occurred_at DESC, a.id DESC LIMIT $3
        """,
        org_id,
        call_id,
        limit,
    )
