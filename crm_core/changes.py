"""Every CRM write leaves two traces in its own transaction: an audit_log row
(who, what, before/after) and, for changes others care about, an outbox row
with the domain event. After the commit the events go on the bus and their
outbox rows are marked published; if the bus is down they stay pending for
``relay_outbox`` to send later (at-least-once; consumers de-duplicate on the
event id).

Event types: crm.lead.created|updated|deleted|scored|converted,
crm.deal.created|updated|deleted|stage_changed|predicted,
crm.activity.created, crm.leads.imported.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from storage.events import Event, EventBus

log = logging.getLogger(__name__)


WRITER_GRACE_S = 10.0


_AUDIT_SQL = """
    INSERT INTO audit_log (org_id, actor_id, actor_kind, action, resource_type, resource_id,
                           before, after, detail, request_id)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
"""


@dataclass(slots=True)
class ChangeSet:
    """Collects the events of one transaction so they are published only after it commits."""

    org_id: str
    actor_id: str | None
    actor_kind: str = "user"
    request_id: str | None = None
    events: list[Event] = field(default_factory=list)

    async def record(
        self, conn: asyncpg.Connection, *, action: str, resource_type: str, resource_id: str | None,
        before: Any = None, after: Any = None, event_type: str | None = None,
        payload: dict[str, Any] | None = None, detail: dict[str, Any] | None = None,
    ) -> None:
        if event_type is None:
            await conn.execute(_AUDIT_SQL, self.org_id, self.actor_id, self.actor_kind, action, resource_type,
                               resource_id, before, after, detail or {}, self.request_id)
            return
        event = Event(event_type, payload if payload is not None else (after or {}), org_id=self.org_id)
        # The audit row and the outbox row in one statement (one round trip, same transaction).
        # The writer publishes right after its commit; the relay waits out that grace so
        # it does not send the same event a second time meanwhile.
        await conn.execute(
            f"""
            WITH audit AS ({_AUDIT_SQL})
            INSERT INTO outbox (event_id, org_id, type, payload, next_attempt_at)
            VALUES ($11, $1, $12, $13, now() + make_interval(secs => $14))
            """,
            self.org_id, self.actor_id, self.actor_kind, action, resource_type, resource_id,
            before, after, detail or {}, self.request_id, event.id, event.type, event.payload, WRITER_GRACE_S,
        )
        self.events.append(event)

    async def publish(self, pool: asyncpg.Pool, bus: EventBus | None) -> None:
        """Send the committed events; failures leave them pending in the outbox.

        Marking the outbox rows published is a second commit, done in the background so
        the client does not wait for it, and shared by the writes of a short window
        (``MARK_BATCH_S``); if it is lost (node stops), ``relay_outbox`` sends the event
        again, which at-least-once delivery allows.
        """
        if bus is None or not self.events:
            return
        sent: list[str] = []
        for event in self.events:
            try:
                await bus.publish(event)
                sent.append(event.id)
            except Exception as exc:  # noqa: BLE001 - the outbox keeps it for the relay
                log.warning("event %s (%s) not published now, left in the outbox: %s",
                            event.id, event.type, exc)
        self.events.clear()
        if sent:
            _queue_published_marks(pool, sent)


# How long a "published" mark may wait to share its UPDATE with others. The relay leaves a
# writer's events alone for WRITER_GRACE_S, far longer, so the wait never causes a re-send.
MARK_BATCH_S = 0.05


class _PublishedMarks:
    """The pending "published" marks of one pool, written by one background task in batches:
    one UPDATE per ``MARK_BATCH_S`` window instead of one transaction per API write."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.pending: list[str] = []
        self.now = asyncio.Event()  # set by flush_published_marks: write without waiting
        self.task = asyncio.create_task(self._run())
        _MARKING.add(self.task)
        self.task.add_done_callback(_MARKING.discard)

    async def _run(self) -> None:
        try:
            while self.pending or not self.now.is_set():
                try:
                    await asyncio.wait_for(self.now.wait(), MARK_BATCH_S)
                except TimeoutError:
                    pass
                if not self.pending:
                    break
                ids, self.pending = self.pending, []
                await _mark_published(self.pool, ids)
        finally:
            # No await between the last look at `pending` and this: a mark queued later
            # finds no marker and starts a new one.
            if _MARKERS.get(id(self.pool)) is self:
                del _MARKERS[id(self.pool)]


_MARKERS: dict[int, _PublishedMarks] = {}
# Background "published" marks in flight (referenced so they are not garbage-collected).
_MARKING: set[asyncio.Task] = set()


def _queue_published_marks(pool: asyncpg.Pool, event_ids: list[str]) -> None:
    marker = _MARKERS.get(id(pool))
    if marker is None or marker.pool is not pool or marker.task.done():
        marker = _MARKERS[id(pool)] = _PublishedMarks(pool)
    marker.pending.extend(event_ids)


async def _mark_published(pool: asyncpg.Pool, event_ids: list[str]) -> None:
    try:
        async with pool.acquire() as conn:
            await conn.execute(
                "UPDATE outbox SET published_at = now() WHERE event_id = ANY($1::uuid[])", event_ids
            )
    except Exception as exc:  # noqa: BLE001 - the relay re-sends; duplicates are allowed
        log.warning("could not mark %d outbox event(s) published: %s", len(event_ids), exc)


async def flush_published_marks() -> None:
    """Write the pending "published" marks now and wait for them (shutdown, tests)."""
    for marker in list(_MARKERS.values()):
        marker.now.set()
    if _MARKING:
        await asyncio.gather(*list(_MARKING), return_exceptions=True)


async def relay_outbox(pool: asyncpg.Pool, bus: EventBus, *, batch: int = 100) -> int:
    """Publish outbox rows still pending (e.g. the bus was down); returns how many were sent.

    Safe to run on several nodes at once: rows are claimed with SKIP LOCKED. Rows written
    through ``ChangeSet`` become due only after ``WRITER_GRACE_S`` (their writer publishes them).
    """
    sent = 0
    async with pool.acquire() as conn:
        async with conn.transaction():
            rows = await conn.fetch(
                """
                SELECT id, event_id, org_id, type, payload, extract(epoch FROM created_at) AS at
                FROM outbox WHERE published_at IS NULL AND next_attempt_at <= now()
                ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED
                """,
                batch,
            )
            for row in rows:
                event = Event(row["type"], row["payload"], org_id=str(row["org_id"]) if row["org_id"] else None,
                              id=str(row["event_id"]), occurred_at=float(row["at"]))
                try:
                    await bus.publish(event)
                except Exception as exc:  # noqa: BLE001 - retried with backoff
                    await conn.execute(
                        """
                        UPDATE outbox SET attempts = attempts + 1, last_error = $2,
                            next_attempt_at = now() + make_interval(secs => least(300, 2 ^ attempts))
                        WHERE id = $1
                        """,
                        row["id"], str(exc)[:500],
                    )
                    continue
                await conn.execute("UPDATE outbox SET published_at = now() WHERE id = $1", row["id"])
                sent += 1
    return sent
