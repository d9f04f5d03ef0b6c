"""Domain events out: written to the outbox with the change, then relayed to the event bus.

``enqueue_event`` is called inside the transaction that makes a change
(``crm.lead.created``, ``crm.deal.updated`` …), so an event exists exactly
when its change committed. ``OutboxRelay`` then publishes unpublished rows on
the bus (``SKIP LOCKED``, so every node may run one; a row is published by
one of them), keeping the outbox's event id as the bus event id for
de-duplication, and backs off while the bus is down. Webhooks read the same
outbox independently (``crm_core.webhooks_out``).

``CallCompletedEvents`` turns the live path's ``call.ended`` into the domain
event ``crm.call.completed``; its event id is derived from the call id, so a
redelivered ``call.ended`` writes nothing twice.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from typing import Any

import asyncpg

from storage.events import Delivery, Event, EventBus

log = logging.getLogger(__name__)

_CALL_COMPLETED_NS = uuid.UUID("6f1d2a4e-27b5-4c59-9a55-8e3c1f0b7d21")


async def enqueue_event(
    conn: asyncpg.Connection,
    org_id: Any,
    event_type: str,
    payload: dict[str, Any],
    *,
    event_id: str | uuid.UUID | None = None,
) -> str:
    """Add an event to the outbox (call it inside the change's transaction); returns its id.

    Writing the same ``event_id`` twice is a no-op, so retried work stays single.
    """
    if not event_type or not isinstance(payload, dict):
        raise ValueError("an outbox event needs a type and an object payload")
    event_id = str(event_id or uuid.uuid4())
    await conn.execute(
        "INSERT INTO outbox (event_id, org_id, type, payload) VALUES ($1, $2, $3, $4) "
        "ON CONFLICT (event_id) DO NOTHING",
        event_id, org_id, event_type, json.loads(json.dumps(payload, default=str)),
    )
    return event_id


class OutboxRelay:
    """Publishes outbox rows on the event bus, once each across nodes (at-least-once on crashes)."""

    def __init__(self, pool: asyncpg.Pool, bus: EventBus, *, batch_size: int = 100,
                 poll_every_s: float = 0.5, max_backoff_s: float = 60.0) -> None:
        self._pool = pool
        self._bus = bus
        self.batch_size = batch_size
        self.poll_every_s = poll_every_s
        self.max_backoff_s = max_backoff_s

    async def relay_once(self) -> int:
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                """
                SELECT id, event_id, org_id, type, payload, created_at, attempts FROM outbox
                WHERE published_at IS NULL AND next_attempt_at <= now()
                ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED
                """,
                self.batch_size,
            )
            published: list[int] = []
            for row in rows:
                event = Event(
                    type=row["type"], payload=dict(row["payload"]),
                    org_id=None if row["org_id"] is None else str(row["org_id"]),
                    id=str(row["event_id"]), occurred_at=row["created_at"].timestamp(),
                )
                try:
                    await self._bus.publish(event)
                except Exception as exc:  # noqa: BLE001 - bus down: back off, keep order
                    delay = min(self.max_backoff_s, 2.0 ** min(row["attempts"], 10))
                    await conn.execute(
                        "UPDATE outbox SET attempts = attempts + 1, last_error = $2, "
                        "next_attempt_at = now() + make_interval(secs => $3) WHERE id = $1",
                        row["id"], str(exc)[:500], delay,
                    )
                    log.warning("outbox relay: bus refused event %s: %s", row["event_id"], exc)
                    break
                published.append(row["id"])
            if published:
                await conn.execute(
                    "UPDATE outbox SET published_at = now() WHERE id = any($1::bigint[])", published
                )
            return len(published)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            relayed = 0
            try:
                relayed = await self.relay_once()
            except Exception:  # noqa: BLE001 - database down: try again next poll
                log.exception("outbox relay pass failed")
            if relayed < self.batch_size:
                try:
                    await asyncio.wait_for(stop.wait(), self.poll_every_s)
                except asyncio.TimeoutError:
                    pass


class CallCompletedEvents:
    """Consumes ``call.ended`` (one consumer group across nodes) into ``crm.call.completed``."""

    def __init__(self, pool: asyncpg.Pool, bus: EventBus, *, redeliver_after_s: float = 10.0) -> None:
        self._pool = pool
        self._bus = bus
        self._redeliver_after_s = redeliver_after_s
        self._task: asyncio.Task | None = None
        self._sub = None

    async def start(self) -> None:
        self._sub = await self._bus.subscribe("call.ended", group="crm-call-completed",
                                              redeliver_after_s=self._redeliver_after_s)
        self._task = asyncio.create_task(self._consume(), name="crm:call-completed")

    async def _consume(self) -> None:
        async for delivery in self._sub:
            await self.handle(delivery)

    async def handle(self, delivery: Delivery) -> None:
        event = delivery.event
        try:
            call_id = str(uuid.UUID(str(event.payload["call_id"])))
        except (KeyError, ValueError, TypeError):
            log.error("dropping call.ended event %s without a valid call_id", event.id)
            await delivery.ack()
            return
        try:
            async with self._pool.acquire(timeout=5) as conn:
                call = await conn.fetchrow(
                    "SELECT id, org_id, carrier, direction, rep_id, lead_id, deal_id, started_at "
                    "FROM calls WHERE id = $1", call_id)
                if call is None:
                    log.warning("call.ended for unknown call %s: no crm.call.completed", call_id)
                else:
                    await enqueue_event(conn, call["org_id"], "crm.call.completed", {
                        "call_id": call_id,
                        "carrier": call["carrier"], "direction": call["direction"],
                        "rep_id": call["rep_id"], "lead_id": call["lead_id"], "deal_id": call["deal_id"],
                        "abnormal": bool(event.payload.get("abnormal")),
                        "reason": event.payload.get("reason"),
                        "started_at": call["started_at"], "ended_at": event.occurred_at,
                    }, event_id=uuid.uuid5(_CALL_COMPLETED_NS, call_id))
        except Exception as exc:  # noqa: BLE001 - database down: leave it for redelivery
            log.warning("could not record crm.call.completed for %s (attempt %d): %s",
                        call_id, delivery.attempt, exc)
            return
        await delivery.ack()

    async def close(self) -> None:
        if self._sub is not None:
            await self._sub.close()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
