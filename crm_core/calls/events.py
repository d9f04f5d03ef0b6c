"""The CRM's side of a live call: persist what the call publishes on the bus.

Final transcript segments and call ends arrive as events. Each kind is read
by a consumer *group*, so with many nodes every event is written once, and an
event is acknowledged only after its row is committed: while PostgreSQL is
down, events stay pending on the bus and are written when it returns.
Segments are keyed by (call, segment id) and coaching prompts by (call,
prompt key), so a redelivered event writes nothing twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import asyncpg

from crm_core.calls.live_events import (
    CALL_ENDED,
    COACHING_PROMPT,
    INSIGHT_SUMMARY,
    TRANSCRIPT_FINAL,
    CallEndedEvent,
    TranscriptEvent,
)
from crm_core.calls.prompts import add_call_prompt, prompt_from_event
from crm_core.calls.records import SegmentRow, add_final_segments, mark_call_ended
from crm_core.calls.summaries import store_call_summary
from storage.events import Delivery, EventBus

log = logging.getLogger(__name__)

PoolSource = Callable[[], asyncpg.Pool | None]


def segment_from_event(payload: dict) -> SegmentRow:
    """The row for one ``transcript.final`` payload; KeyError/TypeError/ValueError when malformed."""
    segment = TranscriptEvent.from_payload(payload)
    start_ms = max(0, segment.start_ms)
    return SegmentRow(
        segment_key=segment.segment_key,
        party=segment.party,
        start_ms=start_ms,
        end_ms=max(start_ms, segment.end_ms),
        text=segment.text,
        words=[w.to_payload() for w in segment.words],
        speaker=segment.speaker,
        text_raw=segment.text_raw,
        sentiment=segment.sentiment,
    )


# The bus consumer groups that persist calls: a stopping node waits for them to catch up.
PERSISTING_GROUPS = ("crm-transcripts", "crm-call-ends", "crm-call-summaries",
                     "crm-call-prompts")  # the prompts a rep saw, for review


class CallEventWriter:
    """Background consumers that write transcript segments, prompts and call ends to PostgreSQL."""

    def __init__(self, pool: PoolSource, bus: EventBus, *, redeliver_after_s: float = 5.0) -> None:
        self._pool = pool
        self._bus = bus
        self._redeliver_after_s = redeliver_after_s
        self._tasks: list[asyncio.Task] = []
        self._subs: list = []
        self.written_segments = 0
        self.written_prompts = 0

    async def start(self) -> None:
        for pattern, group, handler in (
            (TRANSCRIPT_FINAL, PERSISTING_GROUPS[0], self._write_segment),
            (CALL_ENDED, PERSISTING_GROUPS[1], self._write_call_end),
            (INSIGHT_SUMMARY, PERSISTING_GROUPS[2], self._write_summary),
            (COACHING_PROMPT, PERSISTING_GROUPS[3], self._write_prompt),
        ):
            sub = await self._bus.subscribe(pattern, group=group, redeliver_after_s=self._redeliver_after_s)
            self._subs.append(sub)
            self._tasks.append(asyncio.create_task(self._consume(sub, handler), name=f"crm:{group}"))

    async def _consume(self, sub, handler: Callable[[asyncpg.Connection, dict], Awaitable[None]]) -> None:
        async for delivery in sub:
            await self._handle(delivery, handler)

    async def _handle(self, delivery: Delivery, handler) -> None:
        event = delivery.event
        try:
            pool = self._pool()
            if pool is None:
                raise ConnectionError("database pool is not open")
            async with pool.acquire(timeout=5) as conn:
                await handler(conn, {**event.payload, "_org_id": event.org_id})
        except (KeyError, ValueError, TypeError, asyncpg.IntegrityConstraintViolationError,
                asyncpg.DataError) as exc:
            # A malformed event, or one whose call/organization no longer exists, will never
            # succeed: log it and let it go instead of redelivering it forever.
            log.error("dropping malformed %s event %s: %s", event.type, event.id, exc)
            await delivery.ack()
            return
        except Exception as exc:  # noqa: BLE001 - database down: leave it pending for redelivery
            log.warning("could not persist %s event %s (attempt %d): %s",
                        event.type, event.id, delivery.attempt, exc)
            return
        await delivery.ack()

    async def _write_segment(self, conn: asyncpg.Connection, payload: dict) -> None:
        segment = segment_from_event(payload)
        self.written_segments += await add_final_segments(
            conn, payload["_org_id"], payload["call_id"], [segment]
        )

    async def _write_prompt(self, conn: asyncpg.Connection, payload: dict) -> None:
        prompt = prompt_from_event(payload)
        self.written_prompts += await add_call_prompt(conn, payload["_org_id"], payload["call_id"], prompt)

    async def _write_summary(self, conn: asyncpg.Connection, payload: dict) -> None:
        # Kept as the document it was published as (a SummaryEvent payload), envelope aside.
        summary = {k: v for k, v in payload.items() if k not in ("call_id", "_org_id")}
        changes = await store_call_summary(conn, payload["_org_id"], payload["call_id"], summary)
        if changes is not None:
            await changes.publish(self._pool(), self._bus)

    async def _write_call_end(self, conn: asyncpg.Connection, payload: dict) -> None:
        ended = CallEndedEvent.from_payload(payload)
        await mark_call_ended(conn, payload["call_id"], abnormal=ended.abnormal)

    async def close(self) -> None:
        for sub in self._subs:
            await sub.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        self._subs.clear()
