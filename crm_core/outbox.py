"""Domain events from the live path into the outbox.

The API's writes put their events in the outbox through ``crm_core.changes``
(with the audit row); ``crm_core.changes.relay_outbox`` publishes leftovers on
the bus, and webhooks read the outbox independently (``crm_core.webhooks_out``).
``enqueue_event`` is for writers without an audit row: idempotent on the
event id, so retried work stays single.

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

from storage.events import Delivery, EventBus

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
