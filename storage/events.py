"""The event bus: how live calls, the CRM and webhooks talk to each other.

One small interface with two implementations chosen by configuration:
``InProcessEventBus`` for a single node and ``RedisEventBus`` (Redis Streams)
for many nodes. Both give the same guarantees:

* **fan-out** subscriptions (``group=None``) see every matching event
  published after they subscribed — a rep's live feed, for example;
* **group** subscriptions share the work: each event goes to one member of
  the group, and an event that is not acknowledged within
  ``redeliver_after_s`` is delivered again (at-least-once) — the CRM writer
  or the webhook sender, which must run once across nodes.

Every event has an ``id``; consumers use it to de-duplicate redeliveries.
Patterns are shell-style (``transcript.*``, ``call.ended``, ``*``).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any, AsyncIterator, Protocol


@dataclass(frozen=True, slots=True)
class Event:
    type: str
    payload: dict[str, Any]
    org_id: str | None = None
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    occurred_at: float = field(default_factory=time.time)

    def matches(self, pattern: str) -> bool:
        return fnmatchcase(self.type, pattern)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "org_id": self.org_id,
            "occurred_at": self.occurred_at,
            "payload": self.payload,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Event":
        return cls(
            type=str(data["type"]),
            payload=dict(data.get("payload") or {}),
            org_id=data.get("org_id"),
            id=str(data["id"]),
            occurred_at=float(data.get("occurred_at") or time.time()),
        )


class Delivery(Protocol):
    event: Event
    attempt: int

    async def ack(self) -> None: ...


class Subscription(Protocol):
    """An async iterator of deliveries; close it (or leave its ``async with``) when done."""

    def __aiter__(self) -> AsyncIterator[Delivery]: ...

    async def __anext__(self) -> Delivery: ...

    async def close(self) -> None: ...

    async def __aenter__(self) -> "Subscription": ...

    async def __aexit__(self, *exc: object) -> None: ...


class EventBus(Protocol):
    async def publish(self, event: Event) -> str:
        """Publish ``event``; returns its id once the bus has accepted it."""
        ...

    async def subscribe(
        self, pattern: str, *, group: str | None = None, redeliver_after_s: float = 30.0
    ) -> Subscription: ...

    async def ping(self) -> None:
        """Raise if the bus's backing service does not answer."""
        ...

    async def close(self) -> None: ...
